"""The one image pipeline: photo in, finished file out. The web app, the CLI and the API call it.

Two stages, so a caller may keep the mask between them (the editor re-exports without running
the model again): `subject_mask` runs the model and the asked refinement (AI Cut or hair);
`finish` applies the edits and encodes. `run` does both.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from app.services.billing.pricing import Feature
from app.services.imaging import (
    aicut,
    editor,
    engine,
    matting,
    removebg_layout,
    removebg_options,
    retouch,
)
from app.services.imaging.editor import BadParameter, EditSpec, Exported
from app.services.imaging.images import Limits, load_image
from app.services.imaging.model_files import HIGH_QUALITY_MODEL

# What the engine itself can do to a photo; each is priced on its own.
ENGINE_FEATURES: tuple[Feature, ...] = (Feature.background_removal, Feature.ai_cut, Feature.hair)


@dataclass(frozen=True)
class CutoutRequest:
    """Everything asked of one photo; refused at construction when it does not hold together."""

    feature: Feature = Feature.background_removal
    spec: EditSpec = field(default_factory=EditSpec)
    marks: aicut.Marks = field(default_factory=aicut.Marks)
    background: Image.Image | None = None  # for spec.background == "image"
    # "High quality": the full u2net instead of the configured model (see `model_name`).
    high_quality: bool = False

    def __post_init__(self) -> None:
        if self.feature not in ENGINE_FEATURES:
            raise BadParameter("feature", f"{self.feature.value!r} is not an engine feature")
        if self.feature != Feature.ai_cut and not self.marks.empty:
            raise BadParameter("feature", "marks (a box, keep or remove strokes) need AI Cut")
        if self.spec.background == "image" and self.background is None:
            raise BadParameter("background", "'image' needs a background image")

    @property
    def plain(self) -> bool:
        """A transparent PNG of the whole photo: the engine's fastest path applies."""
        return self.spec == EditSpec(format="png", max_pixels=self.spec.max_pixels)


def model_name(request: CutoutRequest, configured: str) -> str:
    """The model a request runs on: the configured one, or the full u2net for "High quality"."""
    return HIGH_QUALITY_MODEL if request.high_quality else configured


def subject_mask(
    model: engine.ModelSession, image: Image.Image | np.ndarray, request: CutoutRequest
) -> np.ndarray:
    """The subject's alpha at the photo's size: the model's, then AI Cut or hair refinement.

    A Pillow image is handed to the model as it is: copying a 25 MP photo into an array just
    for the model would cost 75 MB the plain path never needs.
    """
    alpha = engine.predict_alpha(model, image)
    if _has_alpha(image):
        alpha = np.minimum(alpha, engine.as_pixels(image)[..., 3])  # transparent stays so
    if request.feature == Feature.ai_cut:
        alpha = aicut.refine(engine.as_pixels(image), alpha, request.marks)
    elif request.feature == Feature.hair:
        alpha = matting.refine_hair(engine.as_pixels(image), alpha)
    return alpha


def _has_alpha(image: Image.Image | np.ndarray) -> bool:
    if isinstance(image, Image.Image):
        return image.mode == "RGBA"
    return image.ndim == 3 and image.shape[2] == 4


def finish(image: Image.Image | np.ndarray, alpha: np.ndarray, request: CutoutRequest) -> Exported:
    """The edits applied at full resolution, encoded in the asked format."""
    if request.plain:
        height, width = alpha.shape
        return Exported(
            engine.encode_cutout(image, alpha),
            width,
            height,
            editor.MEDIA_TYPES["png"],
            "png",
            editor.subject_bounds(alpha),
        )
    return editor.export(image, alpha, request.spec, background_image=request.background)


def run(
    model: engine.ModelSession, image: Image.Image | np.ndarray, request: CutoutRequest
) -> Exported:
    """One photo, start to finish."""
    if request.feature == Feature.ai_cut:
        width, height = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
        aicut.check_marks(request.marks, width, height)  # before the model runs, not after
    return finish(image, subject_mask(model, image, request), request)


