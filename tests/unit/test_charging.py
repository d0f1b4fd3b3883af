"""Charging for cutouts through the ledger, and the periodic sweepers, on a real SQLite file."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos
from sqlmodel import select

from app.db import reading, writing
from app.models.jobs import CutoutJob, JobStatus
from app.models.ledger import Reservation, ReservationStatus, Wallet
from app.services.billing import ledger
from app.services.billing.pricing import MILLI
from app.services.jobs.cutouts import JobNotFound, get_job
from app.services.jobs.storage import JobFile, job_dir
from app.settings import Settings
from app.usecases import accounts, cutouts
from app.usecases.housekeeping import run_housekeeping
from tests.conftest import confirmed_account

DAY = timedelta(days=1)


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def sign_up(db, clock, settings: Settings, email: str):  # type: ignore[no-untyped-def]
    return confirmed_account(db, clock, settings, email)


@pytest.fixture
def person(db, clock, settings):  # type: ignore[no-untyped-def]
    return sign_up(db, clock, settings, "ada@example.com")


def upload(db, settings, clock, account_id: int, array: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    return cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account_id,
        filename="coffee.jpg",
        data=jpeg(photos.coffee() if array is None else array),
    )


def process(db, settings, clock, account_id: int, job_id: str):  # type: ignore[no-untyped-def]
    return cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=account_id, job_id=job_id
    )


def status(db, job_id: str) -> str:  # type: ignore[no-untyped-def]
    with reading(db) as session:
        return get_job(session=session, owner=None, job_id=job_id).status.value


def web_available(db, clock, account_id: int) -> int:  # type: ignore[no-untyped-def]
    with reading(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def ledger_clean(db) -> bool:  # type: ignore[no-untyped-def]
    with reading(db) as session:
        return ledger.check_ledger(session=session) == []


@pytest.fixture
def model_runs(monkeypatch):  # type: ignore[no-untyped-def]
    """Count how often the pipeline really runs (the real pipeline, only counted)."""
    calls: list[str] = []
    real = cutouts.pipeline.run_bytes

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["filename"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cutouts.pipeline, "run_bytes", counted)
    return calls


def test_a_cutout_costs_exactly_the_quoted_price_once(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    job = upload(db, settings, clock, person.id)
    quote = cutouts.quote(db=db, clock=clock, account_id=person.id, job=job)
    # coffee() is 600 x 400 = 0.24 MP: the base price of half a credit.
    assert quote.available == 10 * MILLI and quote.cost == 500 and quote.enough
    assert web_available(db, clock, person.id) == 10 * MILLI, "a quote charges nothing"

    done = process(db, settings, clock, person.id, job.id)
    assert done.status == "done"
    assert web_available(db, clock, person.id) == 10 * MILLI - 500
    # A retry of the same job (a double tap, a reconnect) never charges twice.
    again = process(db, settings, clock, person.id, job.id)
    assert again.status == "done"
    assert web_available(db, clock, person.id) == 10 * MILLI - 500
    assert ledger_clean(db)


def test_a_second_request_for_a_job_runs_the_model_once(  # type: ignore[no-untyped-def]
    db, settings, clock, person, model_runs
) -> None:
    job = upload(db, settings, clock, person.id)
    results: list[str] = []

    def request() -> None:
        results.append(process(db, settings, clock, person.id, job.id).status.value)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(model_runs) == 1, "one model run, however many requests"
    assert "done" in results and set(results) <= {"done", "processing"}
    assert status(db, job.id) == "done"
    process(db, settings, clock, person.id, job.id)
    assert len(model_runs) == 1, "a finished job is never run again"
    assert web_available(db, clock, person.id) == 10 * MILLI - 500
    assert ledger_clean(db)


def test_short_wallet_processes_nothing_and_charges_nothing(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    with writing(db) as session:  # leave 0.4 credits, less than one cutout's 0.5
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            wallet=Wallet.web,
            amount=9_600,
            key="elsewhere",
            timeout_seconds=3600,
        )
    job = upload(db, settings, clock, person.id)
    assert not cutouts.quote(db=db, clock=clock, account_id=person.id, job=job).enough
    with pytest.raises(ledger.InsufficientCredits) as short:
        process(db, settings, clock, person.id, job.id)
    assert (short.value.available, short.value.needed) == (400, 500)
    assert status(db, job.id) == "queued"
    assert not (job_dir(settings, job.id) / JobFile.cutout).exists()
    assert web_available(db, clock, person.id) == 400


def test_a_failed_cutout_releases_every_credit(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    job = upload(db, settings, clock, person.id)
    (job_dir(settings, job.id) / JobFile.original).write_bytes(b"damaged on disk")
    failed = process(db, settings, clock, person.id, job.id)
    assert failed.status == "failed" and failed.error
    assert web_available(db, clock, person.id) == 10 * MILLI
    assert ledger_clean(db)


def test_a_result_whose_hold_lapsed_is_not_handed_back_for_free(  # type: ignore[no-untyped-def]
    db, settings, clock, person, monkeypatch
) -> None:
    job = upload(db, settings, clock, person.id)
    real = cutouts.pipeline.run_bytes

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        # The model "took" longer than the reservation's lifetime.
        clock.advance(timedelta(seconds=settings.reservation_timeout_seconds + 1))
        return result

    monkeypatch.setattr(cutouts.pipeline, "run_bytes", slow)
    failed = process(db, settings, clock, person.id, job.id)
    assert failed.status == "failed" and "nothing was charged" in (failed.error or "")
    assert web_available(db, clock, person.id) == 10 * MILLI
    with pytest.raises(JobNotFound):
        cutouts.result_file(
            db=db, settings=settings, account_id=person.id, job_id=job.id, kind=JobFile.cutout
        )
    assert not (job_dir(settings, job.id) / JobFile.cutout).exists()
    assert not list(job_dir(settings, job.id).glob("*.part"))
    # Asking again does not run it for free either: the job is failed, not queued.
    assert process(db, settings, clock, person.id, job.id).status == "failed"
    assert web_available(db, clock, person.id) == 10 * MILLI
    assert ledger_clean(db)


def test_a_retried_job_is_a_new_attempt_with_its_own_charge(  # type: ignore[no-untyped-def]
    db, settings, clock, person, monkeypatch
) -> None:
    job = upload(db, settings, clock, person.id)
    original = job_dir(settings, job.id) / JobFile.original
    good = original.read_bytes()
    original.write_bytes(b"damaged on disk")
    assert process(db, settings, clock, person.id, job.id).status == "failed"
    original.write_bytes(good)
    # Processing a failed job again does nothing until it is put back in the queue.
    assert process(db, settings, clock, person.id, job.id).status == "failed"
    retried = cutouts.retry_cutout(db=db, account_id=person.id, job_id=job.id)
    assert (retried.status, retried.attempt) == ("queued", 1)
    assert process(db, settings, clock, person.id, job.id).status == "done"
    assert web_available(db, clock, person.id) == 10 * MILLI - 500
    with reading(db) as session:
        keys = {
            r.key: r.status
            for r in session.exec(
                select(Reservation).where(Reservation.account_id == person.id)
            ).all()
        }
    assert keys == {
        f"cutout:{job.id}": ReservationStatus.released,
        f"cutout:{job.id}:1": ReservationStatus.captured,
    }
    assert ledger_clean(db)


def test_someone_elses_job_is_not_found_and_not_charged(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    intruder = sign_up(db, clock, settings, "eve@example.com")
    job = upload(db, settings, clock, person.id)
    with pytest.raises(JobNotFound):
        process(db, settings, clock, intruder.id, job.id)
    with pytest.raises(JobNotFound):
        cutouts.retry_cutout(db=db, account_id=intruder.id, job_id=job.id)
    with pytest.raises(JobNotFound):
        cutouts.job_for(db=db, account_id=intruder.id, job_id=job.id)
    assert web_available(db, clock, intruder.id) == 10 * MILLI
    assert status(db, job.id) == "queued"
    assert accounts.dashboard(db=db, clock=clock, account_id=intruder.id).jobs == []
    assert [j.id for j in accounts.dashboard(db=db, clock=clock, account_id=person.id).jobs] == [
        job.id
    ]


def test_sign_up_grants_the_configured_trial(db, clock, settings) -> None:  # type: ignore[no-untyped-def]
    generous = settings.model_copy(update={"trial_credits": 3, "lot_valid_days": 7})
    summary = sign_up(db, clock, generous, "cy@example.com")
    assert summary.web_available == 3 * MILLI
    with reading(db) as session:
        (lot,) = ledger.balance(session=session, clock=clock, account_id=summary.id)[
            Wallet.web
        ].lots
    assert lot.expires_at - lot.issued_at == timedelta(days=7)


def test_housekeeping_releases_expires_and_purges_on_time(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            wallet=Wallet.web,
            amount=2_000,
            key="abandoned",
            timeout_seconds=600,
        )
    job = upload(db, settings, clock, person.id)
    assert run_housekeeping(db=db, settings=settings, clock=clock).reservations == 0

    clock.advance(timedelta(seconds=601))
    swept = run_housekeeping(db=db, settings=settings, clock=clock)
    assert swept.reservations == 1
    assert web_available(db, clock, person.id) == 10 * MILLI

    clock.advance(DAY)
    assert run_housekeeping(db=db, settings=settings, clock=clock).results == 1
    assert not job_dir(settings, job.id).exists()

    clock.advance(90 * DAY)
    assert run_housekeeping(db=db, settings=settings, clock=clock).lots == 1
    assert web_available(db, clock, person.id) == 0
    assert ledger_clean(db)


def test_a_job_whose_worker_died_fails_clearly_and_costs_nothing(  # type: ignore[no-untyped-def]
    db, settings, clock, person
) -> None:
    job = upload(db, settings, clock, person.id)
    clock.advance(timedelta(hours=1))  # the quote sat on screen a while: that is no stall
    with writing(db) as session:  # what process_cutout had done when the server died
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            wallet=Wallet.web,
            amount=500,
            key=f"cutout:{job.id}",
            timeout_seconds=settings.reservation_timeout_seconds,
        )
        row = session.get(CutoutJob, job.id)
        row.status = JobStatus.processing
        row.started_at = clock.now()
        session.add(row)
    assert run_housekeeping(db=db, settings=settings, clock=clock).stalled == 0

    clock.advance(timedelta(seconds=settings.reservation_timeout_seconds + 1))
    swept = run_housekeeping(db=db, settings=settings, clock=clock)
    assert (swept.stalled, swept.reservations) == (1, 1)
    assert status(db, job.id) == "failed"
    with reading(db) as session:
        failed = get_job(session=session, owner=None, job_id=job.id)
    assert "nothing was charged" in (failed.error or "")
    assert web_available(db, clock, person.id) == 10 * MILLI
