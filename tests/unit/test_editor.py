"""Editor operations: each changes the pixels it should and no others; sizes, formats as asked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.services.imaging.editor import BadParameter, EditSpec, export, parse_color, render

WIDTH, HEIGHT = 240, 160


def subject_scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured photo and a hard-edged rectangle of subject (columns 80-159, rows 40-119)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([xx % 256, (yy * 2) % 256, (xx + yy) % 256], -1) + rng.integers(
        0, 40, (HEIGHT, WIDTH, 3)
    )
    alpha = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    alpha[40:120, 80:160] = 255
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha


def rendered(spec: EditSpec, **kwargs: object) -> np.ndarray:
    rgb, alpha = subject_scene()
    return np.asarray(render(rgb, alpha, spec, **kwargs))


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_transparent_png_keeps_the_subject_and_clears_the_rest():
    rgb, alpha = subject_scene()
    out = decode(export(rgb, alpha, EditSpec()).data)
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (WIDTH, HEIGHT)
    pixels = np.asarray(out)
    assert np.array_equal(pixels[..., 3], alpha)
    assert np.array_equal(pixels[alpha == 255, :3], rgb[alpha == 255])


@pytest.mark.parametrize(
    ("colour", "expected"),
    [("#1e90ff", (30, 144, 255, 255)), ("1e90ff80", (30, 144, 255, 128)), ("#fff", (255,) * 4)],
)
def test_solid_colour_fills_only_the_background(colour, expected):
    rgb, alpha = subject_scene()
    out = rendered(EditSpec(background="color", color=colour))
    assert (out[alpha == 0] == expected).all()
    assert np.array_equal(out[alpha == 255, :3], rgb[alpha == 255])
    assert (out[alpha == 255, 3] == 255).all()


def test_uploaded_background_is_cover_fitted_behind_the_subject():
    rgb, alpha = subject_scene()
    halves = np.zeros((50, 100, 3), dtype=np.uint8)
    halves[:, :50] = (255, 0, 0)
    halves[:, 50:] = (0, 255, 0)
    out = rendered(EditSpec(background="image"), background_image=Image.fromarray(halves))
    assert out.shape == (HEIGHT, WIDTH, 4) and (out[..., 3] == 255).all()
    assert tuple(out[80, 10, :3]) == (255, 0, 0)  # left of the subject
    assert tuple(out[80, 230, :3]) == (0, 255, 0)  # right of it
    assert np.array_equal(out[alpha == 255, :3], rgb[alpha == 255])


def test_blurred_original_background_is_smoother_and_the_subject_sharp():
    rgb, alpha = subject_scene()
    out = rendered(EditSpec(background="blur", blur=0.05))
    background = alpha == 0
    assert (out[..., 3] == 255).all()
    assert np.array_equal(out[alpha == 255, :3], rgb[alpha == 255])
    detail = np.abs(np.diff(out[..., 0].astype(int), axis=1))[background[:, 1:]].mean()
    original = np.abs(np.diff(rgb[..., 0].astype(int), axis=1))[background[:, 1:]].mean()
    assert detail < original / 3


def test_drop_shadow_darkens_below_the_subject_only():
    rgb, alpha = subject_scene()
    out = rendered(EditSpec(shadow=True, shadow_offset=(0.0, 0.1), shadow_blur=0.02))
    assert np.array_equal(out[alpha == 255], np.dstack([rgb, alpha])[alpha == 255])
    below = out[121:128, 90:150]
    assert (below[..., 3] > 40).all() and (below[..., :3] == 0).all()  # black, half opaque
    assert (out[:30, :, 3] == 0).all() and (out[:, :60, 3] == 0).all()  # far away: untouched


def test_crop_to_subject_with_margin():
    rgb, alpha = subject_scene()
    out = rendered(EditSpec(crop=True, margin=10))
    assert out.shape[:2] == (80 + 20, 80 + 20)
    assert np.array_equal(out[10:90, 10:90, :3], rgb[40:120, 80:160])
    assert (out[:10, :, 3] == 0).all()


def test_crop_margin_past_the_image_edge_is_padded_transparent():
    rgb, alpha = subject_scene()
    out = rendered(EditSpec(crop=True, margin=40))
    assert out.shape[:2] == (160, 160)
    assert np.array_equal(out[40:120, 40:120, :3], rgb[40:120, 80:160])


@pytest.mark.parametrize(
    ("canvas", "ratio"), [("1:1", 1.0), ("4:5", 0.8), ("16:9", 16 / 9), ("original", 1.5)]
)
def test_canvas_presets_have_their_shape_and_centre_the_subject(canvas, ratio):
    out = rendered(EditSpec(canvas=canvas, crop=True, scale=0.8))
    height, width = out.shape[:2]
    assert (
        abs(width / height - ratio) < 0.02 if canvas != "original" else (width, height) == (80, 80)
    )
    ys, xs = np.nonzero(out[..., 3] >= 128)
    assert abs(xs.mean() - width / 2) < 2 and abs(ys.mean() - height / 2) < 2


def test_custom_canvas_scales_and_positions_the_subject():
    spec = EditSpec(
        canvas="custom", width=400, height=100, crop=True, scale=0.5, position=(0.25, 0.5)
    )
    out = rendered(spec)
    assert out.shape[:2] == (100, 400)
    ys, xs = np.nonzero(out[..., 3] >= 128)
    assert abs(xs.mean() - 100) < 2 and abs(ys.mean() - 50) < 2
    assert abs((ys.max() - ys.min() + 1) - 50) <= 2  # the subject's 80 px scaled to half of 100


def test_mask_only_is_the_greyscale_alpha():
    rgb, alpha = subject_scene()
    out = decode(export(rgb, alpha, EditSpec(mask_only=True)).data)
    assert out.mode == "L" and np.array_equal(np.asarray(out), alpha)


def test_jpeg_and_webp_outputs_with_quality():
    rgb, alpha = subject_scene()
    jpeg = export(rgb, alpha, EditSpec(format="jpeg", quality=90))
    image = decode(jpeg.data)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (WIDTH, HEIGHT))
    assert jpeg.media_type == "image/jpeg" and jpeg.extension == "jpg"
    assert np.asarray(image)[5, 5].min() > 230  # transparent areas become white in a JPEG
    low = export(rgb, alpha, EditSpec(format="webp", quality=5))
    high = export(rgb, alpha, EditSpec(format="webp", quality=95))
    assert decode(high.data).format == "WEBP" and decode(high.data).size == (WIDTH, HEIGHT)
    assert len(low.data) < len(high.data)


def test_edits_compose_in_one_request():
    rgb, alpha = subject_scene()
    spec = EditSpec(
        background="color",
        color="#000000",
        shadow=True,
        crop=True,
        margin=8,
        canvas="1:1",
        format="png",
    )
    out = decode(export(rgb, alpha, spec).data)
    assert out.size[0] == out.size[1] and out.mode == "RGB"  # opaque result: no alpha stored
    pixels = np.asarray(out)
    assert pixels[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"color": "#12345"}, "color"),
        ({"color": "blue"}, "color"),
        ({"canvas": "custom", "width": 0, "height": 100}, "canvas"),
        ({"canvas": "custom", "width": 6000, "height": 5000}, "canvas"),
        ({"canvas": "3:2"}, "canvas"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
        ({"scale": 0}, "scale"),
        ({"position": (1.5, 0.5)}, "position"),
        ({"format": "gif"}, "format"),
        ({"background": "stars"}, "background"),
        ({"margin": -1}, "margin"),
    ],
)
def test_bad_parameters_are_refused_by_name(arguments, parameter):
    with pytest.raises(BadParameter) as raised:
        EditSpec(**arguments)
    assert raised.value.parameter == parameter and str(raised.value).startswith(parameter)


def test_margin_over_half_the_subject_is_refused():
    rgb, alpha = subject_scene()
    with pytest.raises(BadParameter, match="^margin"):
        render(rgb, alpha, EditSpec(crop=True, margin=41))


def test_image_background_without_an_image_is_refused():
    rgb, alpha = subject_scene()
    with pytest.raises(BadParameter, match="^background"):
        render(rgb, alpha, EditSpec(background="image"))


def test_parse_color_forms():
    assert parse_color("#abc") == (170, 187, 204, 255)
    assert parse_color("#abcd") == (170, 187, 204, 221)
    assert parse_color("00ff0080") == (0, 255, 0, 128)
