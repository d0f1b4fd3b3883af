"""A job's files on disk: the upload, its preview and the result, under an unguessable folder."""

from __future__ import annotations

import shutil
from enum import StrEnum
from pathlib import Path

from app.settings import Settings


class JobFile(StrEnum):
    original = "original"  # the bytes as uploaded, kept only for (re)processing; never served
    before = "before.jpg"  # browser-viewable preview of the original
    cutout = "cutout.png"
    # What the page shows of the result: a light WebP, never the full PNG (that is the download).
    # A signed-out visitor's free preview has only this one.
    preview = "preview.webp"


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.results_dir / job_id


def file_path(settings: Settings, job_id: str, kind: JobFile) -> Path:
    return job_dir(settings, job_id) / kind


def save_upload(settings: Settings, job_id: str, *, original: bytes, preview: bytes) -> None:
    """Write a new job's files; a failure leaves no folder behind."""
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        (folder / JobFile.original).write_bytes(original)
        (folder / JobFile.before).write_bytes(preview)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def read_original(settings: Settings, job_id: str) -> bytes:
    return file_path(settings, job_id, JobFile.original).read_bytes()


def stage_result(settings: Settings, job_id: str, data: bytes) -> Path:
    """Write the result beside its final name; it becomes visible only once published."""
    staged = file_path(settings, job_id, JobFile.cutout).with_suffix(".png.part")
    staged.write_bytes(data)
    return staged


def save_preview(settings: Settings, job_id: str, data: bytes) -> None:
    """The result's light copy; served only once the job is done, like the result itself."""
    file_path(settings, job_id, JobFile.preview).write_bytes(data)


def publish_result(staged: Path) -> None:
    staged.replace(staged.with_suffix(""))  # atomic: a reader sees the whole file or none


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def delete_job_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
