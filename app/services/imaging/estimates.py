"""What processing a file will give and cost, read from its header alone (no model, no decode)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType

from PIL import Image, UnidentifiedImageError

from app.services.billing.pricing import PRICE_TABLE, Feature, PriceTable, cost_of
from app.services.imaging.editor import EditSpec, canvas_size
from app.services.imaging.images import ACCEPTED_FORMATS, ACCEPTED_LABEL, ImageRejected, Limits
from app.services.imaging.images import check_header as check_canvas
from app.services.imaging.pipeline import ENGINE_FEATURES

# EXIF orientations that turn the picture a quarter: the upright image swaps width and height.
_QUARTER_TURNS = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Estimate:
    name: str
    width: int  # upright, as the engine will see it
    height: int
    megapixels: float
    # None when cropping to the subject: the crop is only known once the model has run.
    output_size: tuple[int, int] | None
    costs: Mapping[Feature, int]  # milli-credits for one image with that feature


def upright_size(data: bytes, *, filename: str, limits: Limits) -> tuple[int, int]:
    """Width and height after EXIF orientation, from the header; refuses what load_image would."""
    name = PurePath(filename or "image").name or "image"
    if not data:
        raise ImageRejected(f"{name} is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"{name} is {len(data):,} bytes; the limit is {limits.max_bytes:,}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            f"{name} declares a canvas far over the {limits.max_pixels / 1e6:g}-megapixel limit."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRejected(
            f"{name} is not an image Cutout can read; send {ACCEPTED_LABEL}."
        ) from None
    if opened.format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{name} is a {opened.format} file; Cutout reads {ACCEPTED_LABEL}.")
    width, height = opened.size
    check_canvas(width, height, limits, name)
    if opened.getexif().get(_ORIENTATION_TAG) in _QUARTER_TURNS:
        width, height = height, width
    return width, height


def estimate(
    data: bytes,
    *,
    filename: str,
    limits: Limits,
    spec: EditSpec | None = None,
    features: Iterable[Feature] = ENGINE_FEATURES,
    table: PriceTable = PRICE_TABLE,
) -> Estimate:
    """Megapixels, output size and the credit cost of each feature, before anything is reserved."""
    width, height = upright_size(data, filename=filename, limits=limits)
    spec = spec or EditSpec()
    output = None if spec.crop else canvas_size(width, height, spec)
    costs = {feature: cost_of(width, height, [feature], table=table) for feature in features}
    return Estimate(
        name=PurePath(filename or "image").name or "image",
        width=width,
        height=height,
        megapixels=round(width * height / 1e6, 2),
        output_size=output,
        costs=MappingProxyType(costs),
    )
