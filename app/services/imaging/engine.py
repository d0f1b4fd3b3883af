"""The cutout engine: one model session per process, the subject's mask, compositing, fast PNG."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from app.services.imaging.model_files import check_model

# Models that share u2net's input (320x320, ImageNet mean/std, scaled by the image's own maximum)
# and output (first map, min-max normalised); Cutout runs these itself, faster than rembg does.
U2NET_FAMILY = frozenset({"u2netp", "u2net", "u2net_human_seg", "silueta"})
MODEL_SIDE = 320
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# About 2 MB of raw pixels per compressed strip: enough strips to keep every core busy, few
# enough that each zlib call stays efficient.
_STRIP_BYTES = 2 * 1024 * 1024

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ModelSession:
    """A loaded model. `onnx` for the u2net family, else a rembg session Cutout delegates to."""

    name: str
    threads: int
    onnx: ort.InferenceSession | None = None
    fallback: Any = None


_sessions: dict[tuple[str, str, int, bool], ModelSession] = {}
_sessions_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cpu_threads(threads: int) -> int:
    """A thread count from a setting where 0 means every core."""
    return threads if threads > 0 else (os.cpu_count() or 1)


def _session_options(threads: int, memory_arena: bool = False) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One graph at a time: parallel branches would fight the intra-op threads for the same cores.
    options.inter_op_num_threads = 1
    # onnxruntime's arena keeps ~250 MB for good after the first u2netp run, which would take a
    # 25 MP job past 600 MB; without it each run pays ~0.1 s of fresh pages instead.
    options.enable_cpu_mem_arena = memory_arena
    return options


def load_session(
    models_dir: Path, model_name: str, threads: int, *, memory_arena: bool = False
) -> ModelSession:
    """The model for this process, created once and reused by every request.

    `memory_arena` trades ~250 MB kept for good for ~0.1 s less per image.
    """
    threads = cpu_threads(threads)
    key = (str(models_dir), model_name, threads, memory_arena)
    with _sessions_lock:
        if key not in _sessions:
            path = check_model(models_dir, model_name)
            if model_name in U2NET_FAMILY:
                onnx = ort.InferenceSession(
                    str(path),
                    sess_options=_session_options(threads, memory_arena),
                    providers=["CPUExecutionProvider"],
                )
                _sessions[key] = ModelSession(model_name, threads, onnx=onnx)
            else:
                # rembg finds weights through U2NET_HOME; the file is already there, so it never
                # reaches for the network.
                os.environ["U2NET_HOME"] = str(models_dir)
                from rembg import new_session

                options = _session_options(threads, memory_arena)
                fallback = new_session(model_name, sess_opts=options)
                _sessions[key] = ModelSession(model_name, threads, fallback=fallback)
        return _sessions[key]


def worker_pool() -> ThreadPoolExecutor:
    """Threads for the pixel work around the model (zlib, cv2 and numpy release the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="cutout-pixels"
            )
        return _pool


def _parallel(function: Callable[[T], R], items: list[T]) -> list[R]:
    if len(items) < 2:
        return [function(item) for item in items]
    return list(worker_pool().map(function, items))


def _row_bands(height: int, row_bytes: int) -> list[tuple[int, int]]:
    rows = max(1, _STRIP_BYTES // max(row_bytes, 1))
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def as_pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return np.asarray(image)


def _model_size_rgb(source: Image.Image) -> np.ndarray:
    """The image at the model's 320x320 with Pillow's LANCZOS, exactly as rembg resamples.

    The model is sensitive to how its input was resampled (cheaper filters cost up to 0.05 of
    mask IoU against rembg), so the filter stays; on large photos the output rows are split
    between threads, each resampling its own box of the source, which is bit-identical.
    """
    width, height = source.size
    parts = min(os.cpu_count() or 1, 4) if width * height >= 1_000_000 else 1

    def rows(index: int) -> np.ndarray:
        top, bottom = MODEL_SIDE * index // parts, MODEL_SIDE * (index + 1) // parts
        box = (0, height * top / MODEL_SIDE, width, height * bottom / MODEL_SIDE)
        resized = source.resize((MODEL_SIDE, bottom - top), Image.Resampling.LANCZOS, box=box)
        return np.asarray(resized)

    return np.vstack(_parallel(rows, list(range(parts))))


def _as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(rgb[..., :3]), mode="RGB")


