"""Hair refinement: alpha matting on the mask's boundary band, so hair and fur come out soft."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from app.services.imaging.engine import as_pixels

# Model alpha at or beyond these counts as sure subject / sure background before erosion.
SURE_SUBJECT = 240
SURE_BACKGROUND = 15
# Closed-form matting solves a sparse system over the unknown pixels; past about a third of a
# megapixel its time grows quickly, so larger bands are matted on a scaled copy.
MAX_MATTING_PIXELS = 350_000


def trimap(alpha: np.ndarray, band: float = 0.02) -> np.ndarray:
    """255 sure subject, 0 sure background, 128 the boundary band to be matted.

    The band is the model's own soft edge widened by `band` of the image's short side on each
    side: hair is usually where the model was unsure, and a little beyond.
    """
    height, width = alpha.shape
    radius = max(2, round(band * min(width, height)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    sure_subject = cv2.erode((alpha >= SURE_SUBJECT).astype(np.uint8), kernel)
    sure_background = cv2.erode((alpha <= SURE_BACKGROUND).astype(np.uint8), kernel, borderValue=1)
    result = np.full(alpha.shape, 128, dtype=np.uint8)
    result[sure_subject.astype(bool)] = 255
    result[sure_background.astype(bool)] = 0
    return result


def refine_hair(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    *,
    band: float = 0.02,
    max_pixels: int = MAX_MATTING_PIXELS,
) -> np.ndarray:
    """A new alpha with the boundary band matted (partial alpha on hair); elsewhere 0 or 255."""
    from pymatting import estimate_alpha_cf  # numba-compiled: import only when asked for

    pixels = as_pixels(image)
    rgb = pixels[..., :3] if pixels.ndim == 3 else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    tri = trimap(alpha, band)
    unknown = cv2.findNonZero((tri == 128).astype(np.uint8))
    if unknown is None:
        return tri
    # Only the band's bounding box is matted; everything outside it is already decided.
    x, y, w, h = cv2.boundingRect(unknown)
    pad = 4
    left, top = max(0, x - pad), max(0, y - pad)
    right, bottom = min(alpha.shape[1], x + w + pad), min(alpha.shape[0], y + h + pad)
    crop_rgb = np.ascontiguousarray(rgb[top:bottom, left:right])
    crop_tri = tri[top:bottom, left:right]
    crop_h, crop_w = crop_tri.shape

    scale = min(1.0, (max_pixels / (crop_w * crop_h)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
        work_rgb = cv2.resize(crop_rgb, size, interpolation=cv2.INTER_AREA)
        work_tri = cv2.resize(crop_tri, size, interpolation=cv2.INTER_NEAREST)
    else:
        work_rgb, work_tri = crop_rgb, crop_tri
    if not ((work_tri == 0).any() and (work_tri == 255).any()):
        return tri  # matting needs examples of both; without them the model's edge stands
    matte = estimate_alpha_cf(work_rgb / 255.0, work_tri / 255.0)
    matte8 = np.clip(matte * 255 + 0.5, 0, 255).astype(np.uint8)
    if scale < 1.0:
        matte8 = cv2.resize(matte8, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR)

    result = tri.copy()
    band_pixels = crop_tri == 128
    result[top:bottom, left:right][band_pixels] = matte8[band_pixels]
    return result
