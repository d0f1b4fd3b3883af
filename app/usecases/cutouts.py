"""A person's photos: upload, quote, pay and process through the one pipeline, download.

Charging follows the ledger's two phases around the work: taking the job and reserving its cost
happen in one unit of work; the model runs outside any; capturing the cost and publishing the
result happen in one more. If the reservation is no longer open when the work is done (it timed
out), the result is thrown away and nothing is charged: a result is never handed back for free.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import reading, writing
from app.models.accounts import Account
from app.models.ledger import LotSource, ReservationStatus, Wallet
from app.services import errors
from app.services.billing import ledger
from app.services.billing.entitlements import entitlement
from app.services.billing.pricing import Feature, cost_of
from app.services.clock import Clock
from app.services.identity.auth import account_owner
from app.services.imaging import engine, pipeline
from app.services.imaging.editor import EditSpec
from app.services.imaging.images import (
    ImageRejected,
    Limits,
    load_image,
    preview_jpeg,
    preview_webp,
)
from app.services.imaging.model_files import HIGH_QUALITY_MODEL, model_present
from app.services.jobs import bulk as bulk_jobs
from app.services.jobs import cutouts, storage
from app.services.jobs.cutouts import JobNotFound, JobView
from app.services.jobs.dispatch import DispatchedCutout
from app.services.jobs.storage import JobFile
from app.services.limits import LimitStore
from app.settings import Settings
from app.usecases.accounts import NotAllowed

FAILED = "Processing failed (reference {}); nothing was charged."
TOO_SLOW = "Processing took longer than its hold on your credits allowed; nothing was charged."
QUEUE_DOWN = "The processing queue could not be reached (reference {}); nothing was charged."
WORKER_LOST = "The worker processing this photo stopped; nothing was charged. Try again."


@dataclass(frozen=True)
class Quote:
    cost: int  # milli-credits
    available: int

    @property
    def enough(self) -> bool:
        return self.available >= self.cost


def limits_for(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)


def cutout_cost(job: JobView) -> int:
    """What processing this job costs, in milli-credits, by the one price table."""
    return cost_of(job.width, job.height, (job.feature,))


def submit_photo(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    filename: str,
    data: bytes,
    high_quality: bool = False,
    feature: Feature = Feature.background_removal,
    limits: LimitStore | None = None,
) -> JobView:
    """Check and store an upload as a queued job; a refusal (ImageRejected, UploadLimited)
    leaves nothing. The account's oldest unpaid uploads make room past max_pending_uploads.
    `high_quality` asks for the full u2net model, refused (NotAllowed) where it is absent.

    With `limits`, every attempt counts, refused files included: decoding is the expensive
    part, and a flood of files that are not photos never becomes a job the database counts.
    """
    owner = account_owner(account_id)
    if high_quality and not high_quality_available(settings):
        raise NotAllowed("High quality is not available on this server.")
    per_minute = settings.uploads_per_minute
    if limits is not None and not limits.take(
        f"uploads:{owner}", 1, limit=per_minute, window_seconds=60, now=clock.now().timestamp()
    ).allowed:
        raise cutouts.UploadLimited(per_minute)
    with reading(db) as session:  # before the slow decode: a flood costs a query each
        cutouts.check_upload_rate(session=session, clock=clock, owner=owner, per_minute=per_minute)
    loaded = load_image(data, filename=filename, limits=limits_for(settings))  # slow: no txn
    job_id = secrets.token_urlsafe(24)
    storage.save_upload(settings, job_id, original=data, preview=preview_jpeg(loaded.image))
    try:
        with writing(db) as session:
            # Again under the write lock: parallel uploads all passed the first check.
            cutouts.check_upload_rate(
                session=session, clock=clock, owner=owner, per_minute=per_minute
            )
            cutouts.make_room(
                session=session,
                settings=settings,
                owner=owner,
                max_unpaid=settings.max_pending_uploads,
            )
            return cutouts.add_job(
                session=session,
                clock=clock,
                settings=settings,
                job_id=job_id,
                owner=owner,
                name=loaded.name,
                width=loaded.width,
                height=loaded.height,
                model=HIGH_QUALITY_MODEL if high_quality else None,
                feature=feature,
            )
    except BaseException:
        storage.delete_job_files(settings, job_id)
        raise


def high_quality_available(settings: Settings) -> bool:
    """Whether "High quality" (the full u2net) can be offered: its file was provisioned."""
    return model_present(settings.models_path, HIGH_QUALITY_MODEL)


def job_for(*, db: Engine, account_id: int, job_id: str) -> JobView:
    """The account's job, or JobNotFound (another account's ids look like missing ones)."""
    with reading(db) as session:
        return cutouts.get_job(session=session, owner=account_owner(account_id), job_id=job_id)


def recent_job(*, db: Engine, account_id: int, since: datetime) -> JobView | None:
    """The account's newest job created after `since`, to pick up where a dropped page left."""
    with reading(db) as session:
        found = cutouts.list_jobs(
            session=session, owner=account_owner(account_id), limit=1, since=since
        )
    return found[0] if found else None


