"""AI Cut: the model's mask refined toward the user's marks (a box, keep and remove strokes)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from app.services.imaging.editor import BadParameter
from app.services.imaging.engine import as_pixels

# GrabCut's cost grows with pixels and iterations; at this long side a refinement takes well
# under a second on one core, and the result is scaled back to full size.
WORK_SIDE = 512
ITERATIONS = 3
# Colour distance (OpenCV's 8-bit Lab) under which a pixel looks like the ones a stroke brushed.
LOOK_ALIKE = 24.0


@dataclass(frozen=True)
class Stroke:
    """A brush mark: points in image pixels, joined by lines of the brush's radius."""

    points: tuple[tuple[float, float], ...]
    radius: float = 8.0


@dataclass(frozen=True)
class Marks:
    box: tuple[int, int, int, int] | None = None  # left, top, right, bottom (exclusive)
    keep: tuple[Stroke, ...] = ()
    remove: tuple[Stroke, ...] = ()

    @property
    def empty(self) -> bool:
        return self.box is None and not self.keep and not self.remove


def check_marks(marks: Marks, width: int, height: int) -> None:
    """Refuse marks that fall outside a width x height image, naming which."""
    if marks.box is not None:
        left, top, right, bottom = marks.box
        if not (0 <= left < right <= width and 0 <= top < bottom <= height):
            raise BadParameter("box", f"{marks.box} is not a box inside the {width}x{height} image")
    for name, strokes in (("keep", marks.keep), ("remove", marks.remove)):
        for stroke in strokes:
            if not stroke.points:
                raise BadParameter(name, "a stroke has no points")
            if not stroke.radius > 0:
                raise BadParameter(name, f"brush radius {stroke.radius} is not positive")
            for x, y in stroke.points:
                if not (0 <= x < width and 0 <= y < height):
                    raise BadParameter(
                        name, f"point ({x:g}, {y:g}) is outside the {width}x{height} image"
                    )


def _draw(target: np.ndarray, strokes: tuple[Stroke, ...], value: int, scale: float) -> None:
    for stroke in strokes:
        radius = max(1, round(stroke.radius * scale))
        points = [(round(x * scale), round(y * scale)) for x, y in stroke.points]
        for point in points:
            cv2.circle(target, point, radius, value, thickness=-1)
        for start, end in zip(points, points[1:], strict=False):
            cv2.line(target, start, end, value, thickness=2 * radius + 1)


def _spread(
    seeds: np.ndarray,
    lab: np.ndarray,
    region: np.ndarray,
    strokes: tuple[Stroke, ...],
    scale: float,
    label: int,
) -> None:
    """Carry remove strokes to the look-alike pixels of the subject parts they touch.

    A stroke across part of an object means "this object": the pixels of the same connected
    part of `region` whose colour is close to the brushed pixels' take the stroke's label (as
    probable, so GrabCut still has the last word). Without this a small mark would be outvoted
    by the model's mask in GrabCut's colour models. Keep strokes are not spread: the
    background is one large part, and a textured one would be taken whole.
    """
    if not strokes:
        return
    brushed = np.zeros(seeds.shape, dtype=np.uint8)
    _draw(brushed, strokes, 1, scale)
    count, parts = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    touched = np.unique(parts[(brushed == 1) & region])
    if touched.size == 0:
        return
    colours = lab[brushed == 1].astype(np.float32)
    clusters = min(4, len(colours))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, _, centres = cv2.kmeans(colours, clusters, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    candidates = np.isin(parts, touched) & region
    values = lab[candidates].astype(np.float32)
    distance = np.min(np.linalg.norm(values[:, None, :] - centres[None], axis=2), axis=1)
    chosen = np.zeros(seeds.shape, dtype=bool)
    chosen[candidates] = distance < LOOK_ALIKE
    seeds[chosen] = label


def refine(image: Image.Image | np.ndarray, alpha: np.ndarray, marks: Marks) -> np.ndarray:
    """A new alpha: GrabCut seeded by the model's mask and the marks, marks honoured exactly."""
    pixels = as_pixels(image)
    rgb = pixels[..., :3] if pixels.ndim == 3 else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    height, width = alpha.shape
    check_marks(marks, width, height)
    if marks.empty:
        return alpha

    scale = min(1.0, WORK_SIDE / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_rgb = cv2.resize(np.ascontiguousarray(rgb), small_size, interpolation=cv2.INTER_AREA)
    small_alpha = cv2.resize(alpha, small_size, interpolation=cv2.INTER_AREA)

    # The model's opinion is only "probable": the user's marks are what GrabCut must obey.
    seeds = np.where(small_alpha >= 128, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    if marks.box is not None:
        left, top, right, bottom = (round(v * scale) for v in marks.box)
        inside = seeds[top:bottom, left:right]
        # A box around something the model missed: fall back to GrabCut's own box start.
        if (inside == cv2.GC_PR_FGD).mean() < 0.05:
            inside[:] = cv2.GC_PR_FGD
        outside = np.ones_like(seeds, dtype=bool)
        outside[top:bottom, left:right] = False
        seeds[outside] = cv2.GC_BGD
    lab = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2LAB)
    model_subject = small_alpha >= 128
    _spread(seeds, lab, model_subject, marks.remove, scale, cv2.GC_PR_BGD)
    _draw(seeds, marks.keep, cv2.GC_FGD, scale)
    _draw(seeds, marks.remove, cv2.GC_BGD, scale)

    foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if foreground.any() and not foreground.all():
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        cv2.grabCut(
            cv2.cvtColor(small_rgb, cv2.COLOR_RGB2BGR),
            seeds,
            None,
            background_model,
            foreground_model,
            ITERATIONS,
            cv2.GC_INIT_WITH_MASK,
        )
        foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))

    decided = cv2.resize(
        foreground.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_LINEAR
    )
    # Where GrabCut agrees with the model, keep the model's finer full-resolution edge; where it
    # changed its mind, take GrabCut's (scaled, so slightly soft) answer.
    changed = (decided >= 128) != (alpha >= 128)
    refined = np.where(changed, decided, alpha).astype(np.uint8)
    if marks.box is not None:
        left, top, right, bottom = marks.box
        boxed = np.zeros_like(refined)
        boxed[top:bottom, left:right] = refined[top:bottom, left:right]
        refined = boxed
    _draw(refined, marks.keep, 255, 1.0)
    _draw(refined, marks.remove, 0, 1.0)
    return refined
