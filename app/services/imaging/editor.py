"""The editor's operations on a cutout, composed in one pass at full resolution on export."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from app.services.imaging.engine import as_pixels, png_bytes

BACKGROUNDS = ("transparent", "color", "image", "blur")
CANVASES = ("original", "1:1", "4:5", "16:9", "custom")
FORMATS = ("png", "jpeg", "webp")
RATIOS = {"1:1": (1, 1), "4:5": (4, 5), "16:9": (16, 9)}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_MAX_PIXELS = 25_000_000
# Alpha at or above this counts as subject when finding its bounds: the model's upscaled mask
# leaves faint values around the subject that should not stretch a crop.
SUBJECT_ALPHA = 16
_HEX = re.compile(r"#?([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_BAND_ROWS = 256


class BadParameter(ValueError):
    """An editing parameter out of range; `parameter` names it and the message starts with it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_color(value: str) -> tuple[int, int, int, int]:
    """'#rgb', '#rgba', '#rrggbb' or '#rrggbbaa' (the '#' optional) as RGBA 0-255."""
    match = _HEX.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise BadParameter("color", f"{value!r} is not a hex colour like #1e90ff or #1e90ff80")
    digits = match.group(1)
    if len(digits) <= 4:
        digits = "".join(c * 2 for c in digits)
    if len(digits) == 6:
        digits += "ff"
    red, green, blue, alpha = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return red, green, blue, alpha


@dataclass(frozen=True)
class EditSpec:
    """Everything the editor can do to one cutout; refused at construction if out of range.

    Sizes in pixels are of the output; shadow and blur sizes are fractions of the subject's
    height (shadow) or the image's long side (blur) so an edit looks the same at any resolution.
    """

    background: str = "transparent"
    color: str = "#ffffff"
    blur: float = 0.02
    shadow: bool = False
    shadow_opacity: float = 0.5
    shadow_blur: float = 0.03
    shadow_offset: tuple[float, float] = (0.0, 0.02)
    crop: bool = False
    margin: int = 0
    canvas: str = "original"
    width: int | None = None
    height: int | None = None
    scale: float = 1.0
    position: tuple[float, float] | None = None
    format: str = "png"
    quality: int = 90
    max_side: int | None = None  # the output's long side at most this many pixels
    mask_only: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    rgba: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise BadParameter("background", f"{self.background!r} is not one of {BACKGROUNDS}")
        object.__setattr__(self, "rgba", parse_color(self.color))
        if not 0 < self.blur <= 0.5:
            raise BadParameter("blur", f"{self.blur} is not in (0, 0.5]")
        if not 0 <= self.shadow_opacity <= 1:
            raise BadParameter("shadow_opacity", f"{self.shadow_opacity} is not in [0, 1]")
        if not 0 <= self.shadow_blur <= 0.5:
            raise BadParameter("shadow_blur", f"{self.shadow_blur} is not in [0, 0.5]")
        if any(abs(v) > 1 for v in self.shadow_offset):
            raise BadParameter("shadow_offset", f"{self.shadow_offset} is over 1 subject height")
        if self.margin < 0:
            raise BadParameter("margin", f"{self.margin} px is negative")
        if self.canvas not in CANVASES:
            raise BadParameter("canvas", f"{self.canvas!r} is not one of {CANVASES}")
        if self.canvas == "custom":
            if not self.width or not self.height or self.width < 1 or self.height < 1:
                raise BadParameter(
                    "canvas", f"custom size {self.width}x{self.height} needs positive pixels"
                )
            if self.width * self.height > self.max_pixels:
                raise BadParameter(
                    "canvas",
                    f"{self.width}x{self.height} is {self.width * self.height / 1e6:.1f} "
                    f"megapixels; the limit is {self.max_pixels / 1e6:g}",
                )
        if not 0 < self.scale <= 1:
            raise BadParameter("scale", f"{self.scale} is not in (0, 1]")
        if self.position is not None and not all(0 <= v <= 1 for v in self.position):
            raise BadParameter("position", f"{self.position} is not within the canvas (0-1)")
        if self.format not in FORMATS:
            raise BadParameter("format", f"{self.format!r} is not one of {FORMATS}")
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise BadParameter("quality", f"{self.quality} is not in 1-100")
        if self.max_side is not None and not 16 <= self.max_side <= 20_000:
            raise BadParameter("max_side", f"{self.max_side} px is not in 16-20000")


