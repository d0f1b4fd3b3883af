"""The price table: published examples, the 25 MP limit, and monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.billing.pricing import (
    MEGAPIXEL,
    PRICE_TABLE,
    STANDARD_ONLY_FEATURES,
    Feature,
    ImageTooLarge,
    PricingError,
    UnpricedFeature,
    cost_of,
    format_credits,
)

PRICED = sorted(PRICE_TABLE.surcharges, key=str)
SIDE = st.integers(min_value=1, max_value=6000)


@pytest.mark.parametrize(
    ("width", "height", "features", "expected"),
    [
        (1, 1, [], 500),
        (1000, 1000, [], 500),  # exactly 1 MP
        (1001, 1000, [], 550),  # one pixel row into the second megapixel
        (2000, 1000, [], 550),
        (4000, 3000, [], 1_050),  # the FAQ's 12 MP example
        (5000, 5000, [], 1_700),  # the largest accepted image
        (4000, 3000, [Feature.ai_cut], 1_550),
        (4000, 3000, [Feature.hair], 1_550),
        (4000, 3000, [Feature.ai_cut, Feature.hair], 2_050),
        (4000, 3000, [Feature.bulk, Feature.editor, Feature.api], 1_050),
        (4000, 3000, [Feature.ai_cut, Feature.ai_cut], 1_550),  # a feature counts once
    ],
)
def test_cost_matches_the_published_table(
    width: int, height: int, features: list[Feature], expected: int
) -> None:
    assert cost_of(width, height, features) == expected


def test_images_over_25_megapixels_are_refused() -> None:
    with pytest.raises(ImageTooLarge, match="25 megapixels"):
        cost_of(5000, 5001)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-5, 10)])
def test_impossible_sizes_are_refused(width: int, height: int) -> None:
    with pytest.raises(PricingError):
        cost_of(width, height)


@pytest.mark.parametrize("feature", STANDARD_ONLY_FEATURES)
def test_upcoming_tools_have_no_price_yet(feature: Feature) -> None:
    with pytest.raises(UnpricedFeature):
        cost_of(100, 100, [feature])


@given(SIDE, SIDE, st.sets(st.sampled_from(PRICED)))
def test_cost_is_whole_milli_credits_from_started_megapixels(
    width: int, height: int, features: set[Feature]
) -> None:
    pixels = width * height
    if pixels > 25 * MEGAPIXEL:
        with pytest.raises(ImageTooLarge):
            cost_of(width, height, features)
        return
    started_megapixels = (pixels + MEGAPIXEL - 1) // MEGAPIXEL
    surcharge = 500 * len(features & {Feature.ai_cut, Feature.hair})
    cost = cost_of(width, height, features)
    assert type(cost) is int
    assert cost == 500 + 50 * (started_megapixels - 1) + surcharge


@given(SIDE, SIDE, SIDE, SIDE, st.sets(st.sampled_from(PRICED)), st.sampled_from(PRICED))
def test_cost_never_falls_with_more_pixels_or_more_features(
    w1: int, h1: int, w2: int, h2: int, features: set[Feature], extra: Feature
) -> None:
    small, large = sorted([(w1, h1), (w2, h2)], key=lambda size: size[0] * size[1])
    if large[0] * large[1] > 25 * MEGAPIXEL:
        return
    assert cost_of(*small, features) <= cost_of(*large, features)
    assert cost_of(*small, features) <= cost_of(*small, features | {extra})


@pytest.mark.parametrize(
    ("milli", "shown"),
    [(0, "0"), (500, "0.5"), (1_050, "1.05"), (10_000, "10"), (1_234_567, "1,234.567")],
)
def test_credits_are_shown_without_floats(milli: int, shown: str) -> None:
    assert format_credits(milli) == shown