def run_bytes(
    model: engine.ModelSession,
    data: bytes,
    *,
    filename: str,
    limits: Limits,
    request: CutoutRequest,
) -> Exported:
    """A file's bytes, decoded (refusals raise ImageRejected), then `run`."""
    return run(model, load_image(data, filename=filename, limits=limits).image, request)


def fit_to(image: Image.Image, max_pixels: int) -> Image.Image:
    """The photo shrunk, keeping its shape, to at most `max_pixels` (an API call's `size`)."""
    width, height = removebg_layout.fitted_size(image.width, image.height, max_pixels)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def run_removebg(
    model: engine.ModelSession,
    image: Image.Image,
    options: removebg_options.Options,
    *,
    roi: tuple[int, int, int, int],
    background: Image.Image | None = None,
) -> Exported:
    """One remove.bg-style call on a photo already fitted to its size (`fit_to`).

    The same model and refinement as every other caller (`subject_mask`); then the subject is
    laid out as remove.bg would (region of interest, crop, scale, position) and the editor
    paints the background and encodes. `roi` is in the fitted photo's pixels.
    """
    alpha = subject_mask(model, image, CutoutRequest())
    pixels = engine.as_pixels(image)
    rgb = np.ascontiguousarray(pixels[..., :3]) if pixels.ndim == 3 else pixels
    rgb, alpha = removebg_layout.arrange(rgb, alpha, options, roi)
    spec = EditSpec(
        background=_api_background(options, background),
        color="#{:02x}{:02x}{:02x}{:02x}".format(*(options.bg_color or (255, 255, 255, 255))),
        shadow=options.add_shadow,
        format=_api_format(options, background),
        mask_only=options.channels == "alpha",
        max_pixels=options.max_pixels,
    )
    if options.format != "zip":
        return editor.export(rgb, alpha, spec, background_image=background)
    rendered = engine.as_pixels(editor.render(rgb, alpha, spec, background_image=background))
    height, width = rendered.shape[:2]
    if rendered.ndim == 2:  # channels=alpha: the mask is the whole answer
        colour, mask = np.repeat(rendered[..., None], 3, axis=2), rendered
    else:
        colour, mask = np.ascontiguousarray(rendered[..., :3]), rendered[..., 3]
    color_jpg = io.BytesIO()
    Image.fromarray(colour).save(color_jpg, format="JPEG", quality=spec.quality)
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("color.jpg", color_jpg.getvalue())
        archive.writestr("alpha.png", engine.png_bytes(np.ascontiguousarray(mask)))
    return Exported(
        bundle.getvalue(), width, height, "application/zip", "zip", editor.subject_bounds(mask)
    )


def _api_background(options: removebg_options.Options, background: Image.Image | None) -> str:
    if background is not None:
        return "image"
    return "color" if options.bg_color is not None else "transparent"


def _api_format(options: removebg_options.Options, background: Image.Image | None) -> str:
    """remove.bg's `auto`: JPEG when the result has no transparency, else PNG."""
    if options.format == "jpg":
        return "jpeg"
    if options.format in ("png", "webp"):
        return options.format
    if options.format == "auto" and (background is not None or options.opaque_background):
        return "png" if options.channels == "alpha" else "jpeg"
    return "png"


def edit(
    image: Image.Image | np.ndarray,
    alpha: np.ndarray,
    edits: retouch.MaskEdits,
    request: CutoutRequest,
) -> Exported:
    """The editor's path: a mask already made, the person's mask edits (brush, AI Cut, hair)
    replayed on it, then `finish`. The quick preview calls this on a reduced copy, the export
    at full resolution, so what is seen is what is downloaded."""
    height, width = alpha.shape
    retouch.check(edits, width, height)
    return finish(image, retouch.apply(image, alpha, edits), request)