# (left, top, width, height) of the subject in the output's pixels, as remove.bg reports it.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Exported:
    data: bytes
    width: int
    height: int
    media_type: str
    extension: str
    subject: Box = (0, 0, 0, 0)


def subject_bounds(alpha: np.ndarray) -> Box:
    """The subject's (left, top, width, height); all zero when there is no subject."""
    points = cv2.findNonZero((alpha >= SUBJECT_ALPHA).astype(np.uint8))
    if points is None:
        return 0, 0, 0, 0
    x, y, w, h = cv2.boundingRect(points)
    return int(x), int(y), int(w), int(h)


def subject_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around the subject; the whole image when there is none."""
    x, y, w, h = subject_bounds(alpha)
    if not w:
        return 0, 0, alpha.shape[1], alpha.shape[0]
    return x, y, x + w, y + h


def crop_box(alpha: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """The subject's box grown by `margin`; refused when the margin dwarfs the subject."""
    left, top, right, bottom = subject_box(alpha)
    limit = min(right - left, bottom - top) / 2
    if margin > limit:
        raise BadParameter(
            "margin",
            f"{margin} px is over half the subject ({right - left}x{bottom - top} px)",
        )
    return left - margin, top - margin, right + margin, bottom + margin


def canvas_size(content_width: int, content_height: int, spec: EditSpec) -> tuple[int, int]:
    """The output's pixel size for content of this size (capped to the pixel limit)."""
    if spec.canvas == "custom":
        assert spec.width and spec.height
        return spec.width, spec.height
    if spec.canvas == "original":
        width, height = content_width, content_height
    else:
        ratio_w, ratio_h = RATIOS[spec.canvas]
        # The smallest canvas of that shape holding the content at its own resolution.
        width = max(content_width, content_height * ratio_w / ratio_h) / spec.scale
        height = width * ratio_h / ratio_w
    pixels = width * height
    shrink = min(1.0, (spec.max_pixels / pixels) ** 0.5) if pixels else 1.0
    return max(1, int(width * shrink)), max(1, int(height * shrink))


