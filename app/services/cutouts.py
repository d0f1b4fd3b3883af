"""Cutout jobs from upload to downloadable PNG: storage, ownership, processing and retention."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePath

from sqlalchemy import Engine
from sqlmodel import Session, select

from app.db import session_scope
from app.models.jobs import CutoutJob, JobStatus
from app.services import engine as cutout_engine
from app.services.clock import Clock
from app.services.images import ImageRejected, Limits, load_image, preview_jpeg
from app.settings import Settings


class JobFile(StrEnum):
    original = "original"  # the bytes as uploaded, kept only for reprocessing
    before = "before.jpg"  # browser-viewable preview of the original
    cutout = "cutout.png"


class JobNotFound(LookupError):
    """No such job for this owner: another owner's ids look exactly like missing ones."""


@dataclass(frozen=True)
class JobView:
    """What the UI needs to know about a job: plain values, never file contents."""

    id: str
    original_name: str
    status: JobStatus
    width: int
    height: int
    error: str | None
    download_name: str


def limits_for(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.results_dir / job_id


def download_name(original_name: str) -> str:
    stem = PurePath(original_name).stem or "cutout"
    safe = "".join(ch if ch.isalnum() or ch in "-_ ." else "_" for ch in stem).strip() or "cutout"
    return f"{safe}.png"


def _view(job: CutoutJob) -> JobView:
    return JobView(
        id=job.id,
        original_name=job.original_name,
        status=job.status,
        width=job.width,
        height=job.height,
        error=job.error,
        download_name=download_name(job.original_name),
    )


def submit_upload(
    *, db: Engine, settings: Settings, clock: Clock, owner: str, filename: str, data: bytes
) -> JobView:
    """Validate and store an upload as a queued job. Refusals leave nothing behind on disk."""
    loaded = load_image(data, filename=filename, limits=limits_for(settings))
    job_id = secrets.token_urlsafe(24)
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        (folder / JobFile.original).write_bytes(data)
        (folder / JobFile.before).write_bytes(preview_jpeg(loaded.image))
        now = clock.now()
        job = CutoutJob(
            id=job_id,
            owner=owner,
            original_name=loaded.name[:255],
            width=loaded.width,
            height=loaded.height,
            created_at=now,
            expires_at=now + timedelta(hours=settings.retention_hours),
        )
        with session_scope(db) as session:
            session.add(job)
        return _view(job)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _set_status(
    db: Engine, job_id: str, status: JobStatus, *, clock: Clock, error: str | None = None
) -> None:
    with session_scope(db) as session:
        job = session.get(CutoutJob, job_id)
        if job is None:
            raise JobNotFound(job_id)
        job.status = status
        job.error = error
        if status is JobStatus.processing:
            job.started_at = clock.now()
        if status in (JobStatus.done, JobStatus.failed):
            job.finished_at = clock.now()
        session.add(job)


def process_job(*, db: Engine, settings: Settings, clock: Clock, job_id: str) -> JobView:
    """Run the model on a stored upload and write the cutout. Blocking: call from a worker."""
    _set_status(db, job_id, JobStatus.processing, clock=clock)
    folder = job_dir(settings, job_id)
    try:
        data = (folder / JobFile.original).read_bytes()
        loaded = load_image(data, filename="upload", limits=limits_for(settings))
        session = cutout_engine.load_session(
            settings.models_path, settings.model_name, settings.onnx_thread_count
        )
        png = cutout_engine.cutout_png(session, loaded.image)
        partial = folder / (JobFile.cutout + ".part")
        partial.write_bytes(png)
        partial.replace(folder / JobFile.cutout)
    except ImageRejected as rejected:
        _set_status(db, job_id, JobStatus.failed, clock=clock, error=rejected.message)
    except Exception as error:  # noqa: BLE001 - the person sees a clear failure, not a hang
        _set_status(
            db,
            job_id,
            JobStatus.failed,
            clock=clock,
            error=f"Processing failed ({type(error).__name__}); nothing was charged.",
        )
        raise
    else:
        _set_status(db, job_id, JobStatus.done, clock=clock)
    return get_job(db=db, owner=None, job_id=job_id)


def get_job(*, db: Engine, owner: str | None, job_id: str) -> JobView:
    """The job if it exists and belongs to owner (None: operator access); else JobNotFound."""
    with Session(db) as session:
        job = session.get(CutoutJob, job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(job_id)
        return _view(job)


def recent_job(*, db: Engine, owner: str, since: datetime) -> JobView | None:
    """The owner's newest job created after `since`, to pick up where a dropped page left off."""
    found = list_jobs(db=db, owner=owner, limit=1, since=since)
    return found[0] if found else None


def list_jobs(
    *, db: Engine, owner: str, limit: int = 20, since: datetime | None = None
) -> list[JobView]:
    """The owner's newest jobs still within retention (created after `since`, if given)."""
    query = select(CutoutJob).where(CutoutJob.owner == owner)
    if since is not None:
        query = query.where(CutoutJob.created_at >= since)
    with Session(db) as session:
        rows = session.exec(
            query.order_by(CutoutJob.created_at.desc()).limit(limit)  # type: ignore[union-attr]
        ).all()
        return [_view(job) for job in rows]


def job_file(
    *, db: Engine, settings: Settings, owner: str, job_id: str, kind: JobFile
) -> tuple[Path, JobView]:
    """Path of a job's file for its owner only; originals are never served."""
    if kind is JobFile.original:
        raise JobNotFound(job_id)
    view = get_job(db=db, owner=owner, job_id=job_id)
    path = job_dir(settings, job_id) / kind
    if not path.is_file():
        raise JobNotFound(job_id)
    return path, view


INTERRUPTED = "Processing was interrupted (the server restarted); nothing was charged. Try again."


def fail_stalled(*, db: Engine, clock: Clock, older_than: timedelta) -> int:
    """Mark jobs stuck in processing (a restart killed their worker) as failed; returns how many.

    Their reservations time out on their own and the ledger's sweeper releases them, so the
    person sees a clear failure instead of a spinner, and pays nothing.
    """
    cutoff = clock.now() - older_than
    with session_scope(db) as session:
        stalled = session.exec(
            select(CutoutJob).where(
                CutoutJob.status == JobStatus.processing,
                CutoutJob.started_at <= cutoff,  # type: ignore[operator]
            )
        ).all()
        for job in stalled:
            job.status = JobStatus.failed
            job.error = INTERRUPTED
            job.finished_at = clock.now()
            session.add(job)
    return len(stalled)


def purge_expired(*, db: Engine, settings: Settings, clock: Clock) -> int:
    """Delete jobs past their retention, files first; returns how many went."""
    now = clock.now()
    with session_scope(db) as session:
        expired = session.exec(select(CutoutJob).where(CutoutJob.expires_at <= now)).all()
        for job in expired:
            shutil.rmtree(job_dir(settings, job.id), ignore_errors=True)
            session.delete(job)
    return len(expired)
