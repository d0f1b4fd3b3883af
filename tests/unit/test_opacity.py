"""Cutouts are fully opaque: the subject exactly 255, the background exactly 0, soft only at edges.

Every figure comes from the real model's output on real photos (scikit-image's), against rembg's
own `remove()` on the same weights. The full u2net runs where `cutout-setup --model u2net`
provisioned it and is skipped, saying so, where it did not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from app.services.imaging import engine
from tests.unit.test_engine import scene

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
MODELS = [
    "u2netp",
    pytest.param(
        "u2net",
        marks=pytest.mark.skipif(
            not (MODELS_DIR / "u2net.onnx").is_file(),
            reason="u2net not provisioned here (cutout-setup --model u2net)",
        ),
    ),
]


def photo(name: str, darken: float = 1.0) -> np.ndarray:
    pixels = getattr(skimage.data, name)()
    pixels = np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels[..., :3]
    return (pixels * darken).astype(np.uint8)


def opaque_share(alpha: np.ndarray) -> float:
    return float(((alpha == 0) | (alpha == 255)).mean())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module", params=MODELS)
def models(request):
    """Ours and rembg's session on the same weights."""
    name = request.param
    ours = engine.load_session(MODELS_DIR, name, 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("U2NET_HOME", str(MODELS_DIR))
        from rembg import new_session

        theirs = new_session(name)
    return ours, theirs


@pytest.mark.parametrize("darken", [1.0, 0.3], ids=["photo", "dark"])
@pytest.mark.parametrize("name", PHOTOS)
def test_almost_every_pixel_is_fully_opaque_or_fully_clear(models, name, darken):
    from rembg import remove

    ours, theirs = models
    pixels = photo(name, darken)
    alpha = engine.predict_alpha(ours, pixels)
    reference = np.asarray(remove(Image.fromarray(pixels), session=theirs, only_mask=True))
    assert opaque_share(alpha) >= 0.95
    assert iou(alpha >= 128, reference >= 128) >= 0.97
    assert (alpha == 255).any() and (alpha == 0).any()  # dark photos reach 255 too


@pytest.mark.parametrize("name", PHOTOS)
def test_soft_pixels_lie_only_along_the_outline(models, name):
    ours, _ = models
    pixels = photo(name)
    height, width = pixels.shape[:2]
    alpha = engine.predict_alpha(ours, pixels)
    subject = (alpha >= 128).astype(np.uint8)
    # Distance of every pixel to the other side of the outline, whichever side it is on.
    to_outline = np.minimum(
        cv2.distanceTransform(subject, cv2.DIST_L2, 3),
        cv2.distanceTransform(1 - subject, cv2.DIST_L2, 3),
    )
    soft = (alpha > 0) & (alpha < 255)
    assert soft.any()
    assert to_outline[soft].max() <= engine.edge_band(width, height) + 2


def test_subject_is_exactly_opaque_and_background_exactly_clear_on_a_colour():
    """Laid on a colour, the subject shows none of the old background and the background
    none of its old self: only a thin band along the edge mixes the two."""
    session = engine.load_session(MODELS_DIR, "u2netp", 2)
    pixels, truth = scene(640, 480, seed=1)
    rgba = np.asarray(engine.cut_out(session, Image.fromarray(pixels))).astype(np.float64)
    green = np.array([0.0, 200.0, 0.0])
    laid = rgba[..., :3] * rgba[..., 3:] / 255 + green * (1 - rgba[..., 3:] / 255)
    kernel = np.ones((9, 9), np.uint8)
    inside = cv2.erode(truth.astype(np.uint8), kernel) > 0
    outside = cv2.erode((~truth).astype(np.uint8), kernel) > 0
    assert (rgba[..., 3][inside] == 255).all()
    assert np.array_equal(laid[inside], pixels[inside].astype(np.float64))
    assert (rgba[..., 3][outside] == 0).all()
    assert (laid[outside] == green).all()


@pytest.mark.parametrize("size", [(96, 72), (40, 300)])
def test_small_and_narrow_photos_reach_full_opacity_too(size):
    """Below the model's 320 px the band keeps its minimum width and still saturates."""
    session = engine.load_session(MODELS_DIR, "u2netp", 2)
    width, height = size
    pixels, truth = scene(width, height, seed=2)
    alpha = engine.predict_alpha(session, pixels)
    inside = cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (alpha[inside] == 255).mean() >= 0.95
    assert opaque_share(alpha) >= 0.8


def test_large_photo_keeps_a_thin_smooth_edge():
    """At 12 MP the model's 320 px map is stretched 12x: the edge stays a few pixels wide and
    its alpha steps smoothly, instead of the map's blur or its 320 px staircase."""
    session = engine.load_session(MODELS_DIR, "u2netp", 2)
    pixels = cv2.resize(photo("coffee"), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    alpha = engine.predict_alpha(session, pixels)
    assert opaque_share(alpha) >= 0.99
    soft = alpha[(alpha > 0) & (alpha < 255)]
    assert np.unique(soft).size >= 16  # a ramp, not a hard cut
    band = engine.edge_band(4000, 3000)
    assert 1.5 <= band <= 8