def quote(*, db: Engine, clock: Clock, account_id: int, job: JobView) -> Quote:
    with reading(db) as session:
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
        return Quote(cost=cutout_cost(job), available=wallets[Wallet.web].available)


def process_cutout(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job_id: str,
    spec: EditSpec | None = None,
) -> JobView:
    """Charge for a queued job and run it; a job already taken or finished is left alone.
    `spec` (a PNG: a background colour, say) is applied to the result; none: transparent.

    Blocking (the model runs here): call it from the worker pool. Raises InsufficientCredits,
    NotAllowed or JobNotFound before any work is done, with nothing charged.
    """
    taken = start_cutout(
        db=db, settings=settings, clock=clock, account_id=account_id, job_id=job_id
    )
    if taken is None:  # processing or finished already: no second run, no second charge
        return job_for(db=db, account_id=account_id, job_id=job_id)
    return complete_cutout(
        db=db, settings=settings, clock=clock, account_id=account_id, job=taken, spec=spec
    )


def start_cutout(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job_id: str,
    runner: str | None = None,
) -> JobView | None:
    """Take a queued job and reserve its cost in one unit of work; None when it was not queued.

    Raises InsufficientCredits, NotAllowed or JobNotFound with nothing taken or charged.
    """
    owner = account_owner(account_id)
    with writing(db) as session:
        job = cutouts.get_job(session=session, owner=owner, job_id=job_id)
        allowed = _entitled(session, clock, account_id, job.feature)
        taken = cutouts.start_processing(
            session=session, clock=clock, owner=owner, job_id=job_id, runner=runner
        )
        if taken is None:
            return None
        _reserve(session, settings, clock, account_id, allowed, taken)
        return taken


def _reserve(
    session: Session,
    settings: Settings,
    clock: Clock,
    account_id: int,
    allowed: _Charge,
    job: JobView,
) -> None:
    try:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=allowed.wallet,
            amount=cutout_cost(job),
            key=job.reservation_key,
            timeout_seconds=settings.reservation_timeout_seconds,
            sources=allowed.sources,
        )
    except ledger.ReservationClosed:
        # A key's hold was resolved or lapsed before: never run work it no longer pays for.
        raise NotAllowed("This photo's earlier charge is closed; upload it again.") from None


def complete_cutout(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job: JobView,
    spec: EditSpec | None = None,
) -> JobView:
    """Run a taken, reserved attempt: capture and publish, or fail and release. Blocking."""
    try:
        staged = _run(settings, job, spec)
    except ImageRejected as rejected:
        return _fail(db, clock, account_id, job, rejected.message)
    except Exception as error:
        # The person sees a reference to quote; the exception's text goes only to the log.
        ref = errors.report(error, f"cutout job {job.id}")
        return _fail(db, clock, account_id, job, FAILED.format(ref))
    return _capture_and_publish(db, clock, account_id, job, staged)


def queue_cutout(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job_id: str,
    send: Callable[[DispatchedCutout], None],
    background: str | None = None,
) -> JobView:
    """Take and reserve a queued job here, then hand the work to a queue (Celery) with `send`;
    `background` (a bulk batch's "#rrggbb") goes with it to the worker.

    The person hears about missing credits at once, as with the in-process pool; the worker only
    runs what is already paid for. If the queue cannot be reached, the attempt fails and its
    reservation is released.
    """
    runner = secrets.token_hex(16)
    taken = start_cutout(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account_id,
        job_id=job_id,
        runner=runner,
    )
    if taken is None:
        return job_for(db=db, account_id=account_id, job_id=job_id)
    try:
        send(DispatchedCutout(account_id, job_id, taken.attempt, runner, background))
    except Exception as error:
        ref = errors.report(error, f"queueing cutout job {job_id}")
        return _fail(db, clock, account_id, taken, QUEUE_DOWN.format(ref))
    return taken


# A photo whose worker dies this many times in a row (say, it runs the machine out of memory)
# is marked failed instead of taking a third worker down with it.
MAX_RECOVERIES = 2


