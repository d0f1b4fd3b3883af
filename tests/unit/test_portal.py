"""Charging for cutouts through the ledger, and the periodic sweepers, on a real SQLite file."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from app.db import session_scope
from app.models.jobs import CutoutJob, JobStatus
from app.models.ledger import Wallet
from app.services import ledger, portal
from app.services.auth import account_owner
from app.services.cutouts import JobFile, JobNotFound, get_job, job_dir, submit_upload
from app.services.housekeeping import run_housekeeping
from app.services.pricing import MILLI

DAY = timedelta(days=1)


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def person(db, clock):  # type: ignore[no-untyped-def]
    _token, summary = portal.sign_up(
        db=db,
        clock=clock,
        email="ada@example.com",
        password="a long passphrase",
        user_agent="test",
        lifetime=30 * DAY,
    )
    return summary


def upload(db, settings, clock, account_id: int, array: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    return submit_upload(
        db=db,
        settings=settings,
        clock=clock,
        owner=account_owner(account_id),
        filename="coffee.jpg",
        data=jpeg(photos.coffee() if array is None else array),
    )


def web_available(db, clock, account_id: int) -> int:  # type: ignore[no-untyped-def]
    with session_scope(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def test_a_cutout_costs_exactly_the_quoted_price_once(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    job = upload(db, settings, clock, person.id)
    quote = portal.quote(db=db, clock=clock, account_id=person.id, job=job)
    assert quote.available == 10 * MILLI and quote.cost == 500 and quote.enough
    assert web_available(db, clock, person.id) == 10 * MILLI, "a quote charges nothing"

    done = portal.charge_and_process(
        db=db, settings=settings, clock=clock, account_id=person.id, job_id=job.id
    )
    assert done.status == "done"
    assert web_available(db, clock, person.id) == 10 * MILLI - quote.cost
    # A retry of the same job (a double tap, a reconnect) never charges twice.
    portal.charge_and_process(
        db=db, settings=settings, clock=clock, account_id=person.id, job_id=job.id
    )
    assert web_available(db, clock, person.id) == 10 * MILLI - quote.cost
    with session_scope(db) as session:
        assert ledger.check_ledger(session=session) == []


def test_short_wallet_processes_nothing_and_charges_nothing(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    with session_scope(db) as session:  # leave 0.4 credits, less than one cutout's 0.5
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
    assert not portal.quote(db=db, clock=clock, account_id=person.id, job=job).enough
    with pytest.raises(ledger.InsufficientCredits) as short:
        portal.charge_and_process(
            db=db, settings=settings, clock=clock, account_id=person.id, job_id=job.id
        )
    assert (short.value.available, short.value.needed) == (400, 500)
    assert get_job(db=db, owner=None, job_id=job.id).status == "queued"
    assert not (job_dir(settings, job.id) / JobFile.cutout).exists()
    assert web_available(db, clock, person.id) == 400


def test_a_failed_cutout_releases_every_credit(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    job = upload(db, settings, clock, person.id)
    (job_dir(settings, job.id) / JobFile.original).write_bytes(b"damaged on disk")
    failed = portal.charge_and_process(
        db=db, settings=settings, clock=clock, account_id=person.id, job_id=job.id
    )
    assert failed.status == "failed" and failed.error
    assert web_available(db, clock, person.id) == 10 * MILLI
    with session_scope(db) as session:
        assert ledger.check_ledger(session=session) == []


def test_someone_elses_job_is_not_found_and_not_charged(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    _token, intruder = portal.sign_up(
        db=db,
        clock=clock,
        email="eve@example.com",
        password="another passphrase",
        user_agent="test",
        lifetime=DAY,
    )
    job = upload(db, settings, clock, person.id)
    with pytest.raises(JobNotFound):
        portal.charge_and_process(
            db=db, settings=settings, clock=clock, account_id=intruder.id, job_id=job.id
        )
    assert web_available(db, clock, intruder.id) == 10 * MILLI
    assert get_job(db=db, owner=None, job_id=job.id).status == "queued"
    assert portal.dashboard(db=db, clock=clock, account_id=intruder.id).jobs == []
    assert [j.id for j in portal.dashboard(db=db, clock=clock, account_id=person.id).jobs] == [
        job.id
    ]


def test_housekeeping_releases_expires_and_purges_on_time(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    with session_scope(db) as session:
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
    with session_scope(db) as session:
        assert ledger.check_ledger(session=session) == []


def test_a_job_whose_worker_died_fails_clearly_and_costs_nothing(  # type: ignore[no-untyped-def]
    db, settings, clock, person
) -> None:
    job = upload(db, settings, clock, person.id)
    clock.advance(timedelta(hours=1))  # the quote sat on screen a while: that is no stall
    with session_scope(db) as session:  # what charge_and_process had done when the server died
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
    failed = get_job(db=db, owner=None, job_id=job.id)
    assert failed.status == "failed" and "nothing was charged" in (failed.error or "")
    assert web_available(db, clock, person.id) == 10 * MILLI
