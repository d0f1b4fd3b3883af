"""`cutout`: the engine for operators, one file or a whole folder, no credits involved."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from app.services.billing.pricing import Feature
from app.services.imaging import aicut, editor, engine, pipeline
from app.services.imaging.images import ImageRejected, Limits, load_image
from app.services.imaging.model_files import ModelMissing

# The command line's names for the pipeline's features.
FEATURES = {"remove": Feature.background_removal, "ai-cut": Feature.ai_cut, "hair": Feature.hair}
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".heic",
    ".heif",
}
# Operators process their own files: the upload size cap does not apply, the pixel limit does.
MAX_FILE_BYTES = 512 * 1024 * 1024
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def _points(text: str) -> tuple[tuple[float, float], ...]:
    """'x,y x,y ...' (or ';'-separated) image pixel coordinates."""
    try:
        pairs = text.replace(";", " ").split()
        return tuple((float(a), float(b)) for a, b in (pair.split(",") for pair in pairs))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of x,y points") from None


def _numbers(count: int, kind: type) -> object:
    def parse(text: str) -> tuple:
        parts = text.split(",")
        try:
            if len(parts) != count:
                raise ValueError
            return tuple(kind(part) for part in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} needs {count} comma-separated numbers"
            ) from None

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cutout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    single = commands.add_parser("remove", help="cut out one image")
    single.add_argument("input", type=Path)
    single.add_argument("output", type=Path)
    batch = commands.add_parser("batch", help="cut out every image in a folder")
    batch.add_argument("input", type=Path)
    batch.add_argument("output", type=Path)
    batch.add_argument(
        "--jobs", type=int, default=0, help="images in flight at once (default: cores)"
    )
    batch.add_argument("--overwrite", action="store_true", help="redo files already done")
    for sub in (single, batch):
        engine_options = sub.add_argument_group("engine")
        engine_options.add_argument("--feature", choices=list(FEATURES), default="remove")
        engine_options.add_argument("--models-dir", type=Path, help="default: settings")
        engine_options.add_argument(
            "--model",
            help="default: settings (u2netp); u2net is High quality (`cutout-setup --model u2net`)",
        )
        engine_options.add_argument("--threads", type=int, help="onnxruntime threads")
        engine_options.add_argument("--max-megapixels", type=float, default=None)
        marks = sub.add_argument_group("AI Cut marks (image pixels)")
        marks.add_argument("--box", type=_numbers(4, int), help="left,top,right,bottom")
        marks.add_argument("--keep", type=_points, action="append", default=[], help="x,y x,y")
        marks.add_argument("--remove", type=_points, action="append", default=[])
        marks.add_argument("--brush", type=float, default=8.0, help="stroke radius in pixels")
        edits = sub.add_argument_group("editor")
        edits.add_argument("--background", choices=editor.BACKGROUNDS, default=None)
        edits.add_argument("--color", help="background colour, #rrggbb or #rrggbbaa")
        edits.add_argument("--background-image", type=Path)
        edits.add_argument("--blur", type=float, default=0.02, help="of the long side")
        edits.add_argument("--shadow", action="store_true")
        edits.add_argument("--crop", action="store_true", help="crop to the subject")
        edits.add_argument("--margin", type=int, default=0, help="pixels around the subject")
        edits.add_argument("--canvas", default="original", help="original, 1:1, 4:5, 16:9 or WxH")
        edits.add_argument("--scale", type=float, default=1.0, help="subject's share of canvas")
        edits.add_argument("--position", type=_numbers(2, float), help="subject centre, 0-1")
        edits.add_argument("--format", choices=editor.FORMATS)
        edits.add_argument("--quality", type=int, default=90)
        edits.add_argument("--mask-only", action="store_true")
    return parser


def _spec(args: argparse.Namespace, format_name: str, max_pixels: int) -> editor.EditSpec:
    background = args.background or (
        "image" if args.background_image else "color" if args.color else "transparent"
    )
    width = height = None
    canvas = args.canvas
    if "x" in canvas.lower():
        try:
            width, height = (int(v) for v in canvas.lower().split("x"))
        except ValueError:
            raise editor.BadParameter("canvas", f"{canvas!r} is not WIDTHxHEIGHT") from None
        canvas = "custom"
    return editor.EditSpec(
        background=background,
        color=args.color or "#ffffff",
        blur=args.blur,
        shadow=args.shadow,
        crop=args.crop,
        margin=args.margin,
        canvas=canvas,
        width=width,
        height=height,
        scale=args.scale,
        position=args.position,
        format=format_name,
        quality=args.quality,
        mask_only=args.mask_only,
        max_pixels=max_pixels,
    )


def process(
    data: bytes,
    name: str,
    session: engine.ModelSession,
    job: pipeline.CutoutRequest,
    limits: Limits,
) -> bytes:
    """One file's bytes in, the finished output's bytes out."""
    return pipeline.run_bytes(session, data, filename=name, limits=limits, request=job).data


def _inputs(folder: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    images = [path for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    return images, [path for path in files if path.suffix.lower() not in IMAGE_SUFFIXES]


def _run_batch(
    args: argparse.Namespace,
    job: pipeline.CutoutRequest,
    limits: Limits,
    settings_threads: int,
    models: tuple[Path, str],
) -> int:
    if not args.input.is_dir():
        print(f"cutout: {args.input} is not a folder", file=sys.stderr)
        return 2
    images, skipped = _inputs(args.input)
    extension = "jpg" if job.spec.format == "jpeg" else job.spec.format
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    # Whole images in flight on their own threads, each model run on fewer cores: decoding and
    # encoding of one image overlap the inference of another, and no core waits for the GIL.
    threads = max(1, (args.threads or settings_threads) // jobs)
    # Many small images: the arena's speed is worth its memory here.
    session = engine.load_session(models[0], models[1], threads, memory_arena=True)
    failures: list[tuple[Path, str]] = []
    done = 0

    def one(path: Path) -> None:
        relative = path.relative_to(args.input)
        target = (args.output / relative).with_suffix(f".{extension}")
        if target.exists() and not args.overwrite:
            return
        result = process(path.read_bytes(), path.name, session, job, limits)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(result)
        partial.replace(target)  # a crash never leaves a half-written output that looks done

    with (
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="cutout-batch") as pool,
        tqdm(total=len(images), unit="img", file=sys.stderr) as progress,
    ):
        futures = {pool.submit(one, path): path for path in images}
        for future in as_completed(futures):
            error = future.exception()
            if error is None:
                done += 1
            else:
                failures.append((futures[future], _reason(error)))
            progress.update(1)

    print(
        f"cutout: {done} done, {len(failures)} failed, {len(skipped)} skipped (not images)",
        file=sys.stderr,
    )
    for path, reason in sorted(failures):
        print(f"  failed {path.relative_to(args.input)}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def _reason(error: BaseException) -> str:
    if isinstance(error, ImageRejected):
        return error.message
    if isinstance(error, editor.BadParameter | OSError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from app.settings import get_settings

    settings = get_settings()
    max_pixels = int((args.max_megapixels or settings.max_megapixels) * 1_000_000)
    limits = Limits(max_bytes=MAX_FILE_BYTES, max_pixels=max_pixels)
    models = (args.models_dir or settings.models_path, args.model or settings.model_name)
    format_name = args.format or (
        SUFFIX_FORMATS.get(args.output.suffix.lower(), "png") if args.command == "remove" else "png"
    )
    try:
        spec = _spec(args, format_name, max_pixels)
        background = None
        if args.background_image:
            background = load_image(
                args.background_image.read_bytes(),
                filename=args.background_image.name,
                limits=limits,
            ).image
        marks = aicut.Marks(
            box=args.box,
            keep=tuple(aicut.Stroke(points, args.brush) for points in args.keep),
            remove=tuple(aicut.Stroke(points, args.brush) for points in args.remove),
        )
        if args.feature != "ai-cut" and not marks.empty:
            raise editor.BadParameter("feature", "marks (--box, --keep, --remove) need ai-cut")
        job = pipeline.CutoutRequest(FEATURES[args.feature], spec, marks, background)
        if args.command == "batch":
            return _run_batch(args, job, limits, settings.onnx_thread_count, models)
        session = engine.load_session(*models, args.threads or settings.onnx_thread_count)
        result = process(args.input.read_bytes(), args.input.name, session, job, limits)
    except (editor.BadParameter, ImageRejected, ModelMissing, OSError) as error:
        print(f"cutout: {_reason(error)}", file=sys.stderr)
        return 2 if isinstance(error, editor.BadParameter) else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