def run_dispatched(
    *, db: Engine, settings: Settings, clock: Clock, task: DispatchedCutout
) -> JobView | None:
    """What a queue worker does with one delivered task; safe to run for every delivery.

    First delivery: run the attempt the web reserved. Delivered again (the worker that picked it
    up died mid-job, or was given up on): that attempt's reservation is released and the job
    runs as a new attempt under its own key, so the dead worker can never capture anything; after
    MAX_RECOVERIES the job is failed instead. Anything else (finished, failed, another task's
    attempt) is left alone. None when the job is gone.
    """
    with writing(db) as session:
        try:
            pickup, job = cutouts.pick_up(
                session=session, clock=clock, job_id=task.job_id, runner=task.runner
            )
        except JobNotFound:
            return None
        if pickup is cutouts.Pickup.not_mine:
            return job
        if pickup is cutouts.Pickup.again:
            _release_if_live(session, clock, task.account_id, job)
            recovered = None
            if job.attempt - task.attempt < MAX_RECOVERIES:
                recovered = cutouts.next_attempt(session=session, clock=clock, job=job)
            if recovered is None:
                cutouts.finish(
                    session=session,
                    clock=clock,
                    job_id=job.id,
                    attempt=job.attempt,
                    error=WORKER_LOST,
                )
                return cutouts.get_job(session=session, owner=None, job_id=job.id)
            try:
                allowed = _entitled(session, clock, task.account_id, recovered.feature)
                _reserve(session, settings, clock, task.account_id, allowed, recovered)
            except (NotAllowed, ledger.InsufficientCredits) as refused:
                cutouts.finish(
                    session=session,
                    clock=clock,
                    job_id=job.id,
                    attempt=recovered.attempt,
                    error=f"{WORKER_LOST} {refused}",
                )
                return cutouts.get_job(session=session, owner=None, job_id=job.id)
            job = recovered
    return complete_cutout(
        db=db,
        settings=settings,
        clock=clock,
        account_id=task.account_id,
        job=job,
        spec=bulk_jobs.spec_for(task.background),
    )


def _release_if_live(session: Session, clock: Clock, account_id: int, job: JobView) -> None:
    reservation = ledger.find_reservation(
        session=session, account_id=account_id, key=job.reservation_key
    )
    if reservation is not None and ledger.is_live(reservation, clock.now()):
        ledger.release_reservation(
            session=session, clock=clock, account_id=account_id, key=job.reservation_key
        )


@dataclass(frozen=True)
class _Charge:
    wallet: Wallet
    sources: tuple[LotSource, ...] | None


def _entitled(session: Session, clock: Clock, account_id: int, feature: Feature) -> _Charge:
    account = session.get(Account, account_id)
    if account is None:
        raise NotAllowed("This account no longer exists.")
    allowed = entitlement(session=session, account=account, feature=feature, clock=clock)
    if not allowed.allowed or allowed.wallet is None:
        raise NotAllowed(allowed.reason)
    return _Charge(allowed.wallet, allowed.sources)


def _run(settings: Settings, job: JobView, spec: EditSpec | None = None) -> storage.Staged:
    """The pipeline on the stored upload; the result is staged, not yet visible."""
    data = storage.read_original(settings, job.id)
    request = pipeline.CutoutRequest(
        feature=job.feature,
        high_quality=job.model == HIGH_QUALITY_MODEL,
        spec=spec or EditSpec(),
    )
    model = engine.load_session(
        settings.models_path,
        pipeline.model_name(request, settings.model_name),
        settings.onnx_thread_count,
    )
    result = pipeline.run_bytes(
        model, data, filename=job.original_name, limits=limits_for(settings), request=request
    )
    # The page shows this light copy; the full file is only ever the download.
    storage.save_preview(settings, job.id, preview_webp(result.data))
    return storage.stage_result(settings, job.id, result.data)


def _capture_and_publish(
    db: Engine, clock: Clock, account_id: int, job: JobView, staged: storage.Staged
) -> JobView:
    try:
        with writing(db) as session:
            ledger.capture_reservation(
                session=session,
                clock=clock,
                account_id=account_id,
                key=job.reservation_key,
                amount=cutout_cost(job),
            )
            done = cutouts.finish(session=session, clock=clock, job_id=job.id, attempt=job.attempt)
            if done is None:  # housekeeping gave up on it meanwhile
                raise ledger.ReservationClosed(job.reservation_key, ReservationStatus.timed_out)
            storage.publish_result(staged)
            return done
    except ledger.ReservationClosed:
        storage.discard(staged)
        return _fail(db, clock, account_id, job, TOO_SLOW)


def _fail(db: Engine, clock: Clock, account_id: int, job: JobView, message: str) -> JobView:
    """Fail the attempt and hand back every credit it held."""
    with writing(db) as session:
        _release_if_live(session, clock, account_id, job)
        cutouts.finish(
            session=session, clock=clock, job_id=job.id, attempt=job.attempt, error=message
        )
        return cutouts.get_job(session=session, owner=None, job_id=job.id)


def retry_cutout(*, db: Engine, account_id: int, job_id: str) -> JobView:
    """Put a failed job back in the queue as a new attempt; other states are left as they are."""
    with writing(db) as session:
        return cutouts.requeue_failed(
            session=session, owner=account_owner(account_id), job_id=job_id
        )


def result_file(
    *, db: Engine, settings: Settings, account_id: int, job_id: str, kind: JobFile
) -> tuple[Path, JobView]:
    """A job's servable file for its owner; JobNotFound for anyone else or for originals."""
    with reading(db) as session:
        return cutouts.result_file(
            session=session,
            settings=settings,
            owner=account_owner(account_id),
            job_id=job_id,
            kind=kind,
        )
