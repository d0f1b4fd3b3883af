"""remove.bg's request options, read and checked: what a remove.bg client sends, as plain values.

Every refusal is an `OptionError` carrying remove.bg's own error code (`invalid_size`, ...), so
a client written for remove.bg reads Cutout's answers the same way. Nothing here touches pixels:
`app/services/imaging/removebg_layout.py` and the pipeline apply what is parsed here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import ImageColor

MEGAPIXEL = 1_000_000

# The output's pixel cap for each `size`; remove.bg's legacy names map onto the same caps.
SIZE_PIXELS: Mapping[str, int] = {
    "preview": MEGAPIXEL // 4,
    "small": MEGAPIXEL // 4,
    "regular": MEGAPIXEL // 4,
    "medium": 1_500_000,
    "hd": 4 * MEGAPIXEL,
    "full": 25 * MEGAPIXEL,
    "4k": 25 * MEGAPIXEL,
    "auto": 25 * MEGAPIXEL,
}
TYPES = ("auto", "person", "product", "car", "animal", "graphic", "transportation")
TYPE_LEVELS = ("none", "latest", "1", "2")
FORMATS = ("auto", "png", "jpg", "webp", "zip")
CHANNELS = ("rgba", "alpha")
# The largest margin remove.bg adds on one side of a crop: half the subject, or 500 px.
MAX_MARGIN_PX = 500
MAX_MARGIN_SHARE = 0.5

TITLES: Mapping[str, str] = {
    "missing_source": "No image given",
    "multiple_sources": "More than one image given",
    "failed_to_read_image": "Failed to read the image",
    "file_too_large": "File too large",
    "resolution_too_high": "Resolution too high",
    "invalid_bg_color": "Invalid background colour",
    "multiple_bg_sources": "More than one background given",
    "failed_to_read_bg_image": "Failed to read the background image",
    "invalid_crop_margin": "Invalid crop margin",
    "invalid_size": "Invalid size",
    "invalid_type": "Invalid type",
    "invalid_type_level": "Invalid type level",
    "invalid_format": "Invalid format",
    "invalid_channels": "Invalid channels",
    "invalid_scale": "Invalid scale",
    "invalid_position": "Invalid position",
    "invalid_roi": "Invalid region of interest",
    "roi_exceeds_bounds": "Region of interest outside the image",
    "invalid_boolean": "Invalid boolean",
    "unknown_foreground": "Could not identify the foreground",
    "invalid_url": "Invalid image URL",
    "url_not_allowed": "Image URL not allowed",
    "failed_to_download": "Failed to download the image",
    "invalid_request": "Invalid request",
}


class OptionError(ValueError):
    """A request remove.bg would refuse; `code` is remove.bg's, `detail` says what to change."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.title = TITLES.get(code, "Invalid request")
        self.detail = detail


@dataclass(frozen=True)
class Length:
    """A distance in pixels, or a share (0-1) of some whole that is known later."""

    value: float
    share: bool = False

    def pixels(self, whole: int) -> int:
        return round(self.value * whole) if self.share else round(self.value)


@dataclass(frozen=True)
class Options:
    size: str = "preview"
    type: str = "auto"
    format: str = "auto"
    channels: str = "rgba"
    bg_color: tuple[int, int, int, int] | None = None
    crop: bool = False
    crop_margin: tuple[Length, Length, Length, Length] = (Length(0),) * 4  # top right bottom left
    scale: float | None = None  # share of the canvas the subject fills; None: as it was
    position: tuple[float, float] | None = None  # 0-1 along each free axis; None: as it was
    roi: tuple[Length, Length, Length, Length] = (
        Length(0, True),
        Length(0, True),
        Length(1, True),
        Length(1, True),
    )  # x1 y1 x2 y2
    add_shadow: bool = False
    semitransparency: bool = True

    @property
    def max_pixels(self) -> int:
        return SIZE_PIXELS[self.size]

    @property
    def opaque_background(self) -> bool:
        """True when the result has a solid background; `format=auto` then answers JPEG."""
        return self.bg_color is not None and self.bg_color[3] == 255

    def roi_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The region of interest in pixels of a width x height image, or roi_exceeds_bounds."""
        x1, y1, x2, y2 = self.roi
        box = (x1.pixels(width), y1.pixels(height), x2.pixels(width), y2.pixels(height))
        left, top, right, bottom = box
        if left < 0 or top < 0 or right > width or bottom > height:
            raise OptionError(
                "roi_exceeds_bounds",
                f"roi {left} {top} {right} {bottom} reaches outside the {width}x{height} image",
            )
        if right <= left or bottom <= top:
            raise OptionError("invalid_roi", "roi needs x1 < x2 and y1 < y2")
        return box


SOURCE_FIELDS = ("image_file", "image_file_b64", "image_url")
BG_FIELDS = ("bg_color", "bg_image_file", "bg_image_url")


def given(value: Any) -> bool:
    """remove.bg clients send unset options as empty strings or nulls: those are not given."""
    return value is not None and value != ""


def one_of(fields: Mapping[str, Any], names: tuple[str, ...], *, missing: str | None, many: str):
    """The one name among `names` that has a value; None or OptionError(missing/many)."""
    present = [name for name in names if given(fields.get(name))]
    if len(present) > 1:
        raise OptionError(many, f"send only one of {', '.join(present)}")
    if not present:
        if missing is not None:
            raise OptionError(missing, f"send one of {', '.join(names)}")
        return None
    return present[0]


def parse(fields: Mapping[str, Any]) -> Options:
    """Options from a request's fields (form values or JSON); sources are checked elsewhere."""
    one_of(fields, BG_FIELDS, missing=None, many="multiple_bg_sources")
    size = _choice(fields, "size", tuple(SIZE_PIXELS), "preview", "invalid_size")
    kind = _choice(fields, "type", TYPES, "auto", "invalid_type")
    _choice(fields, "type_level", TYPE_LEVELS, "latest", "invalid_type_level")
    out_format = _choice(fields, "format", FORMATS, "auto", "invalid_format")
    channels = _choice(fields, "channels", CHANNELS, "rgba", "invalid_channels")
    scale = _scale(fields.get("scale"))
    position = _position(fields.get("position"))
    if position is None and scale is not None:
        position = (0.5, 0.5)  # remove.bg centres a scaled subject unless told otherwise
    return Options(
        size=size,
        type=kind,
        format=out_format,
        channels=channels,
        bg_color=_color(fields.get("bg_color")),
        crop=_boolean(fields, "crop", False),
        crop_margin=_margins(fields.get("crop_margin")),
        scale=scale,
        position=position,
        roi=_roi(fields.get("roi")),
        add_shadow=_boolean(fields, "add_shadow", False),
        semitransparency=_boolean(fields, "semitransparency", True),
    )


