"""AI Cut: a box and keep/remove strokes steer the mask; the marks themselves are obeyed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.services.imaging import aicut, engine
from app.services.imaging.editor import BadParameter

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
WIDTH, HEIGHT = 360, 240


def two_objects() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red disc (left) and a blue square (right) on a textured background, and their masks."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack(
        [90 + 30 * np.sin(xx / 7), 110 + 25 * np.sin(yy / 5), 100 + 20 * np.sin((xx + yy) / 9)],
        axis=-1,
    ) + rng.normal(0, 10, (HEIGHT, WIDTH, 3))
    disc = (xx - 100) ** 2 + (yy - 120) ** 2 <= 60**2
    square = (abs(xx - 265) <= 50) & (abs(yy - 120) <= 50)
    image[disc] = (220, 40, 40)
    image[square] = (40, 60, 210)
    return np.clip(image, 0, 255).astype(np.uint8), disc, square


@pytest.fixture(scope="module")
def session() -> engine.ModelSession:
    return engine.load_session(MODELS_DIR, "u2netp", 2)


@pytest.fixture(scope="module")
def scene(session):
    image, disc, square = two_objects()
    return image, engine.predict_alpha(session, image), disc, square


def test_no_marks_leave_the_model_mask_alone(scene):
    image, alpha, _, _ = scene
    assert np.array_equal(aicut.refine(image, alpha, aicut.Marks()), alpha)


def test_box_around_one_object_drops_the_other(scene):
    image, alpha, disc, square = scene
    refined = aicut.refine(image, alpha, aicut.Marks(box=(20, 30, 180, 210)))
    assert (refined[disc] >= 128).mean() > 0.95
    assert (refined[square] == 0).all()
    assert (refined[:, 180:] == 0).all()  # nothing outside the box survives


def test_remove_stroke_drops_the_whole_object_it_touches(scene):
    image, alpha, disc, square = scene
    stroke = aicut.Stroke(((250.0, 120.0), (280.0, 120.0)), radius=6)
    refined = aicut.refine(image, alpha, aicut.Marks(remove=(stroke,)))
    # GrabCut carries the mark to the rest of the square, not only the brushed pixels.
    assert (refined[square] < 128).mean() > 0.9
    assert (refined[disc] >= 128).mean() > 0.95


def test_keep_stroke_is_opaque_even_on_background(scene):
    image, alpha, _, _ = scene
    stroke = aicut.Stroke(((20.0, 20.0), (60.0, 20.0)), radius=5)
    assert alpha[20, 40] < 128  # the model calls it background
    refined = aicut.refine(image, alpha, aicut.Marks(keep=(stroke,)))
    assert (refined[16:25, 20:61] == 255).all()
    far = np.ones_like(alpha, dtype=bool)
    far[:60, :100] = False
    assert (refined[far] == alpha[far]).mean() > 0.98  # the rest stays as the model had it


def test_remove_stroke_is_transparent_even_inside_the_subject(scene):
    image, alpha, disc, _ = scene
    stroke = aicut.Stroke(((100.0, 120.0),), radius=10)
    refined = aicut.refine(image, alpha, aicut.Marks(remove=(stroke,)))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    assert (refined[(xx - 100) ** 2 + (yy - 120) ** 2 <= 100] == 0).all()


@pytest.mark.parametrize(
    ("marks", "parameter"),
    [
        (aicut.Marks(box=(0, 0, WIDTH + 1, HEIGHT)), "box"),
        (aicut.Marks(box=(50, 50, 40, 100)), "box"),
        (aicut.Marks(keep=(aicut.Stroke(((10.0, HEIGHT + 5.0),)),)), "keep"),
        (aicut.Marks(remove=(aicut.Stroke(((-1.0, 10.0),)),)), "remove"),
        (aicut.Marks(keep=(aicut.Stroke(((10.0, 10.0),), radius=0),)), "keep"),
    ],
)
def test_marks_outside_the_image_are_refused_by_name(scene, marks, parameter):
    image, alpha, _, _ = scene
    with pytest.raises(BadParameter) as raised:
        aicut.refine(image, alpha, marks)
    assert raised.value.parameter == parameter
    assert str(raised.value).startswith(parameter)
