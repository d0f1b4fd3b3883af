"""Background removal: the subject kept, the background gone, rembg's mask, lossless PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.services.imaging import engine
from app.services.imaging.images import Limits, load_image
from app.services.imaging.model_files import ModelMissing

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
LIMITS = Limits(max_bytes=50_000_000, max_pixels=25_000_000)


def scene(width: int = 320, height: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red ellipse on a striped, noisy background, and the ellipse's true mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack(
        [90 + 30 * np.sin(xx / 7), 110 + 25 * np.sin(yy / 5), 100 + 20 * np.sin((xx + yy) / 9)],
        axis=-1,
    ) + rng.normal(0, 12, (height, width, 3))
    truth = ((xx - width / 2) / (width * 0.22)) ** 2 + (
        (yy - height / 2) / (height * 0.3)
    ) ** 2 <= 1
    background[truth] = (220, 40, 40)
    return np.clip(background, 0, 255).astype(np.uint8), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def session() -> engine.ModelSession:
    return engine.load_session(MODELS_DIR, "u2netp", 2)


def test_cut_out_keeps_the_subject_and_clears_the_background(session):
    pixels, truth = scene()
    result = engine.cut_out(session, Image.fromarray(pixels))
    assert result.mode == "RGBA" and result.size == (320, 240)
    rgba = np.asarray(result)
    assert iou(rgba[..., 3] >= 128, truth) > 0.95
    assert rgba[120, 160, 3] == 255 and (rgba[120, 160, :3] == pixels[120, 160]).all()
    assert rgba[5, 5, 3] == 0 and (rgba[5, 5, :3] == 0).all()


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_mask_matches_rembg_remove(session, rembg_session, name):
    from rembg import remove

    photo = Image.fromarray(getattr(skimage.data, name)())
    ours = np.asarray(engine.predict_mask(session, photo)) >= 128
    theirs = np.asarray(remove(photo, session=rembg_session, only_mask=True)) >= 128
    assert ours.shape == theirs.shape
    assert iou(ours, theirs) >= 0.99


def test_mask_matches_rembg_on_a_generated_shape(session, rembg_session):
    from rembg import remove

    pixels, _ = scene(400, 300, seed=3)
    ours = engine.predict_alpha(session, pixels) >= 128
    theirs = np.asarray(remove(Image.fromarray(pixels), session=rembg_session, only_mask=True))
    assert iou(ours, theirs >= 128) >= 0.99


@pytest.fixture(scope="module")
def rembg_session():  # type: ignore[no-untyped-def]
    """rembg's own session on the same provisioned weights; U2NET_HOME is set only while rembg
    looks for them, so no later test in the process inherits it."""
    from rembg import new_session

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("U2NET_HOME", str(MODELS_DIR))
        return new_session("u2netp")


def test_png_of_the_cutout_is_lossless_and_same_size(session):
    photo = Image.fromarray(skimage.data.coffee())
    cutout = engine.cut_out(session, photo)
    decoded = Image.open(io.BytesIO(engine.encode_png(cutout)))
    assert decoded.mode == "RGBA" and decoded.size == photo.size
    assert np.array_equal(np.asarray(decoded), np.asarray(cutout))
    fused = Image.open(io.BytesIO(engine.cutout_png(session, photo)))
    assert np.array_equal(np.asarray(fused), np.asarray(cutout))


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 70),
    height=st.integers(1, 70),
    channels=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
    strip_bytes=st.sampled_from([1, 50, 1000, 2 * 1024 * 1024]),
)
def test_png_writer_round_trips_any_pixels(width, height, channels, seed, strip_bytes):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    original = engine._STRIP_BYTES
    engine._STRIP_BYTES = strip_bytes  # many small strips exercise the joined zlib stream
    try:
        data = engine.png_bytes(pixels)
    finally:
        engine._STRIP_BYTES = original
    decoded = Image.open(io.BytesIO(data))
    decoded.load()  # Pillow verifies every chunk's CRC and the zlib stream here
    assert np.array_equal(np.asarray(decoded), pixels)


def test_exif_orientation_is_respected(session):
    pixels, truth = scene(320, 240)
    sideways = Image.fromarray(np.rot90(pixels, 1).copy())  # stored turned a quarter left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif)
    loaded = load_image(buffer.getvalue(), filename="phone.jpg", limits=LIMITS)
    result = engine.cut_out(session, loaded.image)
    assert result.size == (320, 240)
    assert iou(np.asarray(result)[..., 3] >= 128, truth) > 0.9


def test_greyscale_and_rgba_inputs_work(session):
    pixels, truth = scene()
    grey = Image.fromarray(pixels).convert("L")
    assert engine.cut_out(session, grey).size == (320, 240)
    with_alpha = Image.fromarray(pixels).convert("RGBA")
    mask = np.asarray(engine.predict_mask(session, with_alpha)) >= 128
    assert iou(mask, truth) > 0.95


def test_session_is_loaded_once_and_a_missing_model_is_named(tmp_path):
    first = engine.load_session(MODELS_DIR, "u2netp", 1)
    assert engine.load_session(MODELS_DIR, "u2netp", 1) is first
    with pytest.raises(ModelMissing, match="u2netp.onnx"):
        engine.load_session(tmp_path, "u2netp", 1)


def test_transparency_already_in_the_upload_is_kept(session):
    pixels, truth = scene()
    rgba = np.dstack([pixels, np.full(truth.shape, 255, dtype=np.uint8)])
    rgba[:, :160, 3] = 0  # the left half was already cut away
    alpha = np.asarray(engine.cut_out(session, Image.fromarray(rgba)))[..., 3]
    assert (alpha[:, :160] == 0).all()
    assert (alpha[truth & (np.arange(320) >= 160)[None, :]] >= 128).mean() > 0.95
