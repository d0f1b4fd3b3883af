"""Where the subject goes in a remove.bg-style result: region of interest, crop, scale, position.

Works on the photo's colour and the model's alpha before the editor paints the background and
encodes (see `pipeline.run_removebg`); pixel sizes of the output follow remove.bg's rules.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.services.imaging.editor import subject_bounds
from app.services.imaging.removebg_options import OptionError, Options

Box = tuple[int, int, int, int]  # left, top, right, bottom


def fitted_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the same shape within `max_pixels` (never larger than given)."""
    if width * height <= max_pixels:
        return width, height
    factor = math.sqrt(max_pixels / (width * height))
    fitted_w, fitted_h = max(1, int(width * factor)), max(1, int(height * factor))
    while fitted_w * fitted_h > max_pixels:  # rounding can leave one row too many
        fitted_h -= 1
    return fitted_w, max(1, fitted_h)


def largest_output(width: int, height: int, options: Options) -> tuple[int, int]:
    """An upper bound of the result's size for a photo fitted to width x height: what to hold.

    A crop may grow past the photo by its margins (at most half the subject, or 500 px, a side);
    the editor then shrinks the result back within the size's pixel cap.
    """
    if not options.crop:
        return width, height
    grown_w = width + 2 * max(500, width // 2 + 1)
    grown_h = height + 2 * max(500, height // 2 + 1)
    return fitted_size(grown_w, grown_h, options.max_pixels)


def scaled_box(box: Box, factor_x: float, factor_y: float, width: int, height: int) -> Box:
    """A box given in the original photo's pixels, in the pixels of its fitted copy."""
    left, top, right, bottom = box
    scaled = (
        math.floor(left * factor_x),
        math.floor(top * factor_y),
        math.ceil(right * factor_x),
        math.ceil(bottom * factor_y),
    )
    return (
        min(max(scaled[0], 0), width - 1),
        min(max(scaled[1], 0), height - 1),
        min(max(scaled[2], 1), width),
        min(max(scaled[3], 1), height),
    )


def arrange(
    rgb: np.ndarray, alpha: np.ndarray, options: Options, roi: Box
) -> tuple[np.ndarray, np.ndarray]:
    """The colour and alpha of the result's canvas, before background, shadow and encoding.

    Raises OptionError('unknown_foreground') when nothing of the subject is left to show.
    """
    alpha = _only_inside(alpha, roi)
    if not options.semitransparency:
        alpha = np.where(alpha >= 128, 255, 0).astype(np.uint8)
    left, top, width, height = subject_bounds(alpha)
    if not width:
        raise OptionError(
            "unknown_foreground", "no foreground was found in the image (or inside the roi)"
        )
    subject: Box = (left, top, left + width, top + height)
    if options.crop:
        margin_top, margin_right, margin_bottom, margin_left = options.crop_margin
        box = (
            left - margin_left.pixels(width),
            top - margin_top.pixels(height),
            left + width + margin_right.pixels(width),
            top + height + margin_bottom.pixels(height),
        )
        rgb, alpha = _crop(rgb, box), _crop(alpha, box)
        subject = (left - box[0], top - box[1], left - box[0] + width, top - box[1] + height)
    if options.scale is not None or options.position is not None:
        rgb, alpha = _place(rgb, alpha, subject, options)
    return rgb, alpha


def _only_inside(alpha: np.ndarray, roi: Box) -> np.ndarray:
    left, top, right, bottom = roi
    if (left, top, right, bottom) == (0, 0, alpha.shape[1], alpha.shape[0]):
        return alpha
    kept = np.zeros_like(alpha)
    kept[top:bottom, left:right] = alpha[top:bottom, left:right]
    return kept


def _crop(array: np.ndarray, box: Box) -> np.ndarray:
    """array inside box; what lies outside the photo is zero (transparent, no colour)."""
    left, top, right, bottom = box
    height, width = array.shape[:2]
    out = np.zeros((bottom - top, right - left, *array.shape[2:]), dtype=array.dtype)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out


def _place(
    rgb: np.ndarray, alpha: np.ndarray, subject: Box, options: Options
) -> tuple[np.ndarray, np.ndarray]:
    """The subject alone, scaled to `scale` of the canvas and put at `position` on it."""
    canvas_h, canvas_w = alpha.shape
    left, top, right, bottom = subject
    sub_w, sub_h = right - left, bottom - top
    factor = options.scale * min(canvas_w / sub_w, canvas_h / sub_h) if options.scale else 1.0
    placed_w = min(canvas_w, max(1, round(sub_w * factor)))
    placed_h = min(canvas_h, max(1, round(sub_h * factor)))
    subject_rgb = rgb[top:bottom, left:right]
    subject_alpha = alpha[top:bottom, left:right]
    if (placed_w, placed_h) != (sub_w, sub_h):
        method = cv2.INTER_AREA if placed_w < sub_w else cv2.INTER_CUBIC
        subject_rgb = cv2.resize(subject_rgb, (placed_w, placed_h), interpolation=method)
        subject_alpha = cv2.resize(subject_alpha, (placed_w, placed_h), interpolation=method)
    if options.position is None:  # as it was: the subject keeps its centre
        at_x = round((left + right) / 2 - placed_w / 2)
        at_y = round((top + bottom) / 2 - placed_h / 2)
    else:  # 0% touches the left (top) edge, 100% the right (bottom) one
        at_x = round(options.position[0] * (canvas_w - placed_w))
        at_y = round(options.position[1] * (canvas_h - placed_h))
    at_x = min(max(at_x, 0), canvas_w - placed_w)
    at_y = min(max(at_y, 0), canvas_h - placed_h)
    out_rgb = np.zeros_like(rgb)
    out_alpha = np.zeros_like(alpha)
    out_rgb[at_y : at_y + placed_h, at_x : at_x + placed_w] = subject_rgb
    out_alpha[at_y : at_y + placed_h, at_x : at_x + placed_w] = subject_alpha
    return out_rgb, out_alpha
