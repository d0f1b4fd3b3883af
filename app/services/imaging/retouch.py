"""The editor's changes to a subject mask: brush strokes and AI Cuts, replayed in order.

Steps are kept in the photo's own pixels so the same list gives the quick preview (scaled to a
reduced copy) and the export (at full resolution). Hair refinement, when on, softens the model's
edge first; the person's own strokes and cuts then have the last word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from PIL import Image

from app.services.billing.pricing import Feature
from app.services.imaging import aicut, matting
from app.services.imaging.editor import BadParameter
from app.services.imaging.engine import as_pixels

BRUSH_MODES = ("erase", "restore")
MAX_POINTS = 4_000  # per stroke: a long finger drag thinned in the browser stays far below


@dataclass(frozen=True)
class Brush:
    """Erase (alpha to 0) or restore (alpha to 255) along a stroke, with a soft rim."""

    mode: str
    points: tuple[tuple[float, float], ...]
    radius: float


@dataclass(frozen=True)
class Cut:
    """One applied AI Cut: a box and/or keep and remove strokes."""

    marks: aicut.Marks


Step = Brush | Cut


@dataclass(frozen=True)
class MaskEdits:
    steps: tuple[Step, ...] = ()
    hair: bool = False

    @property
    def charged(self) -> frozenset[Feature]:
        """The priced features these edits use (the brush is free)."""
        used = {Feature.ai_cut for step in self.steps if isinstance(step, Cut)}
        if self.hair:
            used.add(Feature.hair)
        return frozenset(used)


def check(edits: MaskEdits, width: int, height: int) -> None:
    """BadParameter naming the first step that does not fit a width x height photo."""
    for step in edits.steps:
        if isinstance(step, Cut):
            if step.marks.empty:
                raise BadParameter("ai_cut", "draw a box or a keep/remove stroke first")
            aicut.check_marks(step.marks, width, height)
            continue
        if step.mode not in BRUSH_MODES:
            raise BadParameter("brush", f"{step.mode!r} is not one of {BRUSH_MODES}")
        if not step.points or len(step.points) > MAX_POINTS:
            raise BadParameter("brush", f"a stroke needs 1 to {MAX_POINTS} points")
        if not 0 < step.radius <= max(width, height):
            raise BadParameter("brush", f"brush radius {step.radius:g} px is out of range")
        for x, y in step.points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise BadParameter(
                    "brush", f"point ({x:g}, {y:g}) is outside the {width}x{height} photo"
                )


def scaled(edits: MaskEdits, factor: float, width: int, height: int) -> MaskEdits:
    """The same edits for a copy `factor` times the photo's size (width x height: the copy's)."""

    def clamp(x: float, y: float) -> tuple[float, float]:
        return min(x * factor, width - 1), min(y * factor, height - 1)

    def stroke(s: aicut.Stroke) -> aicut.Stroke:
        return aicut.Stroke(tuple(clamp(x, y) for x, y in s.points), s.radius * factor)

    steps: list[Step] = []
    for step in edits.steps:
        if isinstance(step, Brush):
            points = tuple(clamp(x, y) for x, y in step.points)
            steps.append(replace(step, points=points, radius=step.radius * factor))
            continue
        marks = step.marks
        box = None
        if marks.box is not None:
            left, top, right, bottom = (round(v * factor) for v in marks.box)
            box = (left, top, max(left + 1, min(right, width)), max(top + 1, min(bottom, height)))
        keep = tuple(stroke(s) for s in marks.keep)
        remove = tuple(stroke(s) for s in marks.remove)
        steps.append(Cut(aicut.Marks(box=box, keep=keep, remove=remove)))
    return MaskEdits(tuple(steps), edits.hair)


def paint(alpha: np.ndarray, brush: Brush) -> np.ndarray:
    """The brush's stroke applied: anti-aliased, so an erased edge is not a jagged step."""
    stroke = np.zeros_like(alpha)
    radius = max(1, round(brush.radius))
    # cv2 draws in 1/16 pixel steps with shift=4: strokes keep their sub-pixel positions.
    points = [(round(x * 16), round(y * 16)) for x, y in brush.points]
    for point in points:
        cv2.circle(stroke, point, radius * 16, 255, thickness=-1, lineType=cv2.LINE_AA, shift=4)
    for start, end in zip(points, points[1:], strict=False):
        cv2.line(stroke, start, end, 255, thickness=2 * radius, lineType=cv2.LINE_AA, shift=4)
    if brush.mode == "erase":
        return np.minimum(alpha, 255 - stroke)
    return np.maximum(alpha, stroke)


def apply_step(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    step: Step,
    earlier: tuple[Step, ...] = (),
) -> np.ndarray:
    """One step on the mask the `earlier` steps left. An AI Cut re-decides the whole mask, so
    the brush strokes made before it are painted again after it: a hand-made fix stays fixed."""
    if isinstance(step, Brush):
        return paint(alpha, step)
    alpha = aicut.refine(image, alpha, step.marks)
    for brush in earlier:
        if isinstance(brush, Brush):
            alpha = paint(alpha, brush)
    return alpha


def apply(image: Image.Image | np.ndarray, alpha: np.ndarray, edits: MaskEdits) -> np.ndarray:
    """The model's mask with hair refinement (if on) and then every step, in order."""
    if edits.hair:
        alpha = matting.refine_hair(as_pixels(image), alpha)
    for index, step in enumerate(edits.steps):
        alpha = apply_step(image, alpha, step, edits.steps[:index])
    return alpha


# Durable form: plain JSON values, read back with the same checks as fresh input.


def _stroke_data(stroke: aicut.Stroke) -> dict[str, Any]:
    return {"points": [list(p) for p in stroke.points], "radius": stroke.radius}


def step_data(step: Step) -> dict[str, Any]:
    if isinstance(step, Brush):
        return {
            "kind": step.mode,
            "points": [list(p) for p in step.points],
            "radius": step.radius,
        }
    marks = step.marks
    return {
        "kind": "ai_cut",
        "box": list(marks.box) if marks.box else None,
        "keep": [_stroke_data(s) for s in marks.keep],
        "remove": [_stroke_data(s) for s in marks.remove],
    }


def _points(raw: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in raw)


def _stroke(raw: Mapping[str, Any]) -> aicut.Stroke:
    return aicut.Stroke(_points(raw["points"]), float(raw["radius"]))


def step_from(raw: Mapping[str, Any]) -> Step:
    """A step from its JSON form; BadParameter when it is not one."""
    try:
        kind = raw["kind"]
        if kind in BRUSH_MODES:
            return Brush(kind, _points(raw["points"]), float(raw["radius"]))
        if kind == "ai_cut":
            box = raw.get("box")
            if box is not None and len(box) != 4:
                raise ValueError("a box has four sides")
            return Cut(
                aicut.Marks(
                    box=tuple(int(v) for v in box) if box else None,  # type: ignore[arg-type]
                    keep=tuple(_stroke(s) for s in raw.get("keep", ())),
                    remove=tuple(_stroke(s) for s in raw.get("remove", ())),
                )
            )
    except (KeyError, TypeError, ValueError):
        pass
    raise BadParameter("step", "not a brush stroke or an AI Cut")
