"""Bulk batches: an owner's photos processed as one queue with shared options.

Each photo is an ordinary cutout job (charged and processed exactly like a single photo); a
batch only adds their order, the shared options, and whether the queue is running, paused
(credits ran out) or cancelled. Everything here lives in the database, so a reloaded page or a
phone whose tab slept finds the queue exactly as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.models.bulk import BatchStatus, BulkBatch, BulkItem
from app.models.jobs import CutoutJob, JobStatus
from app.services.billing.pricing import Feature, cost_of
from app.services.clock import Clock
from app.services.imaging.editor import EditSpec
from app.services.jobs.cutouts import JobNotFound, download_name
from app.settings import Settings

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class BatchNotFound(LookupError):
    """No such batch for this owner: another owner's ids look exactly like missing ones."""


class BatchFull(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A batch holds at most {limit} photos; start another for the rest.")
        self.limit = limit


class Phase:
    """What the queue shows for each photo."""

    waiting = "waiting"
    uploading = "uploading"
    processing = "removing background"
    done = "done"
    failed = "failed"
    not_started = "not started"  # the batch stopped (credits, cancel) before its turn


@dataclass(frozen=True)
class ItemView:
    job_id: str
    name: str
    download_name: str
    width: int
    height: int
    cost: int  # milli-credits, by the one price table
    phase: str
    error: str


@dataclass(frozen=True)
class BatchView:
    id: str
    status: BatchStatus
    hair: bool
    background: str | None
    stop_reason: str
    items: tuple[ItemView, ...]

    @property
    def total_cost(self) -> int:
        """What the photos still to process cost (done ones are paid already)."""
        return sum(item.cost for item in self.items if item.phase not in (Phase.done,))

    def count(self, phase: str) -> int:
        return sum(1 for item in self.items if item.phase == phase)


def feature_for(hair: bool) -> Feature:
    return Feature.hair if hair else Feature.background_removal


def spec_for(background: str | None) -> EditSpec | None:
    """The result's edits: a PNG on a solid colour, or None for the plain transparent cutout."""
    if not background:
        return None
    return EditSpec(background="color", color=background, format="png")


def check_colour(value: str | None) -> str | None:
    """A "#rrggbb" colour, or None (transparent); ValueError names a bad one."""
    if not value:
        return None
    if not _COLOUR.fullmatch(value):
        raise ValueError(f"{value!r} is not a colour like #1e90ff")
    return value.lower()


def create_batch(
    *, session: Session, clock: Clock, settings: Settings, batch_id: str, owner: str
) -> BulkBatch:
    now = clock.now()
    batch = BulkBatch(
        id=batch_id,
        owner=owner,
        created_at=now,
        expires_at=now + timedelta(hours=settings.retention_hours),
    )
    session.add(batch)
    session.flush()
    return batch


def owned(session: Session, owner: str, batch_id: str) -> BulkBatch:
    batch = session.get(BulkBatch, batch_id, populate_existing=True)
    if batch is None or batch.owner != owner:
        raise BatchNotFound(batch_id)
    return batch


def add_item(*, session: Session, batch: BulkBatch, job_id: str, limit: int) -> None:
    """Put an uploaded job at the end of the batch; BatchFull past `limit` photos."""
    count = len(_items(session, batch.id))
    if count >= limit:
        raise BatchFull(limit)
    session.add(BulkItem(batch_id=batch.id, job_id=job_id, position=count))
    session.flush()


def latest_batch(*, session: Session, owner: str, since: datetime) -> BulkBatch | None:
    return session.exec(
        select(BulkBatch)
        .where(BulkBatch.owner == owner, col(BulkBatch.created_at) >= since)
        .order_by(col(BulkBatch.created_at).desc())
        .limit(1)
    ).first()


def _items(session: Session, batch_id: str) -> list[tuple[BulkItem, CutoutJob]]:
    rows = session.exec(
        select(BulkItem, CutoutJob)
        .join(CutoutJob, col(CutoutJob.id) == col(BulkItem.job_id))
        .where(BulkItem.batch_id == batch_id)
        .order_by(col(BulkItem.position))
    ).all()
    return [(item, job) for item, job in rows]


def _phase(batch: BulkBatch, item: BulkItem, job: CutoutJob) -> str:
    if job.status == JobStatus.queued:
        stopped = item.cancelled or batch.status in (BatchStatus.paused, BatchStatus.cancelled)
        return Phase.not_started if stopped else Phase.waiting
    if job.status == JobStatus.processing:
        return Phase.processing
    return Phase.done if job.status == JobStatus.done else Phase.failed


def view_of(session: Session, batch: BulkBatch) -> BatchView:
    items = tuple(
        ItemView(
            job_id=job.id,
            name=job.original_name,
            download_name=download_name(job.original_name),
            width=job.width,
            height=job.height,
            cost=cost_of(job.width, job.height, (feature_for(batch.hair),))
            if job.status == JobStatus.queued
            else cost_of(job.width, job.height, (Feature(job.feature),)),
            phase=_phase(batch, item, job),
            error=job.error or "",
        )
        for item, job in _items(session, batch.id)
    )
    return BatchView(
        id=batch.id,
        status=batch.status,
        hair=batch.hair,
        background=batch.background,
        stop_reason=batch.stop_reason or "",
        items=items,
    )


def set_options(
    *, session: Session, batch: BulkBatch, hair: bool, background: str | None
) -> BulkBatch:
    """Options for every photo of a batch not started yet (ValueError names a bad colour)."""
    if batch.status != BatchStatus.open:
        raise ValueError("The options of a started batch stay as they were.")
    batch.background = check_colour(background)
    batch.hair = hair
    session.add(batch)
    session.flush()
    return batch


def start(*, session: Session, batch: BulkBatch) -> BulkBatch:
    """Fix the options on every photo not yet processed and set the queue running."""
    batch.status = BatchStatus.running
    batch.stop_reason = None
    feature = feature_for(batch.hair).value
    for item, job in _items(session, batch.id):
        if job.status == JobStatus.queued:
            job.feature = feature
            item.cancelled = False
            session.add_all([job, item])
    session.add(batch)
    session.flush()
    return batch


def runnable(session: Session, batch: BulkBatch) -> list[str]:
    """The queued, not cancelled photos of a running batch, in order."""
    if batch.status != BatchStatus.running:
        return []
    return [
        job.id
        for item, job in _items(session, batch.id)
        if job.status == JobStatus.queued and not item.cancelled
    ]


def item_of(*, session: Session, owner: str, batch_id: str, job_id: str) -> BulkItem:
    """The batch's photo, if the batch is the owner's; else BatchNotFound or JobNotFound."""
    owned(session, owner, batch_id)
    item = session.exec(
        select(BulkItem).where(BulkItem.batch_id == batch_id, BulkItem.job_id == job_id)
    ).first()
    if item is None:
        raise JobNotFound(job_id)
    return item


def may_run(*, session: Session, owner: str, batch_id: str, job_id: str) -> bool:
    """Whether this photo's turn still stands: the batch runs and the photo was not cancelled."""
    item = item_of(session=session, owner=owner, batch_id=batch_id, job_id=job_id)
    return owned(session, owner, batch_id).status == BatchStatus.running and not item.cancelled


def stop(*, session: Session, batch_id: str, status: BatchStatus, reason: str | None) -> bool:
    """A running batch -> paused or finished (one conditional write: the first stop wins)."""
    changed = session.exec(  # type: ignore[call-overload]
        update(BulkBatch)
        .where(col(BulkBatch.id) == batch_id, col(BulkBatch.status) == BatchStatus.running)
        .values(status=status, stop_reason=reason[:500] if reason else None)
    )
    return changed.rowcount == 1


def cancel_rest(*, session: Session, batch: BulkBatch) -> int:
    """Cancel every photo not yet started; returns how many. Running ones finish."""
    cancelled = 0
    for item, job in _items(session, batch.id):
        if job.status == JobStatus.queued and not item.cancelled:
            item.cancelled = True
            session.add(item)
            cancelled += 1
    if batch.status in (BatchStatus.open, BatchStatus.running, BatchStatus.paused):
        batch.status = BatchStatus.cancelled
        batch.stop_reason = None
        session.add(batch)
    session.flush()
    return cancelled


def resume(*, session: Session, batch: BulkBatch) -> BulkBatch:
    """Paused or cancelled -> running again, with every photo not yet started back in line."""
    if batch.status in (BatchStatus.paused, BatchStatus.cancelled, BatchStatus.finished):
        batch.status = BatchStatus.running
        batch.stop_reason = None
        for item, job in _items(session, batch.id):
            if job.status == JobStatus.queued and item.cancelled:
                item.cancelled = False
                session.add(item)
        session.add(batch)
        session.flush()
    return batch


def done_jobs(*, session: Session, batch: BulkBatch) -> list[tuple[str, str]]:
    """(job id, download name) of every finished photo, in order."""
    return [
        (job.id, download_name(job.original_name))
        for _, job in _items(session, batch.id)
        if job.status == JobStatus.done
    ]


def purge_expired(*, session: Session, clock: Clock) -> int:
    """Delete batches past their retention (their photos went with the jobs' own retention)."""
    expired = session.exec(select(BulkBatch).where(BulkBatch.expires_at <= clock.now())).all()
    for batch in expired:
        for item in session.exec(select(BulkItem).where(BulkItem.batch_id == batch.id)).all():
            session.delete(item)
        session.delete(batch)
    session.flush()
    return len(expired)


def running_batches(*, session: Session) -> list[tuple[str, str]]:
    """(batch id, owner) of every batch that was running, e.g. when the server stopped."""
    rows = session.exec(select(BulkBatch).where(BulkBatch.status == BatchStatus.running)).all()
    return [(batch.id, batch.owner) for batch in rows]
