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


@pytest.mark.parametrize(
    ("width", "height", "removal"),
    [
        (1000, 1000, 500),  # exactly 1 MP: the base 0.5
        (1000, 1001, 600),  # one row more starts the first 2 MP step
        (1500, 2000, 600),  # 3 MP: still that one step
        (1501, 2000, 700),  # just over 3 MP: a second started step
        (3000, 3000, 900),  # 9 MP: four steps
        (3000, 3666, 1_000),  # just under 11 MP: five steps
        (3000, 3667, 1_100),  # just over 11 MP: six steps reach the cap
        (4000, 3000, 1_100),  # the FAQ's 12 MP phone photo
        (5000, 5000, 1_100),  # 25 MP, the largest: twelve steps would be 1.7, the cap holds
    ],
)
def test_quotes_follow_the_published_price_rule(width, height, removal):
    # Written out from the FAQ: 0.5 credit up to 1 MP, 0.1 more per further started 2 MP,
    # never more than 1.1; AI Cut and hair refinement each cost 0.5 on top.
    result = estimate(jpeg(width, height), filename="photo.jpg", limits=LIMITS)
    assert dict(result.costs) == {
        Feature.background_removal: removal,
        Feature.ai_cut: removal + 500,
        Feature.hair: removal + 500,
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