def _model_input(image: Image.Image | np.ndarray) -> np.ndarray:
    small = _model_size_rgb(_as_rgb_image(image))
    scaled = small.astype(np.float32) / max(float(small.max()), 1e-6)
    normalised = (scaled - _MEAN) / _STD
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def predict_alpha(session: ModelSession, image: Image.Image | np.ndarray) -> np.ndarray:
    """The subject's alpha as a uint8 array at the image's own size.

    Exactly 255 inside the subject and 0 outside, with a soft band only along the edge: the
    model's map is not alpha (its confident interior sits at 230-254, so the old background
    showed through), only its 0.5 line is the subject's outline.
    """
    if isinstance(image, Image.Image):
        width, height = image.size
    else:
        height, width = image.shape[:2]
    if session.onnx is None:
        rgb = _as_rgb_image(image)
        mask = np.asarray(session.fallback.predict(rgb)[0], dtype=np.uint8)
        return cv2.LUT(mask, _STEEP_MASK_RAMP)
    feed = {session.onnx.get_inputs()[0].name: _model_input(image)}
    prediction = session.onnx.run(None, feed)[0][0, 0]
    low, high = float(prediction.min()), float(prediction.max())
    if high <= low:
        return np.zeros((height, width), dtype=np.uint8)
    unit = ((prediction - low) / (high - low)).astype(np.float32)
    return alpha_from_probability(unit, width, height)


# An edge band this wide (output pixels) at least, and at most this share of one model pixel:
# narrower than the model can place an edge looks cut with scissors, wider shows a halo.
EDGE_BAND_MIN = 1.5
EDGE_BAND_MODEL_PIXELS = 0.5
# Signed distances are carried to the output size as uint8 within +-this many model pixels
# (and never less than a band): beyond it every pixel is saturated anyway.
_DISTANCE_REACH = 2.0
# For models Cutout does not run itself, only rembg's finished mask is known: a steep ramp
# around its 128 line does the same, cruder.
_STEEP_MASK_RAMP = np.clip((np.arange(256) - 128) * 6 + 128, 0, 255).astype(np.uint8)


def edge_band(width: int, height: int) -> float:
    """The soft edge's width in output pixels for an image of this size."""
    scale = max(width, height) / MODEL_SIDE
    return max(EDGE_BAND_MIN, EDGE_BAND_MODEL_PIXELS * scale)


def alpha_from_probability(unit: np.ndarray, width: int, height: int) -> np.ndarray:
    """Alpha at width x height from the model's 0-1 map: a steep ramp across its 0.5 line.

    Each pixel's signed distance to the 0.5 line, in output pixels, is estimated where the
    model works ((p - 0.5) / |grad p|, with the gradient measured in output pixels since the
    model's square is stretched to the photo), carried to the output size by bilinear
    interpolation (a distance field upscales cleanly, a probability does not), and only then
    mapped to alpha: 255 past half a band inside, 0 past half a band outside. The 0.5 line
    itself, and so the mask rembg's 128 threshold gives, is unchanged.
    """
    scale_x, scale_y = width / unit.shape[1], height / unit.shape[0]
    grad_x = cv2.Sobel(unit, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8) / scale_x
    grad_y = cv2.Sobel(unit, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8) / scale_y
    slope = np.maximum(cv2.magnitude(grad_x, grad_y), 1e-6)
    band = edge_band(width, height)
    reach = max(_DISTANCE_REACH * max(scale_x, scale_y), band)  # output pixels
    distance = np.clip((unit - 0.5) / slope, -reach, reach)
    coded = np.rint(128 + distance * (127 / reach)).astype(np.uint8)
    if (width, height) != (unit.shape[1], unit.shape[0]):
        coded = cv2.resize(coded, (width, height), interpolation=cv2.INTER_LINEAR)
    steps = (np.arange(256, dtype=np.float32) - 128) * (reach / 127)
    ramp = np.clip(np.rint((0.5 + steps / band) * 255), 0, 255).astype(np.uint8)
    return cv2.LUT(coded, ramp, dst=coded)


def predict_mask(session: ModelSession, image: Image.Image) -> Image.Image:
    """The model's greyscale mask at the image's own size."""
    return Image.fromarray(predict_alpha(session, image), mode="L")


def _compose_band(
    pixels: np.ndarray, alpha: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Colour plus alpha; fully transparent pixels carry no colour (smaller PNGs, like rembg)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = np.minimum(alpha, pixels[..., 3])  # what was transparent in the upload stays so
    code = cv2.COLOR_GRAY2RGBA if pixels.ndim == 2 else cv2.COLOR_RGB2RGBA
    colour = pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., :3])
    rgba = cv2.cvtColor(colour, code, dst=out)
    rgba[..., 3] = alpha
    # Where alpha is 0 the AND clears the colour; elsewhere it keeps colour and alpha (255 mask).
    keep = cv2.cvtColor(cv2.threshold(alpha, 0, 255, cv2.THRESH_BINARY)[1], cv2.COLOR_GRAY2RGBA)
    return cv2.bitwise_and(rgba, keep, dst=rgba)


