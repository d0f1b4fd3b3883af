"""Reading what people upload: sniff, size-check before decoding, orient, normalise, or refuse."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

pillow_heif.register_heif_opener()

log = logging.getLogger("cutout.images")

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF", "MPO"}
ACCEPTED_LABEL = "JPEG, PNG, WebP, BMP, TIFF, GIF or HEIC"
ACCEPT_MIME = {
    "image/jpeg": [".jpg", ".jpeg"],
    "image/png": [".png"],
    "image/webp": [".webp"],
    "image/bmp": [".bmp"],
    "image/tiff": [".tif", ".tiff"],
    "image/gif": [".gif"],
    "image/heic": [".heic"],
    "image/heif": [".heif"],
}


class ImageRejected(ValueError):
    """An upload Cutout will not process; the message is written for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB or RGBA, 8 bits per channel, upright
    format: str
    name: str

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip().lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


def check_header(width: int, height: int, limits: Limits, name: str) -> None:
    """Refuse by the header's canvas size, before a single pixel is decoded."""
    if width < 1 or height < 1:
        raise ImageRejected(f"{name} has no pixels ({width}x{height}).")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"{name} is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {limits.max_pixels / 1e6:g} megapixels."
        )


def _to_8bit(image: Image.Image) -> Image.Image:
    """Bring any mode Pillow decodes to RGB or RGBA with 8 bits per channel."""
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "CMYK":
        return image.convert("RGB")
    if mode in ("P", "PA", "LA", "La", "RGBa"):
        return image.convert("RGBA")
    return image.convert("RGB")


def load_image(data: bytes, *, filename: str, limits: Limits) -> LoadedImage:
    """Decode an upload into an upright 8-bit image, or raise ImageRejected saying why."""
    name = PurePath(filename or "image").name or "image"
    if not data:
        raise ImageRejected(f"{name} is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            f"{name} is {_megabytes(len(data))}; the limit is {_megabytes(limits.max_bytes)}."
        )
    if _looks_like_svg(data[:2048]):
        raise ImageRejected(f"{name} is an SVG drawing; Cutout needs a photo ({ACCEPTED_LABEL}).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            if opened.format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    f"{name} is a {opened.format} file; Cutout reads {ACCEPTED_LABEL}."
                )
            check_header(opened.width, opened.height, limits, name)
            opened.seek(0)  # GIF, multi-page TIFF: the first frame
            opened.load()
            upright = ImageOps.exif_transpose(opened)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            f"{name} declares a canvas far over the "
            f"{limits.max_pixels / 1e6:g}-megapixel limit; it was not decoded."
        ) from None
    except UnidentifiedImageError:
        raise ImageRejected(
            f"{name} is not an image Cutout can read; send {ACCEPTED_LABEL}."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # The decoder's own words ("(1 bytes not processed)") help the operator, not the person.
        log.info("%s refused as corrupt: %s", name, error)
        raise ImageRejected(f"{name} is truncated or corrupt.") from None
    return LoadedImage(image=_to_8bit(upright), format=opened.format or "", name=name)


def preview_jpeg(image: Image.Image, *, max_side: int = 1280) -> bytes:
    """A small browser-viewable copy of the original: browsers cannot show HEIC."""
    preview = image.convert("RGB")
    preview.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def preview_webp(image: Image.Image | bytes, *, max_side: int = 1024, quality: int = 80) -> bytes:
    """A light copy of a cutout for the page (transparency kept): a few hundred KB at most,
    where the full PNG can weigh 10 MB. The full file is only ever the download."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    preview = image.convert("RGBA")
    preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    preview.save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()


def shrink_to_pixels(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image scaled down (aspect kept) to at most `max_pixels`; smaller ones unchanged."""
    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
