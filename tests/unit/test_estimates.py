"""Estimates: size and price from the header alone, the same prices the ledger charges."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.services.billing.pricing import Feature
from app.services.imaging.editor import EditSpec
from app.services.imaging.estimates import ENGINE_FEATURES, estimate
from app.services.imaging.images import ImageRejected, Limits

LIMITS = Limits(max_bytes=5_000_000, max_pixels=25_000_000)


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.new("RGB", (width, height), (200, 100, 50)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_megapixels_size_and_cost_per_feature():
    result = estimate(jpeg(2000, 1500), filename="shoe.jpg", limits=LIMITS)
    assert (result.width, result.height, result.megapixels) == (2000, 1500, 3.0)
    assert result.output_size == (2000, 1500)
    assert set(result.costs) == set(ENGINE_FEATURES)
    # 3 MP by the published rule: 0.5 for the first megapixel + 0.1 for one further started
    # 2 MP; AI Cut and hair refinement add 0.5 each.
    assert dict(result.costs) == {
        Feature.background_removal: 600,
        Feature.ai_cut: 1_100,
        Feature.hair: 1_100,
    }


def test_a_big_photo_is_quoted_at_the_cap():
    result = estimate(jpeg(5000, 4000), filename="big.jpg", limits=LIMITS)
    assert result.megapixels == 20.0
    assert result.costs[Feature.background_removal] == 1_100


def test_upright_size_follows_exif_orientation():
    result = estimate(jpeg(300, 200, orientation=6), filename="phone.jpg", limits=LIMITS)
    assert (result.width, result.height) == (200, 300)


def test_output_size_follows_the_canvas_and_is_unknown_when_cropping():
    data = jpeg(1600, 900)
    square = estimate(data, filename="a.jpg", limits=LIMITS, spec=EditSpec(canvas="1:1"))
    assert square.output_size == (1600, 1600)
    custom = EditSpec(canvas="custom", width=500, height=400)
    assert estimate(data, filename="a.jpg", limits=LIMITS, spec=custom).output_size == (500, 400)
    cropped = estimate(data, filename="a.jpg", limits=LIMITS, spec=EditSpec(crop=True))
    assert cropped.output_size is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
        (b"hello", "not an image"),
        (b"x" * 6_000_000, "limit"),
    ],
)
def test_what_load_image_refuses_is_refused_here(data, words):
    with pytest.raises(ImageRejected, match=words):
        estimate(data, filename="f.jpg", limits=LIMITS)


def test_over_the_pixel_limit_is_refused_before_decoding():
    small_limit = Limits(max_bytes=5_000_000, max_pixels=1_000_000)
    with pytest.raises(ImageRejected, match="megapixels"):
        estimate(jpeg(1200, 1000), filename="big.jpg", limits=small_limit)
