"""Bulk processing: many photos with shared options, one queue that lives in the database.

Each photo is charged and processed by the single-photo use case (`process_cutout`: reserve,
run, capture) on the shared worker pool, which takes turns between accounts; with
CUTOUT_JOBS=celery a turn reserves the photo and waits for a Celery worker to run it
(`_on_celery`). The queue stops at the first photo the balance cannot pay for: photos not yet
started stay queued and uncharged, and `resume` continues after a top-up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from app.db import reading, writing
from app.models.bulk import BatchStatus
from app.models.jobs import JobStatus
from app.models.ledger import Wallet
from app.services.billing import ledger
from app.services.billing.ledger import InsufficientCredits
from app.services.billing.pricing import format_credits
from app.services.clock import Clock
from app.services.identity.auth import account_owner
from app.services.jobs import bulk, storage
from app.services.jobs.bulk import BatchNotFound, BatchView
from app.services.jobs.dispatch import send_to_celery
from app.services.jobs.storage import JobFile
from app.services.jobs.workers import run_in_pool
from app.settings import Settings
from app.usecases import cutouts
from app.usecases.accounts import NotAllowed

log = logging.getLogger("cutout")

OUT_OF_CREDITS = (
    "Stopped: your credits ran out ({available} left, the next photo costs {needed}). "
    "Photos not started were not charged; buy credits and resume."
)

__all__ = ["BatchNotFound", "BatchView"]


@dataclass(frozen=True)
class Overview:
    batch: BatchView | None
    available: int  # milli-credits in the web wallet


def new_batch(*, db: Engine, settings: Settings, clock: Clock, account_id: int) -> str:
    with writing(db) as session:
        batch = bulk.create_batch(
            session=session,
            clock=clock,
            settings=settings,
            batch_id=secrets.token_urlsafe(24),
            owner=account_owner(account_id),
        )
        return batch.id


def add_photo(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    batch_id: str,
    filename: str,
    data: bytes,
) -> None:
    """Check and store one photo as a queued job of the batch (refusals: ImageRejected,
    BatchFull, BatchNotFound; nothing is stored then)."""
    owner = account_owner(account_id)
    with reading(db) as session:
        batch = bulk.owned(session, owner, batch_id)
        if len(bulk.view_of(session, batch).items) >= settings.bulk_max_files:
            raise bulk.BatchFull(settings.bulk_max_files)
        feature = bulk.feature_for(batch.hair)
    job = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account_id,
        filename=filename,
        data=data,
        feature=feature,
    )
    try:
        with writing(db) as session:
            batch = bulk.owned(session, owner, batch_id)
            bulk.add_item(
                session=session, batch=batch, job_id=job.id, limit=settings.bulk_max_files
            )
    except BaseException:
        storage.delete_job_files(settings, job.id)
        raise


def overview(
    *, db: Engine, clock: Clock, account_id: int, batch_id: str | None, since: datetime
) -> Overview:
    """The batch (or the account's newest one since `since`) and the balance to set against it."""
    owner = account_owner(account_id)
    with reading(db) as session:
        if batch_id:
            batch = bulk.owned(session, owner, batch_id)
        else:
            batch = bulk.latest_batch(session=session, owner=owner, since=since)
        view = bulk.view_of(session, batch) if batch is not None else None
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
        return Overview(view, wallets[Wallet.web].available)


def set_options(
    *, db: Engine, account_id: int, batch_id: str, hair: bool, background: str | None
) -> BatchView:
    """Hair and background colour for every photo of a batch not started yet; ValueError
    names a bad colour or a batch already running."""
    with writing(db) as session:
        batch = bulk.owned(session, account_owner(account_id), batch_id)
        bulk.set_options(session=session, batch=batch, hair=hair, background=background)
        return bulk.view_of(session, batch)


def start(*, db: Engine, account_id: int, batch_id: str) -> BatchView:
    """Set the queue running with the batch's options."""
    with writing(db) as session:
        batch = bulk.owned(session, account_owner(account_id), batch_id)
        if batch.status != BatchStatus.open:
            raise NotAllowed("This batch has started already.")
        bulk.start(session=session, batch=batch)
        return bulk.view_of(session, batch)


def cancel_rest(*, db: Engine, account_id: int, batch_id: str) -> int:
    with writing(db) as session:
        batch = bulk.owned(session, account_owner(account_id), batch_id)
        return bulk.cancel_rest(session=session, batch=batch)


def resume(*, db: Engine, account_id: int, batch_id: str) -> BatchView:
    with writing(db) as session:
        batch = bulk.resume(
            session=session, batch=bulk.owned(session, account_owner(account_id), batch_id)
        )
        return bulk.view_of(session, batch)


def retry(*, db: Engine, account_id: int, batch_id: str, job_id: str) -> BatchView:
    """A failed photo back in line (a new attempt, charged anew only if it then succeeds)."""
    owner = account_owner(account_id)
    with reading(db) as session:
        bulk.item_of(session=session, owner=owner, batch_id=batch_id, job_id=job_id)
    cutouts.retry_cutout(db=db, account_id=account_id, job_id=job_id)
    return resume(db=db, account_id=account_id, batch_id=batch_id)


def process_photo(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    batch_id: str,
    job_id: str,
) -> None:
    """One photo's turn (blocking: call it from the worker pool). Skipped when the batch
    stopped meanwhile; when credits run short, the batch stops and the photo stays queued."""
    owner = account_owner(account_id)
    with reading(db) as session:
        if not bulk.may_run(session=session, owner=owner, batch_id=batch_id, job_id=job_id):
            return
        background = bulk.owned(session, owner, batch_id).background
    try:
        if settings.jobs == "celery":
            _on_celery(db, settings, clock, account_id, job_id, background)
        else:
            cutouts.process_cutout(
                db=db,
                settings=settings,
                clock=clock,
                account_id=account_id,
                job_id=job_id,
                spec=bulk.spec_for(background),
            )
    except InsufficientCredits as short:
        reason = OUT_OF_CREDITS.format(
            available=format_credits(short.available), needed=format_credits(short.needed)
        )
        with writing(db) as session:
            bulk.stop(session=session, batch_id=batch_id, status=BatchStatus.paused, reason=reason)
    except NotAllowed as refused:
        with writing(db) as session:
            bulk.stop(
                session=session, batch_id=batch_id, status=BatchStatus.paused, reason=str(refused)
            )


# How often a photo's turn looks whether its Celery worker finished it.
CELERY_POLL_SECONDS = 0.5


def _on_celery(
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job_id: str,
    background: str | None,
) -> None:
    """The photo's turn when CUTOUT_JOBS=celery: reserved here, run by a Celery worker (with the
    batch's background), and the turn lasts until the job is finished, so the batch keeps its
    order and its share of the workers as with the pool. Housekeeping fails a job whose worker
    vanished, so the wait always ends."""
    view = cutouts.queue_cutout(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account_id,
        job_id=job_id,
        send=functools.partial(send_to_celery, settings),
        background=background,
    )
    while view.status in (JobStatus.queued, JobStatus.processing):
        time.sleep(CELERY_POLL_SECONDS)
        view = cutouts.job_for(db=db, account_id=account_id, job_id=job_id)


def _runnable(db: Engine, account_id: int, batch_id: str) -> list[str]:
    with reading(db) as session:
        return bulk.runnable(session, bulk.owned(session, account_owner(account_id), batch_id))


def _finish(db: Engine, batch_id: str) -> None:
    with writing(db) as session:
        bulk.stop(session=session, batch_id=batch_id, status=BatchStatus.finished, reason=None)


async def drive(*, db: Engine, settings: Settings, clock: Clock, account_id: int, batch_id: str):  # type: ignore[no-untyped-def]
    """Hand every waiting photo to the shared pool (in this account's turns) until none is
    left or the batch stops; picks up photos put back in line (retries) on the way."""
    tried: list[str] = []
    while True:
        waiting = await asyncio.to_thread(_runnable, db, account_id, batch_id)
        if not waiting or waiting == tried:  # nothing left, or nothing moved: stop, not spin
            break
        tried = waiting
        await asyncio.gather(
            *(
                run_in_pool(
                    settings.workers,
                    process_photo,
                    per_account=settings.jobs_per_account or None,
                    db=db,
                    settings=settings,
                    clock=clock,
                    account_id=account_id,
                    batch_id=batch_id,
                    job_id=job_id,
                )
                for job_id in waiting
            ),
            return_exceptions=True,
        )
    await asyncio.to_thread(_finish, db, batch_id)


# Batches being driven by this process: one driver each, whoever asks (a reload, a second tab).
_drivers: dict[str, asyncio.Task] = {}


def ensure_driven(
    *, db: Engine, settings: Settings, clock: Clock, account_id: int, batch_id: str
) -> None:
    """Start the batch's driver on the running loop unless one is already at work. It outlives
    the page that started it, so a phone's sleeping tab does not stop the queue."""
    running = _drivers.get(batch_id)
    if running is not None and not running.done():
        return
    task = asyncio.get_running_loop().create_task(
        drive(db=db, settings=settings, clock=clock, account_id=account_id, batch_id=batch_id)
    )
    _drivers[batch_id] = task

    def forget(done: asyncio.Task) -> None:
        if _drivers.get(batch_id) is done:
            del _drivers[batch_id]
        if not done.cancelled() and done.exception() is not None:
            log.error("bulk batch %s stopped", batch_id, exc_info=done.exception())

    task.add_done_callback(forget)


def _running(db: Engine) -> list[tuple[int, str]]:
    with reading(db) as session:
        running = bulk.running_batches(session=session)
    found = []
    for batch_id, owner in running:
        kind, _, account = owner.partition(":")
        if kind == "account" and account.isdigit():
            found.append((int(account), batch_id))
    return found


async def resume_running(*, db: Engine, settings: Settings, clock: Clock) -> int:
    """At start-up: drive again every batch that was running when the server stopped (its
    interrupted photos are failed, uncharged, by housekeeping; the rest go on)."""
    running = await asyncio.to_thread(_running, db)
    for account_id, batch_id in running:
        ensure_driven(
            db=db, settings=settings, clock=clock, account_id=account_id, batch_id=batch_id
        )
    return len(running)


def zip_members(
    *, db: Engine, settings: Settings, account_id: int, batch_id: str
) -> list[tuple[str, Path]]:
    """(name in the ZIP, file) for each finished photo of the owner's batch; names made unique."""
    with reading(db) as session:
        batch = bulk.owned(session, account_owner(account_id), batch_id)
        done = bulk.done_jobs(session=session, batch=batch)
    members: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for job_id, name in done:
        path = storage.file_path(settings, job_id, JobFile.cutout)
        if not path.is_file():
            continue
        stem, suffix = name.rsplit(".", 1)
        unique, n = name, 1
        while unique.lower() in seen:
            n += 1
            unique = f"{stem} ({n}).{suffix}"
        seen.add(unique.lower())
        members.append((unique, path))
    return members
