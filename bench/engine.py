"""Cutout's engine against rembg, side by side in one run: speed, bulk, memory, mask agreement.

Run: NUMBA_CACHE_DIR=data/numba-cache .venv/bin/python bench/engine.py [--runs 5] [--quick]
Every figure is a ratio against its baseline measured in this same run (medians of --runs).
Test photos are scikit-image's, upscaled; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.services.imaging import engine  # noqa: E402
from app.services.imaging.images import Limits, load_image  # noqa: E402

MODELS_DIR = REPO / "data" / "models"
MODEL = "u2netp"
LIMITS = Limits(max_bytes=512 * 1024 * 1024, max_pixels=25_000_000)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
BIN = Path(sys.executable).parent


def photo(name: str) -> np.ndarray:
    pixels = getattr(skimage.data, name)()
    return np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels[..., :3]


def jpeg(pixels: np.ndarray, width: int, height: int, quality: int = 92) -> bytes:
    big = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_CUBIC)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def shape_scene(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack(
        [90 + 30 * np.sin(xx / 7), 110 + 25 * np.sin(yy / 5), 100 + 20 * np.sin((xx + yy) / 9)],
        axis=-1,
    ) + rng.normal(0, 12, (height, width, 3))
    colour = rng.integers(0, 256, 3)
    if seed % 2:
        inside = ((xx - width / 2) / (width * 0.25)) ** 2 + (
            (yy - height / 2) / (height * 0.3)
        ) ** 2
        image[inside <= 1] = colour
    else:
        image[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def median_time(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(functions: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Medians with the contenders alternating, so machine noise hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def rembg_session(threads: int):  # type: ignore[no-untyped-def]
    os.environ["U2NET_HOME"] = str(MODELS_DIR)
    from rembg import new_session

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return new_session(MODEL, sess_opts=options)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_single(runs: int, threads: int) -> None:
    from rembg import remove

    data = jpeg(photo("astronaut"), 4000, 3000)
    ours = engine.load_session(MODELS_DIR, MODEL, threads)
    theirs = rembg_session(threads)
    decoded = load_image(data, filename="12mp.jpg", limits=LIMITS).image

    def cutout() -> bytes:
        return engine.cutout_png(ours, load_image(data, filename="12mp.jpg", limits=LIMITS).image)

    def web_path() -> bytes:
        image = load_image(data, filename="12mp.jpg", limits=LIMITS).image
        return engine.encode_png(engine.cut_out(ours, image))

    cutout()  # warm both sessions before timing
    remove(data, session=theirs)
    times = interleaved(
        {
            "cutout": cutout,
            "web": web_path,
            "remove": lambda: remove(data, session=theirs),
            "predict": lambda: theirs.predict(decoded),
        },
        runs,
    )
    speedup = times["remove"] / times["cutout"]
    floor = times["cutout"] / times["predict"]
    print(f"12 MP JPEG -> PNG bytes, {threads} onnx threads for both, medians of {runs}")
    print(
        f"  cutout_png {times['cutout']:.3f} s vs rembg remove() {times['remove']:.3f} s: "
        f"{speedup:.2f}x faster (target >= 2x) {verdict(speedup >= 2)}"
    )
    print(
        f"  vs rembg model predict {times['predict']:.3f} s: {floor:.2f}x of predict "
        f"(target <= 1.5x) {verdict(floor <= 1.5)}"
    )
    print(
        f"  web path encode_png(cut_out()) {times['web']:.3f} s: "
        f"{times['remove'] / times['web']:.2f}x faster than remove(), "
        f"{times['web'] / times['predict']:.2f}x of predict"
    )
    png = cutout()
    pixels = engine.as_pixels(decoded)
    expected = engine.compose_rgba(pixels, engine.predict_alpha(ours, pixels))
    lossless = np.array_equal(np.asarray(Image.open(io.BytesIO(png))), expected)
    print(f"  PNG lossless (decodes to the exact RGBA): {lossless} {verdict(lossless)}")
    size_theirs = len(remove(data, session=theirs))
    print(f"  PNG size {len(png) / 1e6:.1f} MB vs rembg {size_theirs / 1e6:.1f} MB")


def bench_agreement(threads: int) -> None:
    from rembg import remove

    ours = engine.load_session(MODELS_DIR, MODEL, threads)
    theirs = rembg_session(threads)
    cases: list[tuple[str, np.ndarray]] = [(name, photo(name)) for name in PHOTOS]
    cases += [(f"{name} 12 MP", cv2.resize(photo(name), (4000, 3000))) for name in PHOTOS[:3]]
    cases += [(f"shape {seed}", shape_scene(480 + 40 * seed, 360, seed)) for seed in range(4)]
    print("Mask IoU vs rembg remove(only_mask) thresholded at 128 (target >= 0.99)")
    worst = 1.0
    for name, pixels in cases:
        mine = engine.predict_alpha(ours, pixels) >= 128
        reference = np.asarray(remove(Image.fromarray(pixels), session=theirs, only_mask=True))
        theirs_mask = reference >= 128
        iou = (mine & theirs_mask).sum() / max((mine | theirs_mask).sum(), 1)
        worst = min(worst, iou)
        print(f"  {name:<28} {iou:.4f}")
    print(f"  worst {worst:.4f} {verdict(worst >= 0.99)}")


MEMORY_CHILD = """
import sys
sys.path.insert(0, {repo!r})
data = open({path!r}, "rb").read()
if {which!r} == "cutout":
    from pathlib import Path
    from app.services.imaging import engine
    from app.services.imaging.images import Limits, load_image
    session = engine.load_session(Path({models!r}), "u2netp", 0)
    image = load_image(data, filename="25mp.jpg", limits=Limits(1 << 30, 25_000_000)).image
    png = engine.cutout_png(session, image)