def compose_rgba(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's colour with the mask as alpha, as one RGBA array."""
    height, width = alpha.shape
    rgba = np.empty((height, width, 4), dtype=np.uint8)

    def band(rows: tuple[int, int]) -> None:
        top, bottom = rows
        _compose_band(pixels[top:bottom], alpha[top:bottom], out=rgba[top:bottom])

    _parallel(band, _row_bands(height, width * 4))
    return rgba


def cut_out(session: ModelSession, image: Image.Image) -> Image.Image:
    """The subject on a transparent background, same pixel size as the input."""
    alpha = predict_alpha(session, image)
    return Image.fromarray(compose_rgba(as_pixels(image), alpha), mode="RGBA")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF)
    )


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """zlib's adler32_combine (Python's zlib lacks it): the checksum of two strips joined."""
    base = 65521
    remainder = second_length % base
    sum1 = first & 0xFFFF
    sum2 = (remainder * sum1) % base
    sum1 += (second & 0xFFFF) + base - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + base - remainder
    sum1 = sum1 - base if sum1 >= base else sum1
    sum1 = sum1 - base if sum1 >= base else sum1
    sum2 = sum2 - (base << 1) if sum2 >= (base << 1) else sum2
    sum2 = sum2 - base if sum2 >= base else sum2
    return sum1 | (sum2 << 16)


def png_bytes(pixels: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Lossless PNG of an 8-bit L, RGB or RGBA array, compressed in parallel strips."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError("png_bytes needs an 8-bit greyscale, RGB or RGBA array")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return _png_from_bands(
        width, height, channels, lambda top, bottom: pixels[top:bottom], compress_level
    )


def _png_from_bands(
    width: int,
    height: int,
    channels: int,
    band: Callable[[int, int], np.ndarray],
    compress_level: int,
) -> bytes:
    """A PNG whose rows come from `band(top, bottom)`, each band made and deflated on a thread.

    Each band is filtered (PNG "Sub") and flushed to a byte boundary so the bands join into one
    valid zlib stream, as pigz does. Nothing the size of the whole image is made here, which
    keeps a 25 MP cutout within the memory budget.
    """
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    row_bytes = width * channels
    bands = _row_bands(height, row_bytes)
    last = len(bands) - 1

    def strip(index: int) -> tuple[bytes, int, int]:
        top, bottom = bands[index]
        source = band(top, bottom).reshape(bottom - top, row_bytes)
        filtered = np.empty((bottom - top, row_bytes + 1), dtype=np.uint8)
        filtered[:, 0] = 1  # "Sub": each byte minus the same channel of the pixel to its left
        filtered[:, 1 : channels + 1] = source[:, :channels]
        np.subtract(source[:, channels:], source[:, :-channels], out=filtered[:, channels + 1 :])
        # Run-length matching only: on Sub-filtered photos it is both faster and smaller than
        # level 1's general matching, and transparent areas are long runs of zeros.
        compressor = zlib.compressobj(compress_level, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        flush = zlib.Z_FINISH if index == last else zlib.Z_FULL_FLUSH
        data = compressor.compress(filtered) + compressor.flush(flush)
        return _chunk(b"IDAT", data), zlib.adler32(filtered), filtered.size

    strips = _parallel(strip, list(range(len(bands))))
    checksum = 1
    for _, strip_adler, strip_length in strips:
        checksum = _adler32_combine(checksum, strip_adler, strip_length)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    zlib_header = bytes([0x78, 0x01])  # deflate, 32K window, "fastest" level flag
    return b"".join(_iter_png(header, zlib_header, (chunk for chunk, _, _ in strips), checksum))


def _iter_png(
    header: bytes, zlib_header: bytes, idat_chunks: Iterable[bytes], checksum: int
) -> Iterator[bytes]:
    yield b"\x89PNG\r\n\x1a\n"
    yield _chunk(b"IHDR", header)
    yield _chunk(b"IDAT", zlib_header)
    yield from idat_chunks
    yield _chunk(b"IDAT", struct.pack(">I", checksum))
    yield _chunk(b"IEND", b"")


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG at zlib level 1 on every core: several times faster than Pillow's encoder."""
    return png_bytes(as_pixels(image))


def _rows(image: Image.Image | np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) as an array; from a Pillow image only those rows are copied."""
    if isinstance(image, np.ndarray):
        return image[top:bottom]
    return np.asarray(image.crop((0, top, image.width, bottom)))


def encode_cutout(image: Image.Image | np.ndarray, alpha: np.ndarray) -> bytes:
    """PNG of colour plus alpha: each band is composed as it is compressed, never whole."""
    if isinstance(image, Image.Image) and image.mode not in ("L", "RGB", "RGBA"):
        image = as_pixels(image)
    height, width = alpha.shape
    return _png_from_bands(
        width,
        height,
        4,
        lambda top, bottom: _compose_band(_rows(image, top, bottom), alpha[top:bottom]),
        1,
    )


def cutout_png(session: ModelSession, image: Image.Image | np.ndarray) -> bytes:
    """Background removal straight to PNG bytes, the fastest and leanest path to a file.

    A Pillow image is never copied whole: the model reads it through its resize and the PNG
    writer one band of rows at a time (a 25 MP photo stays well under 600 MB of RSS).
    """
    return encode_cutout(image, predict_alpha(session, image))
