"""Mask edits: brush strokes change only where they pass, steps replay the same at any scale,
and their stored form reads back to the same steps."""

from __future__ import annotations

import numpy as np
import pytest

from app.services.billing.pricing import Feature
from app.services.imaging import aicut, pipeline, retouch
from app.services.imaging.editor import BadParameter, EditSpec

WIDTH, HEIGHT = 200, 100


def half_mask() -> np.ndarray:
    alpha = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    alpha[:, :100] = 255
    return alpha


def test_erase_clears_the_stroke_and_nothing_else() -> None:
    alpha = half_mask()
    out = retouch.paint(alpha, retouch.Brush("erase", ((20.0, 50.0), (60.0, 50.0)), 8.0))
    assert (out[46:55, 22:59] == 0).all()
    assert (out[:30] == 255)[:, :100].all() and (out[70:, :100] == 255).all()
    assert (out[:, 100:] == 0).all()


def test_restore_brings_back_alpha_on_the_background() -> None:
    out = retouch.paint(half_mask(), retouch.Brush("restore", ((150.0, 50.0),), 10.0))
    assert (out[45:56, 145:156] == 255).all()
    assert (out[:, 170:] == 0).all()


def test_a_step_replays_the_same_on_a_reduced_copy() -> None:
    edits = retouch.MaskEdits((retouch.Brush("erase", ((20.0, 50.0), (60.0, 50.0)), 8.0),))
    full = retouch.apply(np.zeros((HEIGHT, WIDTH, 3), np.uint8), half_mask(), edits)
    small_edits = retouch.scaled(edits, 0.5, WIDTH // 2, HEIGHT // 2)
    small_mask = half_mask()[::2, ::2]
    small = retouch.apply(np.zeros((HEIGHT // 2, WIDTH // 2, 3), np.uint8), small_mask, small_edits)
    assert (small[23:27, 11:29] == 0).all() and (full[46:55, 22:59] == 0).all()


def test_charged_features_follow_the_steps() -> None:
    brush = retouch.Brush("erase", ((1.0, 1.0),), 2.0)
    cut = retouch.Cut(aicut.Marks(box=(0, 0, 50, 50)))
    assert retouch.MaskEdits((brush,)).charged == frozenset()
    assert retouch.MaskEdits((brush, cut), hair=True).charged == {Feature.ai_cut, Feature.hair}


def test_stored_steps_read_back_equal() -> None:
    steps = (
        retouch.Brush("restore", ((1.0, 2.0), (3.5, 4.0)), 6.0),
        retouch.Cut(
            aicut.Marks(
                box=(1, 2, 30, 40),
                keep=(aicut.Stroke(((5.0, 5.0),), 3.0),),
                remove=(aicut.Stroke(((9.0, 9.0), (10.0, 9.0)), 2.0),),
            )
        ),
    )
    assert tuple(retouch.step_from(retouch.step_data(s)) for s in steps) == steps


@pytest.mark.parametrize(
    "raw",
    [{}, {"kind": "smudge"}, {"kind": "erase", "points": "nope"}, {"kind": "ai_cut", "box": [1]}],
)
def test_garbage_is_not_a_step(raw: dict) -> None:
    with pytest.raises(BadParameter, match="step"):
        retouch.step_from(raw)


def test_pipeline_edit_refuses_a_stroke_outside_the_photo() -> None:
    edits = retouch.MaskEdits((retouch.Brush("erase", ((500.0, 10.0),), 4.0),))
    with pytest.raises(BadParameter, match="outside the 200x100 photo"):
        pipeline.edit(
            np.zeros((HEIGHT, WIDTH, 3), np.uint8), half_mask(), edits, pipeline.CutoutRequest()
        )


def test_export_size_shrinks_the_long_side() -> None:
    result = pipeline.edit(
        np.zeros((HEIGHT, WIDTH, 3), np.uint8),
        half_mask(),
        retouch.MaskEdits(),
        pipeline.CutoutRequest(spec=EditSpec(format="webp", max_side=50)),
    )
    assert (result.width, result.height) == (50, 25)


def test_an_ai_cut_keeps_the_strokes_made_before_it() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    erase = retouch.Brush("erase", ((20.0, 50.0), (60.0, 50.0)), 8.0)
    cut = retouch.Cut(aicut.Marks(keep=(aicut.Stroke(((150.0, 50.0),), 5.0),)))
    out = retouch.apply(image, half_mask(), retouch.MaskEdits((erase, cut)))
    assert (out[46:55, 22:59] == 0).all(), "the erase stroke survives the cut"
    assert (out[46:55, 146:155] == 255).all(), "the cut's keep stroke is honoured"