def _text(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else str(value).strip().lower()


def _choice(
    fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str, code: str
) -> str:
    value = fields.get(name)
    if not given(value):
        return default
    text = _text(value)
    if text not in allowed:
        raise OptionError(code, f"{name} {value!r} is not one of {', '.join(allowed)}")
    return text


def _boolean(fields: Mapping[str, Any], name: str, default: bool) -> bool:
    value = fields.get(name)
    if not given(value):
        return default
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise OptionError("invalid_boolean", f"{name} {value!r} is not true or false")


_NUMBER = r"(\d+(?:\.\d+)?)"
_LENGTH = re.compile(_NUMBER + r"\s*(px|%)?")
_PERCENT = re.compile(_NUMBER + r"\s*%")


def _length(text: str, code: str, name: str) -> Length:
    match = _LENGTH.fullmatch(text)
    if not match:
        raise OptionError(code, f"{name} {text!r} is not a length like 30px or 10%")
    number = float(match.group(1))
    return Length(number / 100, True) if match.group(2) == "%" else Length(number)


def _parts(value: Any) -> list[str]:
    return [part for part in re.split(r"[\s,]+", _text(value)) if part]


def _margins(value: Any) -> tuple[Length, Length, Length, Length]:
    if not given(value):
        return (Length(0),) * 4
    parts = [_length(part, "invalid_crop_margin", "crop_margin") for part in _parts(value)]
    if len(parts) == 1:
        parts *= 4
    elif len(parts) == 2:
        parts = [parts[0], parts[1], parts[0], parts[1]]  # top/bottom, left/right: as in CSS
    elif len(parts) != 4:
        raise OptionError("invalid_crop_margin", "crop_margin takes 1, 2 or 4 values")
    for part in parts:
        if (part.share and part.value > MAX_MARGIN_SHARE) or (
            not part.share and part.value > MAX_MARGIN_PX
        ):
            raise OptionError(
                "invalid_crop_margin",
                f"a margin is at most {MAX_MARGIN_SHARE:.0%} of the subject or {MAX_MARGIN_PX}px",
            )
    top, right, bottom, left = parts
    return top, right, bottom, left


def _scale(value: Any) -> float | None:
    if not given(value) or _text(value) == "original":
        return None
    match = _PERCENT.fullmatch(_text(value))
    share = float(match.group(1)) / 100 if match else -1.0
    if not 0.1 <= share <= 1.0:
        raise OptionError("invalid_scale", f"scale {value!r} is not 'original' or 10% to 100%")
    return share


def _position(value: Any) -> tuple[float, float] | None:
    if not given(value) or _text(value) == "original":
        return None
    if _text(value) == "center":
        return 0.5, 0.5
    shares: list[float] = []
    for part in _parts(value):
        match = _PERCENT.fullmatch(part)
        if not match or float(match.group(1)) > 100:
            raise OptionError(
                "invalid_position",
                f"position {value!r} is not 'original', 'center' or 0% to 100% (one or two)",
            )
        shares.append(float(match.group(1)) / 100)
    if len(shares) == 1:
        shares *= 2
    if len(shares) != 2:
        raise OptionError("invalid_position", "position takes one or two percentages")
    return shares[0], shares[1]


def _roi(value: Any) -> tuple[Length, Length, Length, Length]:
    if not given(value):
        return Options().roi
    parts = [_length(part, "invalid_roi", "roi") for part in _parts(value)]
    if len(parts) != 4:
        raise OptionError("invalid_roi", "roi takes four values: x1 y1 x2 y2")
    if any(part.share and part.value > 1 for part in parts):
        raise OptionError("roi_exceeds_bounds", "a roi percentage is over 100%")
    x1, y1, x2, y2 = parts
    return x1, y1, x2, y2


def _color(value: Any) -> tuple[int, int, int, int] | None:
    if not given(value):
        return None
    text = str(value).strip()
    digits = text.removeprefix("#")
    if re.fullmatch(r"[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}", digits):
        if len(digits) <= 4:
            digits = "".join(c * 2 for c in digits)
        digits = digits if len(digits) == 8 else digits + "ff"
        red, green, blue, alpha = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
        return red, green, blue, alpha
    if re.fullmatch(r"[A-Za-z]{3,30}", text):
        try:
            red, green, blue = ImageColor.getrgb(text.lower())[:3]
        except ValueError:
            pass
        else:
            return red, green, blue, 255
    raise OptionError(
        "invalid_bg_color", f"bg_color {value!r} is not a hex colour (81d4fa) or a colour name"
    )