else:
    import os
    os.environ["U2NET_HOME"] = {models!r}
    from rembg import new_session, remove
    png = remove(data, session=new_session("u2netp"))
# VmHWM, not ru_maxrss: the latter carries over the parent's peak across fork and exec.
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(int(peak) // 1024, len(png))
"""


def peak_rss(which: str, path: Path) -> int:
    code = MEMORY_CHILD.format(repo=str(REPO), path=str(path), which=which, models=str(MODELS_DIR))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return int(done.stdout.split()[0])


def bench_memory(workdir: Path) -> None:
    path = workdir / "25mp.jpg"
    path.write_bytes(jpeg(photo("coffee"), 6000, 4166))
    mine, theirs = peak_rss("cutout", path), peak_rss("rembg", path)
    print("Peak RSS, 6000x4166 (25 MP) JPEG -> PNG in a fresh process")
    print(
        f"  cutout {mine} MB vs rembg remove() {theirs} MB: {mine / theirs:.2f}x "
        f"(target <= 600 MB) {verdict(mine <= 600)}"
    )


# rembg's own CLI, minus its HTTP server command, whose extras (fastapi, gradio) are not installed:
# `i` and `p` run exactly their own code.
REMBG_CLI = """
import sys, types, click
stub = types.ModuleType("rembg.commands.s_command")
stub.s_command = click.Command("s")
sys.modules["rembg.commands.s_command"] = stub
from rembg.cli import main
main()
"""


def timed_process(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - start


def bench_processes(workdir: Path, runs: int) -> None:
    import importlib.util

    missing = [m for m in ("filetype", "watchdog") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"Whole processes: skipped; rembg's CLI needs {', '.join(missing)} (pip install)")
        return
    env = {
        **os.environ,
        "U2NET_HOME": str(MODELS_DIR),
        "CUTOUT_MODELS_DIR": str(MODELS_DIR),
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache")),
    }
    inbox = workdir / "bulk"
    inbox.mkdir()
    names = [*PHOTOS, "cat", "hubble_deep_field", "coins", "camera", "page"]
    for index in range(20):
        pixels = photo(names[index % len(names)])
        if index >= len(names):
            pixels = pixels[:, ::-1]  # a mirrored copy: different bytes, same kind of photo
        (inbox / f"photo{index:02d}.jpg").write_bytes(jpeg(pixels, 1460, 1095))
    single = workdir / "12mp.jpg"
    single.write_bytes(jpeg(photo("astronaut"), 4000, 3000))

    counter = iter(range(10_000))

    def fresh() -> str:
        return str(workdir / f"out{next(counter)}")

    shim = workdir / "rembg_cli.py"
    shim.write_text(REMBG_CLI)
    cutout, rembg = str(BIN / "cutout"), [sys.executable, str(shim)]
    times: dict[str, list[float]] = {k: [] for k in ("cutout p", "rembg p", "cutout i", "rembg i")}
    for _ in range(runs):
        times["cutout p"].append(timed_process([cutout, "batch", str(inbox), fresh()], env))
        times["rembg p"].append(timed_process([*rembg, "p", "-m", MODEL, str(inbox), fresh()], env))
        times["cutout i"].append(
            timed_process([cutout, "remove", str(single), fresh() + ".png"], env)
        )
        times["rembg i"].append(
            timed_process([*rembg, "i", "-m", MODEL, str(single), fresh() + ".png"], env)
        )
    medians = {name: statistics.median(values) for name, values in times.items()}
    bulk = medians["rembg p"] / medians["cutout p"]
    one = medians["rembg i"] / medians["cutout i"]
    print(f"Whole processes (start-up included), medians of {runs}")
    print(
        f"  bulk 20 x 1.6 MP: `cutout batch` {medians['cutout p']:.1f} s "
        f"({20 * 60 / medians['cutout p']:.0f} img/min) vs `rembg p` {medians['rembg p']:.1f} s "
        f"({20 * 60 / medians['rembg p']:.0f} img/min): {bulk:.2f}x (target >= 1.5x) "
        f"{verdict(bulk >= 1.5)}"
    )
    print(
        f"  12 MP: `cutout remove` {medians['cutout i']:.2f} s vs `rembg i` "
        f"{medians['rembg i']:.2f} s: {one:.2f}x (target >= 2x) {verdict(one >= 2)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--process-runs", type=int, default=3)
    parser.add_argument(
        "--parts", default="single,agreement,memory,processes", help="comma-separated subset"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    threads = os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="cutout-bench-"))
    try:
        if "single" in parts:
            bench_single(args.runs, threads)
        if "agreement" in parts:
            bench_agreement(threads)
        if "memory" in parts:
            bench_memory(workdir)
        if "processes" in parts:
            bench_processes(workdir, args.process_runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
