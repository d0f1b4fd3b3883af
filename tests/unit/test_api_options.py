"""remove.bg's options as the API reads them, the rate limiter's windows and the credit figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.services.api_limits import RateLimited, RateLimiter, units_of
from app.services.imaging.removebg_layout import fitted_size, largest_output
from app.services.imaging.removebg_options import Length, OptionError, parse
from app.usecases.api_calls import credits_text


@pytest.mark.parametrize(
    ("raw", "rgba"),
    [
        ("81d4fa", (0x81, 0xD4, 0xFA, 255)),
        ("#fff", (255, 255, 255, 255)),
        ("f008", (255, 0, 0, 0x88)),
        ("#11223344", (0x11, 0x22, 0x33, 0x44)),
        ("Green", (0, 128, 0, 255)),
    ],
)
def test_background_colours_in_every_form(raw: str, rgba: tuple[int, ...]) -> None:
    assert parse({"bg_color": raw}).bg_color == rgba


def test_sizes_and_their_legacy_names() -> None:
    caps = {name: parse({"size": name}).max_pixels for name in ("small", "regular", "medium")}
    assert caps == {"small": 250_000, "regular": 250_000, "medium": 1_500_000}
    assert parse({"size": "4K"}).max_pixels == parse({"size": "full"}).max_pixels == 25_000_000
    assert parse({}).size == "preview"  # remove.bg's default


def test_margins_positions_scales_and_rois() -> None:
    options = parse({"crop": "true", "crop_margin": "10px 5%"})
    assert options.crop and options.crop_margin == (
        Length(10),
        Length(0.05, True),
        Length(10),
        Length(0.05, True),
    )
    assert parse({"scale": "50%"}).position == (0.5, 0.5)  # a scaled subject is centred
    assert parse({"position": "25%"}).position == (0.25, 0.25)
    assert parse({"position": "0% 100%", "scale": "original"}).scale is None
    assert parse({"roi": "10% 0 50% 100px"}).roi_box(200, 400) == (20, 0, 100, 100)
    with pytest.raises(OptionError) as outside:
        parse({"roi": "0 0 300px 10px"}).roi_box(200, 100)
    assert outside.value.code == "roi_exceeds_bounds"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"crop_margin": "501px"}, "invalid_crop_margin"),
        ({"scale": "101%"}, "invalid_scale"),
        ({"position": "50% 50% 50%"}, "invalid_position"),
        ({"roi": "0 0 1 1 1"}, "invalid_roi"),
        ({"crop": "maybe"}, "invalid_boolean"),
        ({"type": "robot"}, "invalid_type"),
        ({"bg_color": "red", "bg_image_url": "https://x.test/a.jpg"}, "multiple_bg_sources"),
    ],
)
def test_refusals_carry_remove_bg_codes(fields: dict[str, str], code: str) -> None:
    with pytest.raises(OptionError) as refused:
        parse(fields)
    assert refused.value.code == code and refused.value.title and refused.value.detail


def test_fitting_never_exceeds_the_cap_and_keeps_the_shape() -> None:
    for width, height in ((4000, 3000), (5000, 5000), (123, 4567), (640, 480)):
        fitted_w, fitted_h = fitted_size(width, height, 250_000)
        assert fitted_w * fitted_h <= 250_000 or (fitted_w, fitted_h) == (width, height)
        assert abs(fitted_w / fitted_h - width / height) < 0.05 * width / height
    grown = largest_output(400, 300, parse({"crop": "true"}))
    assert grown[0] * grown[1] <= 250_000


def test_the_credit_figure_is_a_plain_decimal() -> None:
    assert [credits_text(m) for m in (500, 1100, 2000, 1050, 0)] == ["0.5", "1.1", "2", "1.05", "0"]


def test_the_rate_limit_counts_megapixel_images_in_one_minute_windows() -> None:
    limiter = RateLimiter(10)
    start = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert units_of(500, 500) == 1 and units_of(4000, 3000) == 12
    assert limiter.take(1, 6, start).remaining == 4
    with pytest.raises(RateLimited) as refused:
        limiter.take(1, 6, start + timedelta(seconds=10))
    assert refused.value.retry_after == 45
    assert limiter.take(2, 6, start).remaining == 4  # another account has its own count
    assert limiter.take(1, 6, start + timedelta(seconds=55)).remaining == 4  # a new window
    assert limiter.take(3, 25, start).remaining == 0  # alone it passes, or it never could
