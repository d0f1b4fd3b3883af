"""What an image costs in integer milli-credits: the one price table for the UI, API and workers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

MILLI = 1_000  # milli-credits per credit
MEGAPIXEL = 1_000_000


class Feature(StrEnum):
    background_removal = "background_removal"
    ai_cut = "ai_cut"
    hair = "hair"
    bulk = "bulk"
    editor = "editor"
    api = "api"
    # Standard-only tools, each behind a feature flag until it ships.
    ai_background = "ai_background"
    image_generation = "image_generation"
    object_removal = "object_removal"
    super_resolution = "super_resolution"


FEATURE_LABELS: Mapping[Feature, str] = MappingProxyType(
    {
        Feature.background_removal: "Background removal",
        Feature.ai_cut: "AI Cut",
        Feature.hair: "Hair refinement",
        Feature.bulk: "Bulk processing",
        Feature.editor: "Editor",
        Feature.api: "API",
        Feature.ai_background: "AI background generation",
        Feature.image_generation: "Image generation",
        Feature.object_removal: "Object removal",
        Feature.super_resolution: "Image super resolution",
    }
)

STANDARD_ONLY_FEATURES: tuple[Feature, ...] = (
    Feature.ai_background,
    Feature.image_generation,
    Feature.object_removal,
    Feature.super_resolution,
)


class PricingError(ValueError):
    """The image or the options cannot be priced; nothing should be reserved."""


class ImageTooLarge(PricingError):
    def __init__(self, pixels: int, max_pixels: int) -> None:
        super().__init__(
            f"image has {pixels:,} pixels; the limit is {max_pixels // MEGAPIXEL} megapixels"
        )
        self.pixels = pixels
        self.max_pixels = max_pixels


class UnpricedFeature(PricingError):
    def __init__(self, feature: Feature) -> None:
        super().__init__(f"{FEATURE_LABELS[feature]} has no price yet")
        self.feature = feature


@dataclass(frozen=True)
class PriceTable:
    """Background removal rises with resolution up to a cap; options add a fixed surcharge.

    The rule published in the FAQ: 0.5 credit up to 1 MP, 0.1 more for each further started
    2 MP, so a typical 12 MP photo costs 1.1, and never more than 1.1 however large.
    """

    base: int = 500  # background removal, up to `base_pixels`
    base_pixels: int = MEGAPIXEL
    per_step: int = 100  # for each further started step of `step_pixels`
    step_pixels: int = 2 * MEGAPIXEL
    cap: int = 1_100  # background removal never costs more than this
    max_pixels: int = 25 * MEGAPIXEL  # the largest image the table prices
    # Extra segmentation passes on top of background removal. Features priced at 0 only change
    # where the work happens (bulk, editor, API); features missing here cannot be priced yet.
    surcharges: Mapping[Feature, int] = field(
        default_factory=lambda: MappingProxyType(
            {
                Feature.background_removal: 0,
                Feature.ai_cut: 500,
                Feature.hair: 500,
                Feature.bulk: 0,
                Feature.editor: 0,
                Feature.api: 0,
            }
        )
    )


PRICE_TABLE = PriceTable()


def cost_of(
    width: int, height: int, features: Iterable[Feature] = (), *, table: PriceTable = PRICE_TABLE
) -> int:
    """Milli-credits to process one image; raises PricingError before anything is reserved."""
    if width < 1 or height < 1:
        raise PricingError(f"image size {width}x{height} is not a real image")
    pixels = width * height
    if pixels > table.max_pixels:
        raise ImageTooLarge(pixels, table.max_pixels)
    extra_pixels = max(0, pixels - table.base_pixels)
    started_steps = -(-extra_pixels // table.step_pixels)  # ceiling division in integers
    total = min(table.base + started_steps * table.per_step, table.cap)
    for feature in set(features):
        if feature not in table.surcharges:
            raise UnpricedFeature(feature)
        total += table.surcharges[feature]
    return total


def is_priced(feature: Feature, *, table: PriceTable = PRICE_TABLE) -> bool:
    """Whether the table can price `feature`; a tool without a price must not be switched on."""
    return feature in table.surcharges


def format_credits(milli: int) -> str:
    """1050 -> '1.05', 10000 -> '10': what users read; never through floats."""
    sign = "-" if milli < 0 else ""
    whole, rest = divmod(abs(milli), MILLI)
    if not rest:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{rest:03d}".rstrip("0")