def _crop_padded(array: np.ndarray, box: tuple[int, int, int, int], pad: str) -> np.ndarray:
    """array[top:bottom, left:right], extended past the edges (zeros or the edge's pixels)."""
    left, top, right, bottom = box
    height, width = array.shape[:2]
    inner = array[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    border = (max(-top, 0), max(bottom - height, 0), max(-left, 0), max(right - width, 0))
    if not any(border):
        return inner
    kind = cv2.BORDER_CONSTANT if pad == "zero" else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(np.ascontiguousarray(inner), *border, kind, value=0)


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height and centre-crop, as CSS object-fit: cover."""
    source_h, source_w = image.shape[:2]
    factor = max(width / source_w, height / source_h)
    new_w, new_h = max(width, round(source_w * factor)), max(height, round(source_h * factor))
    if (new_w, new_h) != (source_w, source_h):
        shrinking = factor < 1
        image = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return image[top : top + height, left : left + width]


def _blurred(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """A strong Gaussian blur, computed small and scaled back: the same look at a fraction of
    the cost of blurring 25 MP with a kernel hundreds of pixels wide."""
    height, width = rgb.shape[:2]
    sigma = max(1.0, fraction * max(width, height))
    factor = min(1.0, 8.0 / sigma)  # keep about 8 px of sigma in the small copy
    small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * factor, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _resize_premultiplied(
    rgb: np.ndarray, alpha: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize colour weighted by alpha, so the background's colour does not bleed into edges."""
    shrinking = width < alpha.shape[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    weight = alpha.astype(np.float32) / 255
    premultiplied = cv2.resize(
        rgb.astype(np.float32) * weight[..., None], (width, height), interpolation=method
    )
    new_alpha = np.clip(cv2.resize(weight, (width, height), interpolation=method), 0, 1)
    safe = np.maximum(new_alpha, 1e-6)[..., None]
    new_rgb = np.clip(premultiplied / safe + 0.5, 0, 255).astype(np.uint8)
    return new_rgb, (new_alpha * 255 + 0.5).astype(np.uint8)


def _over_bands(bottom: np.ndarray, top_rgb: np.ndarray | None, top_alpha: np.ndarray) -> None:
    """Porter-Duff 'over' in place on an RGBA canvas (straight alpha), a band of rows at a time
    so a 25 MP canvas never needs a full-size float copy. top_rgb None means black (shadow)."""
    for start in range(0, bottom.shape[0], _BAND_ROWS):
        rows = slice(start, start + _BAND_ROWS)
        src_a = top_alpha[rows].astype(np.float32)[..., None] / 255
        dst = bottom[rows].astype(np.float32)
        dst_a = dst[..., 3:] / 255
        out_a = src_a + dst_a * (1 - src_a)
        src_rgb = 0.0 if top_rgb is None else top_rgb[rows].astype(np.float32)
        premultiplied = src_rgb * src_a + dst[..., :3] * dst_a * (1 - src_a)
        colour = np.where(out_a > 0, premultiplied / np.maximum(out_a, 1e-6), 0)
        bottom[rows, :, :3] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        bottom[rows, :, 3] = np.clip(out_a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)


def _paste(canvas_shape: tuple[int, int], layer: np.ndarray, left: int, top: int) -> np.ndarray:
    """`layer` placed at (left, top) on an empty canvas, clipped to it."""
    height, width = canvas_shape
    placed = np.zeros((height, width, *layer.shape[2:]), dtype=layer.dtype)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + layer.shape[1], width), min(top + layer.shape[0], height)
    if x1 > x0 and y1 > y0:
        placed[y0:y1, x0:x1] = layer[y0 - top : y1 - top, x0 - left : x1 - left]
    return placed


def render(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    spec: EditSpec,
    *,
    background_image: Image.Image | None = None,
) -> Image.Image:
    """The edited result as an image: RGBA, or L for mask only. Nothing is encoded here."""
    return _render(image, alpha, spec, background_image)[0]


def _render(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    spec: EditSpec,
    background_image: Image.Image | None,
) -> tuple[Image.Image, Box]:
    pixels = as_pixels(image)
    rgb = pixels if pixels.ndim == 3 else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    rgb = rgb[..., :3]
    if alpha.shape != rgb.shape[:2]:
        raise BadParameter("mask", f"mask is {alpha.shape[::-1]}, image is {rgb.shape[1::-1]}")
    if spec.background == "image" and background_image is None:
        raise BadParameter("background", "'image' needs a background image")

    box = crop_box(alpha, spec.margin) if spec.crop else (0, 0, rgb.shape[1], rgb.shape[0])
    content_rgb = _crop_padded(rgb, box, "edge")
    content_alpha = _crop_padded(alpha, box, "zero")
    content_h, content_w = content_alpha.shape
    width, height = canvas_size(content_w, content_h, spec)

    factor = min(width * spec.scale / content_w, height * spec.scale / content_h)
    placed_w, placed_h = max(1, round(content_w * factor)), max(1, round(content_h * factor))
    if (placed_w, placed_h) == (content_w, content_h):
        subject_rgb, subject_alpha = content_rgb, content_alpha
    else:
        subject_rgb, subject_alpha = _resize_premultiplied(
            content_rgb, content_alpha, placed_w, placed_h
        )
    centre_x, centre_y = spec.position or (0.5, 0.5)
    left = round(centre_x * width - placed_w / 2)
    top = round(centre_y * height - placed_h / 2)
    alpha_on_canvas = _paste((height, width), subject_alpha, left, top)
    subject = subject_bounds(alpha_on_canvas)
    if spec.mask_only:
        return Image.fromarray(alpha_on_canvas, mode="L"), subject

    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    if spec.background == "color":
        canvas[:] = spec.rgba
    elif spec.background == "image":
        assert background_image is not None
        canvas[..., :3] = _cover(as_pixels(background_image.convert("RGB")), width, height)
        canvas[..., 3] = 255
    elif spec.background == "blur":
        canvas[..., :3] = _cover(_blurred(content_rgb, spec.blur), width, height)
        canvas[..., 3] = 255

    if spec.shadow and spec.shadow_opacity > 0:
        _over_bands(canvas, None, _shadow(alpha_on_canvas, placed_h, spec))
    _over_bands(canvas, _paste((height, width), subject_rgb, left, top), alpha_on_canvas)
    return Image.fromarray(canvas, mode="RGBA"), subject


def _shadow(alpha: np.ndarray, subject_height: int, spec: EditSpec) -> np.ndarray:
    """A soft dark copy of the subject's silhouette, offset and blurred, for under the subject."""
    dx = round(spec.shadow_offset[0] * subject_height)
    dy = round(spec.shadow_offset[1] * subject_height)
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(alpha, shift, alpha.shape[::-1], borderValue=0)
    sigma = spec.shadow_blur * subject_height
    if sigma >= 0.5:
        moved = _blurred_alpha(moved, sigma)
    return (moved.astype(np.float32) * spec.shadow_opacity + 0.5).astype(np.uint8)


def _blurred_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    factor = min(1.0, 8.0 / sigma)
    if factor == 1.0:
        return cv2.GaussianBlur(alpha, (0, 0), sigma)
    height, width = alpha.shape
    small = cv2.resize(
        alpha,
        (max(1, round(width * factor)), max(1, round(height * factor))),
        interpolation=cv2.INTER_AREA,
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma * factor)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _flatten(rgba: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """RGBA over an opaque colour: what JPEG, which has no alpha, must show."""
    flat = np.empty(rgba.shape[:2] + (4,), dtype=np.uint8)
    flat[:] = (*colour, 255)
    _over_bands(flat, rgba[..., :3], rgba[..., 3])
    return flat[..., :3]


def encode(result: Image.Image, spec: EditSpec, subject: Box = (0, 0, 0, 0)) -> Exported:
    """The rendered image in the asked format and quality (PNG is always lossless)."""
    pixels = as_pixels(result)
    height, width = pixels.shape[:2]
    if pixels.ndim == 3 and pixels.shape[2] == 4 and bool((pixels[..., 3] == 255).all()):
        pixels = np.ascontiguousarray(pixels[..., :3])  # opaque: no alpha channel to store
    encoders: dict[str, Callable[[np.ndarray], bytes]] = {
        "png": png_bytes,
        "jpeg": lambda p: _pillow_bytes(
            p if p.ndim == 2 or p.shape[2] == 3 else _flatten(p, (255, 255, 255)),
            "JPEG",
            quality=spec.quality,
        ),
        "webp": lambda p: _pillow_bytes(p, "WEBP", quality=spec.quality, method=0),
    }
    data = encoders[spec.format](pixels)
    extension = "jpg" if spec.format == "jpeg" else spec.format
    return Exported(data, width, height, MEDIA_TYPES[spec.format], extension, subject)


def _pillow_bytes(pixels: np.ndarray, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_name, **options)
    return buffer.getvalue()


def export(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    spec: EditSpec,
    *,
    background_image: Image.Image | None = None,
) -> Exported:
    """Every asked operation at full resolution, encoded: what the editor's download returns."""
    rendered, subject = _render(image, alpha, spec, background_image)
    if spec.max_side and max(rendered.size) > spec.max_side:
        rendered, subject = _shrunk(rendered, subject, spec.max_side)
    return encode(rendered, spec, subject)


def _shrunk(rendered: Image.Image, subject: Box, max_side: int) -> tuple[Image.Image, Box]:
    """The rendered result scaled down to a long side of `max_side` (the export's size)."""
    factor = max_side / max(rendered.size)
    size = (max(1, round(rendered.width * factor)), max(1, round(rendered.height * factor)))
    pixels = as_pixels(rendered)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        rgb, alpha = _resize_premultiplied(pixels[..., :3], pixels[..., 3], *size)
        small = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    else:
        small = Image.fromarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
    return small, tuple(round(v * factor) for v in subject)  # type: ignore[return-value]
