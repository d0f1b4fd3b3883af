"""A job's files: the upload, its preview and the result, under an unguessable job id.

Everything goes through a `ResultStore`. The one Cutout ships keeps them in a folder
(`CUTOUT_RESULTS_DIR`, default `<data>/results`), which several web and Celery workers share
when it sits on storage they all mount. An object store (S3 and the like) can replace it by
implementing the same methods: whole-object writes, an atomic publish of a staged result (a
copy under the final key, or a conditional put), deletion by prefix. The module-level functions
below are what the rest of Cutout calls; they pick the store from the settings.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from app.settings import Settings


class JobFile(StrEnum):
    original = "original"  # the bytes as uploaded, kept only for (re)processing; never served
    before = "before.jpg"  # browser-viewable preview of the original
    cutout = "cutout.png"
    # What the page shows of the result: a light WebP, never the full PNG (that is the download).
    # A signed-out visitor's free preview has only this one.
    preview = "preview.webp"


@dataclass(frozen=True)
class Staged:
    """A result written but not yet visible; `handle` means something to its store only."""

    job_id: str
    kind: JobFile
    handle: str
    store: ResultStore = field(compare=False, repr=False)


class ResultStore(Protocol):
    def save_upload(self, job_id: str, *, original: bytes, preview: bytes) -> None:
        """Write a new job's files; a failure leaves nothing behind."""

    def read(self, job_id: str, kind: JobFile) -> bytes: ...

    def stage(self, job_id: str, kind: JobFile, data: bytes) -> Staged:
        """Write a result under a name of its own: two attempts at a job never share one."""

    def publish(self, staged: Staged) -> None:
        """Make a staged result visible under its final name, whole or not at all."""

    def discard(self, staged: Staged) -> None: ...

    def delete_job(self, job_id: str) -> None:
        """Remove every file of a job; nothing there is not an error."""

    def path_for(self, job_id: str, kind: JobFile) -> Path:
        """A local file to serve from (a remote store would fetch into a local cache)."""

    def jobs_older_than(self, prefix: str, before: datetime) -> list[str]:
        """Ids starting with `prefix` whose files were last written before `before`."""


class FolderStore:
    """Files in one folder per job, on a local disk or a share every worker mounts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def path_for(self, job_id: str, kind: JobFile) -> Path:
        return self.job_dir(job_id) / kind

    def save_upload(self, job_id: str, *, original: bytes, preview: bytes) -> None:
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=False)
        try:
            (folder / JobFile.original).write_bytes(original)
            (folder / JobFile.before).write_bytes(preview)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def read(self, job_id: str, kind: JobFile) -> bytes:
        return self.path_for(job_id, kind).read_bytes()

    def stage(self, job_id: str, kind: JobFile, data: bytes) -> Staged:
        # A random part name: a worker that was given up for dead may still be writing its own.
        final = self.path_for(job_id, kind)
        staged = final.with_name(f"{final.name}.{secrets.token_hex(6)}.part")
        staged.write_bytes(data)
        return Staged(job_id, kind, str(staged), self)

    def publish(self, staged: Staged) -> None:
        # rename() is atomic within one filesystem, NFS included: a reader sees all or nothing.
        Path(staged.handle).replace(self.path_for(staged.job_id, staged.kind))

    def discard(self, staged: Staged) -> None:
        Path(staged.handle).unlink(missing_ok=True)

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def jobs_older_than(self, prefix: str, before: datetime) -> list[str]:
        cutoff = before.timestamp()
        old = []
        for folder in self.root.glob(f"{prefix}*"):
            try:
                newest = max(
                    [folder.stat().st_mtime, *(f.stat().st_mtime for f in folder.iterdir())]
                )
            except OSError:  # deleted while we looked: nothing left to sweep
                continue
            if newest < cutoff:
                old.append(folder.name)
        return old


@lru_cache(maxsize=8)
def _folder_store(root: Path) -> FolderStore:
    return FolderStore(root)


def store(settings: Settings) -> ResultStore:
    """The result store the settings name (today: the results folder)."""
    return _folder_store(settings.results_dir)


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.results_dir / job_id


def file_path(settings: Settings, job_id: str, kind: JobFile) -> Path:
    return store(settings).path_for(job_id, kind)


def save_upload(settings: Settings, job_id: str, *, original: bytes, preview: bytes) -> None:
    """Write a new job's files; a failure leaves no folder behind."""
    store(settings).save_upload(job_id, original=original, preview=preview)


def read_original(settings: Settings, job_id: str) -> bytes:
    return store(settings).read(job_id, JobFile.original)


def stage_result(settings: Settings, job_id: str, data: bytes) -> Staged:
    """Write the result under a name of its own; it becomes visible only once published."""
    return store(settings).stage(job_id, JobFile.cutout, data)


def save_preview(settings: Settings, job_id: str, data: bytes) -> None:
    """The result's light copy; served only once the job is done, like the result itself."""
    store(settings).publish(store(settings).stage(job_id, JobFile.preview, data))


def publish_result(staged: Staged) -> None:
    staged.store.publish(staged)


def discard(staged: Staged) -> None:
    staged.store.discard(staged)


def delete_job_files(settings: Settings, job_id: str) -> None:
    store(settings).delete_job(job_id)
