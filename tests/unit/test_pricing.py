"""The price table: the FAQ's rule written out by hand, the 25 MP limit, and monotonicity."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

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
    is_priced,
)
from app.settings import Settings
from tests.conftest import REPO

PRICED = sorted(PRICE_TABLE.surcharges, key=str)
SIDE = st.integers(min_value=1, max_value=6000)


# Worked by hand from the published rule: 0.5 credit up to 1 MP, 0.1 more for each further
# started 2 MP, never more than 1.1; AI Cut and hair refinement add 0.5 each.
@pytest.mark.parametrize(
    ("width", "height", "features", "expected"),
    [
        (1, 1, [], 500),
        (1000, 1000, [], 500),  # exactly 1 MP
        (1001, 1000, [], 600),  # one pixel row over: the first further 2 MP has started
        (1000, 3000, [], 600),  # 3 MP: exactly one further 2 MP
        (1001, 3000, [], 700),  # 3.003 MP: a second 2 MP has started
        (1920, 1080, [], 600),  # 2.07 MP
        (2592, 1944, [], 800),  # 5.04 MP: 4.04 MP over the first, three steps started
        (3840, 2160, [], 900),  # 8.29 MP (4K): four steps
        (1000, 11_000, [], 1_000),  # 11 MP: five steps exactly
        (1000, 11_001, [], 1_100),  # just over 11 MP: the cap is reached
        (4000, 3000, [], 1_100),  # the FAQ's typical 12 MP photo: 1.1
        (4000, 3250, [], 1_100),  # 13 MP: never above 1.1 (1.15 under the old slope)
        (5000, 5000, [], 1_100),  # 25 MP, the largest accepted: still 1.1 (was 1.7)
        (4000, 3000, [Feature.ai_cut], 1_600),
        (4000, 3000, [Feature.hair], 1_600),
        (4000, 3000, [Feature.ai_cut, Feature.hair], 2_100),
        (1000, 1000, [Feature.ai_cut, Feature.hair], 1_500),
        (5000, 5000, [Feature.ai_cut, Feature.hair], 2_100),
        (4000, 3000, [Feature.bulk, Feature.editor, Feature.api], 1_100),
        (4000, 3000, [Feature.ai_cut, Feature.ai_cut], 1_600),  # a feature counts once
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
    assert not is_priced(feature)
    with pytest.raises(UnpricedFeature):
        cost_of(100, 100, [feature])


@given(SIDE, SIDE, st.sets(st.sampled_from(PRICED)))
def test_background_removal_stays_within_the_faqs_range(
    width: int, height: int, features: set[Feature]
) -> None:
    """Whatever the size: whole milli-credits, 0.5 to 1.1 for the removal, +0.5 per option."""
    if width * height > 25 * MEGAPIXEL:
        with pytest.raises(ImageTooLarge):
            cost_of(width, height, features)
        return
    cost = cost_of(width, height, features)
    options = 500 * len(features & {Feature.ai_cut, Feature.hair})
    assert type(cost) is int
    assert 500 <= cost - options <= 1_100
    if width * height <= MEGAPIXEL:
        assert cost - options == 500
    if width * height > 11 * MEGAPIXEL:
        assert cost - options == 1_100


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


def test_a_megapixel_limit_the_price_table_does_not_cover_is_refused_at_start_up(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    assert Settings(data_dir=tmp_path, max_megapixels=25).max_pixels == 25 * MEGAPIXEL
    with pytest.raises(ValidationError, match="more than the price table covers"):
        Settings(data_dir=tmp_path, max_megapixels=25.5)
    env = {**os.environ, "CUTOUT_DATA_DIR": str(tmp_path), "CUTOUT_MAX_MEGAPIXELS": "30"}
    started = subprocess.run(
        [sys.executable, "-c", "import app.app"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    assert (
        "Cutout cannot start: CUTOUT_MAX_MEGAPIXELS: 30 megapixels is more than the price "
        "table covers (25)"
    ) in started.stderr
