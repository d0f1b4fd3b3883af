"""Hair refinement: soft partial alpha on the boundary band, closer to the truth than the mask."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from app.services.imaging import engine, matting

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"


def hairy_scene(size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark head with thin strands on a light smooth backdrop, built at 4x and shrunk so the
    strands carry true fractional alpha. Returns the image, the true alpha (0-1) and a hard mask
    of the head alone, as a segmentation model that misses the strands would give."""
    big = size * 4
    canvas = np.zeros((big, big), dtype=np.uint8)
    centre, radius = (big // 2, big // 2), int(big * 0.28)
    cv2.circle(canvas, centre, radius, 255, -1)
    rng = np.random.default_rng(5)
    for angle in rng.uniform(0, 2 * np.pi, 90):
        length = radius + rng.uniform(0.04, 0.1) * big
        end = (int(centre[0] + length * np.cos(angle)), int(centre[1] + length * np.sin(angle)))
        cv2.line(canvas, centre, end, 255, thickness=2)
    alpha = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA) / 255.0
    yy, xx = np.mgrid[0:size, 0:size]
    backdrop = np.stack([170 + 40 * xx / size, 200 + 30 * yy / size, 235 - 20 * xx / size], -1)
    hair = np.array([70.0, 45.0, 25.0])
    image = alpha[..., None] * hair + (1 - alpha[..., None]) * backdrop
    head = np.zeros((size, size), dtype=np.uint8)
    cv2.circle(head, (size // 2, size // 2), int(size * 0.28), 255, -1)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), alpha, head


def test_trimap_has_sure_regions_and_a_band_between():
    _, _, head = hairy_scene()
    tri = matting.trimap(head, band=0.05)
    assert set(np.unique(tri)) == {0, 128, 255}
    assert tri[100, 100] == 255 and tri[0, 0] == 0
    assert tri[100, 100 + int(200 * 0.28)] == 128  # the head's edge is in the band
    wider = matting.trimap(head, band=0.1)
    assert (wider == 128).sum() > (tri == 128).sum()


def test_hair_matting_recovers_strands_the_mask_missed():
    image, truth, head = hairy_scene()
    refined = matting.refine_hair(image, head, band=0.08)
    band = matting.trimap(head, band=0.08) == 128
    error_refined = np.abs(refined[band] / 255.0 - truth[band]).mean()
    error_mask = np.abs(head[band] / 255.0 - truth[band]).mean()
    assert error_refined < 0.5 * error_mask
    partial = (refined[band] > 10) & (refined[band] < 245)
    assert partial.mean() > 0.1


@pytest.fixture(scope="module")
def portrait():
    session = engine.load_session(MODELS_DIR, "u2netp", 2)
    photo = skimage.data.astronaut()
    return photo, engine.predict_alpha(session, photo)


def test_portrait_boundary_gets_partial_alpha_and_the_rest_is_decided(portrait):
    photo, alpha = portrait
    refined = matting.refine_hair(photo, alpha)
    assert refined.shape == alpha.shape and refined.dtype == np.uint8
    band = matting.trimap(alpha) == 128
    values = refined[band]
    assert ((values > 10) & (values < 245)).mean() > 0.1
    assert set(np.unique(refined[~band])) <= {0, 255}
    # The subject stays the subject: the matte agrees with the model away from the edge.
    assert ((refined >= 128) == (alpha >= 128)).mean() > 0.97


def test_large_band_is_matted_on_a_scaled_copy_and_returned_full_size(portrait):
    photo, alpha = portrait
    big = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    big_alpha = cv2.resize(alpha, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    refined = matting.refine_hair(big, big_alpha, max_pixels=60_000)
    band = matting.trimap(big_alpha) == 128
    assert refined.shape == (1024, 1024)
    assert ((refined[band] > 10) & (refined[band] < 245)).mean() > 0.1


def test_mask_without_a_boundary_is_returned_decided():
    image, _, _ = hairy_scene(64)
    empty = np.zeros((64, 64), dtype=np.uint8)
    assert (matting.refine_hair(image, empty) == 0).all()
