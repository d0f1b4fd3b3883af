"""Reading uploads: every format phones and cameras send, and every refusal with its reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.services.imaging.images import ImageRejected, Limits, load_image

LIMITS = Limits(max_bytes=22 * 1024 * 1024, max_pixels=25_000_000)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gradient(width: int = 60, height: int = 40) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (height, 1))] * 3, axis=-1)
    rgb[: height // 2, :, 0] = 255  # a red top half, so orientation is visible
    return Image.fromarray(rgb, mode="RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"])
def test_every_accepted_format_decodes_to_its_own_size(fmt: str) -> None:
    data = encode(gradient(), fmt)
    loaded = load_image(data, filename=f"photo.{fmt.lower()}", limits=LIMITS)
    assert (loaded.width, loaded.height) == (60, 40)
    assert loaded.image.mode in ("RGB", "RGBA")


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(buffer.getvalue(), filename="anim.gif", limits=LIMITS)
    red, green, blue = loaded.image.convert("RGB").getpixel((10, 10))
    assert red > 200 and blue < 50


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (60, 40)), (3, (60, 40)), (6, (40, 60)), (8, (40, 60))]
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int]) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(gradient(), "JPEG", exif=exif.tobytes(), quality=95)
    loaded = load_image(data, filename="phone.jpg", limits=LIMITS)
    assert loaded.image.size == size
    pixels = np.asarray(loaded.image)
    if orientation == 3:  # upside down: the red half is now at the bottom
        assert pixels[-1, 30, 0] > 200 and pixels[0, 30, 0] < 200


def test_heic_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(gradient(), "HEIF", exif=exif.tobytes())
    loaded = load_image(data, filename="IMG_0001.HEIC", limits=LIMITS)
    assert loaded.image.size == (40, 60)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("CMYK", (30, 20), (0, 255, 255, 0)),
        Image.new("L", (30, 20), 128),
        Image.new("P", (30, 20), 3),
        Image.new("LA", (30, 20), (128, 200)),
        Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)),
    ],
    ids=["cmyk", "grey", "palette", "grey-alpha", "16-bit"],
)
def test_unusual_modes_become_8bit_rgb(image: Image.Image) -> None:
    fmt = "TIFF" if image.mode in ("CMYK", "I;16") else "PNG"
    loaded = load_image(encode(image, fmt), filename="odd", limits=LIMITS)
    assert loaded.image.mode in ("RGB", "RGBA")
    assert loaded.image.size == (30, 20)
    if image.mode == "I;16":  # 40000/65535 of full scale, not clipped to white
        assert 150 < loaded.image.getpixel((5, 5))[0] < 160


def refusal(data: bytes, name: str = "upload.jpg", limits: Limits = LIMITS) -> str:
    with pytest.raises(ImageRejected) as caught:
        load_image(data, filename=name, limits=limits)
    return caught.value.message


def test_empty_file_is_refused() -> None:
    assert "empty" in refusal(b"")


def test_text_named_like_a_photo_is_refused() -> None:
    message = refusal(b"hello, this is not a picture at all\n" * 20, name="holiday.jpg")
    assert "holiday.jpg" in message and "not an image" in message


def test_svg_is_refused_by_content() -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert "SVG" in refusal(svg, name="logo.png")


def test_truncated_jpeg_is_refused() -> None:
    data = encode(gradient(400, 300), "JPEG")
    message = refusal(data[: len(data) // 2])
    assert "truncated or corrupt" in message
    assert "bytes not processed" not in message and "(" not in message  # no decoder's words


def test_file_over_the_byte_limit_is_refused() -> None:
    small = Limits(max_bytes=1000, max_pixels=25_000_000)
    message = refusal(encode(gradient(200, 200), "PNG") + b"\0" * 2000, limits=small)
    assert "limit" in message and "MB" in message


def test_image_over_the_megapixel_limit_is_refused() -> None:
    tight = Limits(max_bytes=LIMITS.max_bytes, max_pixels=1000)
    assert "megapixels" in refusal(encode(gradient(60, 40), "PNG"), limits=tight)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge canvas: the shape of a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [6000, 20000, 60000])
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    data = png_header_only(side, side)
    assert len(data) < 2000
    message = refusal(data, name="bomb.png")
    assert "megapixel" in message and "bomb.png" in message
