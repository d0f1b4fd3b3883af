"""Try before signing up: a signed-out visitor's free preview cutout, limited per client
address per day, and handing that photo to the account made afterwards.

A preview job belongs to "trial:<address key>" and keeps its original, so signing up unlocks
the full resolution of the same photo without a second upload; claimed, it becomes an
ordinary queued job of the account, quoted and charged like any other.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.models.jobs import CutoutJob, JobStatus
from app.models.trial import TrialPreview
from app.services.clock import Clock
from app.services.imaging.images import ImageRejected
from app.services.jobs import storage
from app.services.jobs.cutouts import JobNotFound, JobView, view_of
from app.services.jobs.storage import JobFile
from app.settings import Settings

TRIAL_OWNER_PREFIX = "trial:"
WINDOW = timedelta(days=1)


class TrialUsed(ImageRejected):
    """This address had its free previews for the day; nothing was stored."""

    def __init__(self, per_day: int) -> None:
        what = "free preview" if per_day == 1 else f"{per_day} free previews"
        super().__init__(
            f"Today's {what} from this address {'is' if per_day == 1 else 'are'} used. "
            "Sign up free for 10 credits to cut out more photos, in full resolution."
        )


class TrialsOff(ImageRejected):
    def __init__(self) -> None:
        super().__init__("Sign up free to cut out photos: new accounts get 10 credits.")


def address_key(address: str) -> str:
    return hashlib.sha256(f"trial-address:{address}".encode()).hexdigest()


def trial_owner(key: str) -> str:
    return TRIAL_OWNER_PREFIX + key[:40]


def is_trial(owner: str) -> bool:
    return owner.startswith(TRIAL_OWNER_PREFIX)


def check_allowance(*, session: Session, clock: Clock, key: str, per_day: int) -> None:
    """TrialUsed when the address made `per_day` previews in the last 24 hours."""
    if per_day <= 0:
        raise TrialsOff()
    used = session.exec(
        select(func.count())
        .select_from(TrialPreview)
        .where(TrialPreview.address_key == key, col(TrialPreview.created_at) > clock.now() - WINDOW)
    ).one()
    if used >= per_day:
        raise TrialUsed(per_day)


def record_preview(*, session: Session, clock: Clock, key: str, job_id: str) -> None:
    now = clock.now()
    session.add(TrialPreview(address_key=key, job_id=job_id, created_at=now))
    # Rows past the window count for nothing: forget them (the address key with them).
    session.exec(delete(TrialPreview).where(col(TrialPreview.created_at) < now - 2 * WINDOW))
    session.flush()


def trial_job(*, session: Session, job_id: str) -> CutoutJob:
    job = session.get(CutoutJob, job_id, populate_existing=True)
    if job is None or not is_trial(job.owner):
        raise JobNotFound(job_id)
    return job


def claim(
    *, session: Session, clock: Clock, settings: Settings, job_id: str, owner: str
) -> JobView | None:
    """Hand a finished preview's photo to `owner` as a queued job at full resolution (a new
    attempt, so a new charge key); None when there is no such unclaimed preview."""
    try:
        job = trial_job(session=session, job_id=job_id)
    except JobNotFound:
        return None
    if job.status != JobStatus.done:
        return None
    now = clock.now()
    job.owner = owner
    job.status = JobStatus.queued
    job.attempt += 1
    job.error = None
    job.started_at = None
    job.finished_at = None
    job.created_at = now
    job.expires_at = now + timedelta(hours=settings.retention_hours)
    session.add(job)
    session.flush()
    # The small preview goes: the paid run makes the full-size result and its own preview.
    storage.file_path(settings, job_id, JobFile.preview).unlink(missing_ok=True)
    return view_of(job)


def trial_file(*, session: Session, settings: Settings, job_id: str, kind: JobFile) -> Path:
    """A preview's viewable file (its reduced original or its cutout), for whoever holds the
    unguessable job id; nothing else of a trial job is served."""
    if kind not in (JobFile.before, JobFile.preview):
        raise JobNotFound(job_id)
    job = trial_job(session=session, job_id=job_id)
    path = storage.file_path(settings, job_id, kind)
    if (kind is JobFile.preview and job.status != JobStatus.done) or not path.is_file():
        raise JobNotFound(job_id)
    return path
