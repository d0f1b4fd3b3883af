"""Cutout jobs: one uploaded photo on its way to a result, its owner, and its status.

A job moves queued -> processing -> done | failed. Taking it (queued -> processing) is one
conditional write, so two workers never both run the model for it; a failed job can be put back
in the queue as a new attempt, which is charged under a new reservation key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePath

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.models.jobs import CutoutJob, JobStatus
from app.services.billing.pricing import Feature
from app.services.clock import Clock
from app.services.imaging.images import ImageRejected
from app.services.jobs import storage
from app.services.jobs.storage import JobFile
from app.settings import Settings

INTERRUPTED = "Processing was interrupted (the server restarted); nothing was charged. Try again."


class JobNotFound(LookupError):
    """No such job for this owner: another owner's ids look exactly like missing ones."""


class UploadLimited(ImageRejected):
    """Too many uploads in the last minute (an HTTP answer would be 429); nothing was stored."""

    def __init__(self, per_minute: int) -> None:
        super().__init__(
            f"That is more than {per_minute} photos in a minute. Wait a moment and try again."
        )


# Photos that were stored but never paid for (queued, or failed and not retried).
UNPAID = (JobStatus.queued, JobStatus.failed)


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
    feature: Feature
    attempt: int
    created_at: datetime
    model: str | None = None  # asked for ("High quality"); None: the configured model

    @property
    def reservation_key(self) -> str:
        """One charge per attempt at a job, however often its processing is asked for."""
        return charge_key(self.id, self.attempt)


def charge_key(job_id: str, attempt: int) -> str:
    return f"cutout:{job_id}" if attempt == 0 else f"cutout:{job_id}:{attempt}"


def download_name(original_name: str) -> str:
    stem = PurePath(original_name).stem or "cutout"
    safe = "".join(ch if ch.isalnum() or ch in "-_ ." else "_" for ch in stem).strip() or "cutout"
    return f"{safe}.png"


def view_of(job: CutoutJob) -> JobView:
    return JobView(
        id=job.id,
        original_name=job.original_name,
        status=job.status,
        width=job.width,
        height=job.height,
        error=job.error,
        download_name=download_name(job.original_name),
        feature=Feature(job.feature),
        attempt=job.attempt,
        model=job.model,
        created_at=job.created_at,
    )


def add_job(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    job_id: str,
    owner: str,
    name: str,
    width: int,
    height: int,
    feature: Feature = Feature.background_removal,
    model: str | None = None,
) -> JobView:
    """Record an upload whose files are already stored, as a queued job."""
    now = clock.now()
    job = CutoutJob(
        id=job_id,
        owner=owner,
        original_name=name[:255],
        width=width,
        height=height,
        feature=feature.value,
        model=model,
        created_at=now,
        expires_at=now + timedelta(hours=settings.retention_hours),
    )
    session.add(job)
    session.flush()
    return view_of(job)


def check_upload_rate(*, session: Session, clock: Clock, owner: str, per_minute: int) -> None:
    """UploadLimited when the owner stored `per_minute` uploads within the last minute."""
    since = clock.now() - timedelta(minutes=1)
    recent = session.exec(
        select(func.count())
        .select_from(CutoutJob)
        .where(CutoutJob.owner == owner, col(CutoutJob.created_at) > since)
    ).one()
    if recent >= per_minute:
        raise UploadLimited(per_minute)


def make_room(*, session: Session, settings: Settings, owner: str, max_unpaid: int) -> int:
    """Before storing one more upload: delete the owner's oldest unpaid uploads until fewer
    than `max_unpaid` remain, so one account cannot fill the disk. Returns how many went."""
    unpaid = session.exec(
        select(CutoutJob)
        .where(CutoutJob.owner == owner, col(CutoutJob.status).in_(UNPAID))
        .order_by(col(CutoutJob.created_at).desc(), col(CutoutJob.id))
    ).all()
    swept = unpaid[max_unpaid - 1 :]
    for job in swept:
        storage.delete_job_files(settings, job.id)
        session.delete(job)
    session.flush()
    return len(swept)


def get_job(*, session: Session, owner: str | None, job_id: str) -> JobView:
    """The job if it exists and belongs to owner (None: operator access); else JobNotFound."""
    return view_of(_owned(session, owner, job_id))


def _owned(session: Session, owner: str | None, job_id: str) -> CutoutJob:
    job = session.get(CutoutJob, job_id, populate_existing=True)
    if job is None or (owner is not None and job.owner != owner):
        raise JobNotFound(job_id)
    return job


def list_jobs(
    *, session: Session, owner: str, limit: int = 20, since: datetime | None = None
) -> list[JobView]:
    """The owner's newest jobs still within retention (created after `since`, if given)."""
    query = select(CutoutJob).where(CutoutJob.owner == owner)
    if since is not None:
        query = query.where(col(CutoutJob.created_at) >= since)
    rows = session.exec(query.order_by(col(CutoutJob.created_at).desc()).limit(limit)).all()
    return [view_of(job) for job in rows]


def start_processing(
    *, session: Session, clock: Clock, owner: str, job_id: str, runner: str | None = None
) -> JobView | None:
    """Take a queued job for processing; None when it is not queued (already taken or finished).

    One conditional UPDATE: of two requests for the same job, exactly one takes it. `runner`
    names the queued task that will carry the attempt (CUTOUT_JOBS=celery).
    """
    _owned(session, owner, job_id)
    taken = session.exec(  # type: ignore[call-overload]
        update(CutoutJob)
        .where(col(CutoutJob.id) == job_id, col(CutoutJob.status) == JobStatus.queued)
        .values(
            status=JobStatus.processing,
            started_at=clock.now(),
            error=None,
            runner=runner,
            picked_up_at=None,
        )
    )
    if taken.rowcount != 1:
        return None
    return get_job(session=session, owner=owner, job_id=job_id)


