"""The `cutout` operator command: one file, a folder, editor options, and honest failures."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.cutout import main

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
MODEL = ["--models-dir", str(MODELS_DIR)]


def scene(width: int = 320, height: int = 240) -> np.ndarray:
    """A red disc (left) and a blue square (right) on a textured background."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack(
        [90 + 30 * np.sin(xx / 7), 110 + 25 * np.sin(yy / 5), 100 + 20 * np.sin((xx + yy) / 9)],
        axis=-1,
    ) + rng.normal(0, 10, (height, width, 3))
    image[(xx - 90) ** 2 + (yy - 120) ** 2 <= 55**2] = (220, 40, 40)
    image[(abs(xx - 240) <= 45) & (abs(yy - 120) <= 45)] = (40, 60, 210)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_photo(path: Path, pixels: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene() if pixels is None else pixels).save(path, quality=95)
    return path


def read(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def test_remove_writes_a_transparent_png_of_the_same_size(tmp_path):
    source = write_photo(tmp_path / "in.jpg")
    assert main(["remove", str(source), str(tmp_path / "out.png"), *MODEL]) == 0
    out = read(tmp_path / "out.png")
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (320, 240)
    alpha = np.asarray(out)[..., 3]
    assert alpha[120, 90] >= 250 and alpha[120, 240] >= 250 and alpha[10, 10] == 0


def test_editor_options_and_format_from_the_file_name(tmp_path):
    source = write_photo(tmp_path / "in.png")
    target = tmp_path / "square.jpg"
    code = main(
        ["remove", str(source), str(target), *MODEL]
        + ["--color", "#00ff00", "--crop", "--margin", "5", "--canvas", "1:1", "--quality", "80"]
    )
    assert code == 0
    out = read(target)
    assert out.format == "JPEG" and out.size[0] == out.size[1]
    corner = np.asarray(out)[2, 2].astype(int)
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60


def test_ai_cut_box_keeps_only_what_is_inside(tmp_path):
    source = write_photo(tmp_path / "in.png")
    code = main(
        ["remove", str(source), str(tmp_path / "disc.png"), *MODEL]
        + ["--feature", "ai-cut", "--box", "20,50,160,190"]
    )
    assert code == 0
    alpha = np.asarray(read(tmp_path / "disc.png"))[..., 3]
    assert alpha[120, 90] >= 250 and (alpha[:, 170:] == 0).all()


def test_hair_feature_gives_soft_edges(tmp_path):
    photo = np.asarray(Image.open(io.BytesIO(_astronaut_png())))
    source = write_photo(tmp_path / "portrait.png", photo)
    code = main(["remove", str(source), str(tmp_path / "out.png"), *MODEL, "--feature", "hair"])
    assert code == 0
    alpha = np.asarray(read(tmp_path / "out.png"))[..., 3]
    assert ((alpha > 10) & (alpha < 245)).sum() > 1000


def _astronaut_png() -> bytes:
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, "PNG")
    return buffer.getvalue()


def test_batch_processes_the_folder_and_reports_failures(tmp_path, capsys):
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    write_photo(inbox / "one.jpg")
    write_photo(inbox / "nested" / "two.png")
    (inbox / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (inbox / "notes.txt").write_text("not an image")
    assert main(["batch", str(inbox), str(outbox), *MODEL]) == 1
    assert read(outbox / "one.png").size == (320, 240)
    assert read(outbox / "nested" / "two.png").mode == "RGBA"
    assert not (outbox / "broken.png").exists()
    report = capsys.readouterr().err
    assert "2 done, 1 failed, 1 skipped" in report
    assert "broken.jpg" in report and "not an image Cutout can read" in report

    (inbox / "broken.jpg").unlink()
    assert main(["batch", str(inbox), str(outbox), *MODEL, "--format", "webp"]) == 0
    assert read(outbox / "one.webp").format == "WEBP"


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        (["--quality", "0"], "quality"),
        (["--color", "#ggg"], "color"),
        (["--canvas", "0x100"], "canvas"),
        (["--feature", "ai-cut", "--box", "0,0,999,999"], "box"),
        (["--keep", "10,10"], "feature"),
    ],
)
def test_bad_parameters_exit_2_naming_the_parameter(tmp_path, capsys, options, parameter):
    source = write_photo(tmp_path / "in.png")
    assert main(["remove", str(source), str(tmp_path / "x.png"), *MODEL, *options]) == 2
    assert f"cutout: {parameter}:" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_console_script_runs_as_a_process(tmp_path):
    source = write_photo(tmp_path / "in.jpg")
    script = Path(sys.executable).parent / "cutout"
    env = {**os.environ, "CUTOUT_MODELS_DIR": str(MODELS_DIR)}
    done = subprocess.run(
        [str(script), "remove", str(source), str(tmp_path / "out.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "out.png").size == (320, 240)
    missing = subprocess.run(
        [str(script), "remove", str(tmp_path / "nope.jpg"), str(tmp_path / "o.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "nope.jpg" in missing.stderr