class Pickup(StrEnum):
    first = "first"  # the task's first delivery: run the attempt
    again = "again"  # delivered again: the worker that picked it up died (or was given up on)
    not_mine = "not_mine"  # finished, failed, or another task's attempt: leave it alone


def pick_up(*, session: Session, clock: Clock, job_id: str, runner: str) -> tuple[Pickup, JobView]:
    """A worker received the task `runner` for a job: is it the first delivery?

    One conditional UPDATE marks the pick-up, so two deliveries racing for the same task see
    exactly one "first".
    """
    marked = session.exec(  # type: ignore[call-overload]
        update(CutoutJob)
        .where(
            col(CutoutJob.id) == job_id,
            col(CutoutJob.status) == JobStatus.processing,
            col(CutoutJob.runner) == runner,
            col(CutoutJob.picked_up_at).is_(None),
        )
        .values(picked_up_at=clock.now())
    )
    job = session.get(CutoutJob, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(job_id)
    if marked.rowcount == 1:
        return Pickup.first, view_of(job)
    if job.status == JobStatus.processing and job.runner == runner:
        return Pickup.again, view_of(job)
    return Pickup.not_mine, view_of(job)


def next_attempt(*, session: Session, clock: Clock, job: JobView) -> JobView | None:
    """Processing attempt N -> attempt N+1, picked up now (its worker died: a new charge key).

    None when the job moved on meanwhile (another delivery recovered it first, or it finished).
    """
    moved = session.exec(  # type: ignore[call-overload]
        update(CutoutJob)
        .where(
            col(CutoutJob.id) == job.id,
            col(CutoutJob.status) == JobStatus.processing,
            col(CutoutJob.attempt) == job.attempt,
        )
        .values(attempt=job.attempt + 1, started_at=clock.now(), picked_up_at=clock.now())
    )
    if moved.rowcount != 1:
        return None
    return get_job(session=session, owner=None, job_id=job.id)


def finish(
    *, session: Session, clock: Clock, job_id: str, attempt: int, error: str | None = None
) -> JobView | None:
    """Processing -> done (no error) or failed; None when the attempt is no longer processing."""
    values = {
        "status": JobStatus.failed if error else JobStatus.done,
        "error": error[:500] if error else None,
        "finished_at": clock.now(),
    }
    changed = session.exec(  # type: ignore[call-overload]
        update(CutoutJob)
        .where(
            col(CutoutJob.id) == job_id,
            col(CutoutJob.status) == JobStatus.processing,
            col(CutoutJob.attempt) == attempt,
        )
        .values(**values)
    )
    if changed.rowcount != 1:
        return None
    return get_job(session=session, owner=None, job_id=job_id)


def requeue_failed(*, session: Session, owner: str, job_id: str) -> JobView:
    """Put a failed job back in the queue as a new attempt (a new charge key, nothing reused)."""
    job = _owned(session, owner, job_id)
    if job.status == JobStatus.failed:
        job.status = JobStatus.queued
        job.attempt += 1
        job.error = None
        job.started_at = None
        job.finished_at = None
        session.add(job)
        session.flush()
    return view_of(job)


def fail_stalled(*, session: Session, clock: Clock, older_than: timedelta) -> list[JobView]:
    """Mark jobs stuck in processing (a restart killed their worker) as failed.

    Their reservations time out on their own and the ledger's sweeper releases them, so the
    person sees a clear failure instead of a spinner, and pays nothing.
    """
    cutoff = clock.now() - older_than
    stalled = session.exec(
        select(CutoutJob).where(
            CutoutJob.status == JobStatus.processing,
            col(CutoutJob.started_at) <= cutoff,
        )
    ).all()
    for job in stalled:
        job.status = JobStatus.failed
        job.error = INTERRUPTED
        job.finished_at = clock.now()
        session.add(job)
    session.flush()
    return [view_of(job) for job in stalled]


def result_file(
    *, session: Session, settings: Settings, owner: str, job_id: str, kind: JobFile
) -> tuple[Path, JobView]:
    """Path of a job's file for its owner only; originals are never served."""
    if kind is JobFile.original:
        raise JobNotFound(job_id)
    view = get_job(session=session, owner=owner, job_id=job_id)
    path = storage.file_path(settings, job_id, kind)
    finished = kind not in (JobFile.cutout, JobFile.preview) or view.status == JobStatus.done
    if not finished or not path.is_file():
        raise JobNotFound(job_id)
    return path, view


def delete_jobs(*, session: Session, settings: Settings, owner: str) -> int:
    """Remove every job of an owner, files first (a failure then reads as "not found")."""
    jobs = session.exec(select(CutoutJob).where(CutoutJob.owner == owner)).all()
    for job in jobs:
        storage.delete_job_files(settings, job.id)
        session.delete(job)
    session.flush()
    return len(jobs)


def purge_expired(*, session: Session, settings: Settings, clock: Clock) -> int:
    """Delete jobs past their retention, files first; returns how many went."""
    expired = session.exec(select(CutoutJob).where(CutoutJob.expires_at <= clock.now())).all()
    for job in expired:
        storage.delete_job_files(settings, job.id)
        session.delete(job)
    session.flush()
    return len(expired)
