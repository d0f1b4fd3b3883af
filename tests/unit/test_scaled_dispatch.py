"""What a queue worker does with each delivery of a cutout task (app/usecases/cutouts.py:
run_dispatched), on a real SQLite file: whatever the deliveries, one job is charged at most once.

Celery itself is not needed here: `queue_cutout` hands the task to a list instead of a broker,
and each delivery is a call. tests/integration/test_scaled_celery.py runs real workers and kills
them; here a worker's death is played by an exception no handler catches.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.db import reading, writing
from app.models.jobs import JobStatus
from app.models.ledger import Reservation, ReservationStatus, Wallet
from app.services.billing import ledger
from app.services.jobs import cutouts as jobs
from app.services.jobs.dispatch import DispatchedCutout
from app.usecases import cutouts
from tests.unit.test_charging import jpeg, photos, sign_up


class WorkerDied(BaseException):
    """Plays a SIGKILL: nothing in the use case catches it, so nothing is cleaned up."""


@pytest.fixture
def person(db, clock, settings):  # type: ignore[no-untyped-def]
    return sign_up(db, clock, settings, "queue@example.com")


def queued(db, settings, clock, person) -> tuple[DispatchedCutout, int]:  # type: ignore[no-untyped-def]
    """An uploaded photo, taken and reserved by the web, its task sent to a list."""
    job = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=person.id,
        filename="coffee.jpg",
        data=jpeg(photos.coffee()),
    )
    sent: list[DispatchedCutout] = []
    view = cutouts.queue_cutout(
        db=db,
        settings=settings,
        clock=clock,
        account_id=person.id,
        job_id=job.id,
        send=sent.append,
    )
    assert view.status == JobStatus.processing and len(sent) == 1
    return sent[0], cutouts.cutout_cost(view)


def deliver(db, settings, clock, task):  # type: ignore[no-untyped-def]
    return cutouts.run_dispatched(db=db, settings=settings, clock=clock, task=task)


def available(db, clock, account_id: int) -> int:
    with reading(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def holds(db, job_id: str) -> dict[str, ReservationStatus]:
    with reading(db) as session:
        rows = session.exec(
            select(Reservation).where(Reservation.key.startswith(f"cutout:{job_id}"))
        ).all()
        return {row.key: row.status for row in rows}


def die_while_running(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def dies(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise WorkerDied()

    monkeypatch.setattr(cutouts, "_run", dies)


def test_the_first_delivery_runs_and_a_repeat_changes_nothing(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    start = available(db, clock, person.id)
    task, cost = queued(db, settings, clock, person)
    assert available(db, clock, person.id) == start - cost, "reserved by the web before sending"
    done = deliver(db, settings, clock, task)
    assert done.status == JobStatus.done and done.attempt == 0
    again = deliver(db, settings, clock, task)  # Celery delivers at least once
    assert again.status == JobStatus.done and again.attempt == 0
    assert available(db, clock, person.id) == start - cost
    assert holds(db, task.job_id) == {f"cutout:{task.job_id}": ReservationStatus.captured}


def test_a_redelivery_after_a_worker_died_runs_a_new_attempt_charged_once(
    db, settings, clock, person, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    start = available(db, clock, person.id)
    task, cost = queued(db, settings, clock, person)
    with monkeypatch.context() as patched:
        die_while_running(patched)
        with pytest.raises(WorkerDied):
            deliver(db, settings, clock, task)
    done = deliver(db, settings, clock, task)
    assert done.status == JobStatus.done and done.attempt == 1
    assert holds(db, task.job_id) == {
        f"cutout:{task.job_id}": ReservationStatus.released,
        f"cutout:{task.job_id}:1": ReservationStatus.captured,
    }
    assert available(db, clock, person.id) == start - cost


def test_a_photo_that_keeps_killing_workers_fails_with_nothing_charged(
    db, settings, clock, person, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    start = available(db, clock, person.id)
    task, _ = queued(db, settings, clock, person)
    die_while_running(monkeypatch)
    for _ in range(1 + cutouts.MAX_RECOVERIES):
        with pytest.raises(WorkerDied):
            deliver(db, settings, clock, task)
    failed = deliver(db, settings, clock, task)
    assert failed.status == JobStatus.failed
    assert failed.error == cutouts.WORKER_LOST
    assert set(holds(db, task.job_id).values()) == {ReservationStatus.released}
    assert len(holds(db, task.job_id)) == 1 + cutouts.MAX_RECOVERIES
    assert available(db, clock, person.id) == start


def test_a_worker_given_up_for_dead_cannot_charge_when_it_finishes_late(
    db, settings, clock, person
) -> None:  # type: ignore[no-untyped-def]
    start = available(db, clock, person.id)
    task, cost = queued(db, settings, clock, person)
    with writing(db) as session:  # worker A picks it up ...
        pickup, slow = jobs.pick_up(
            session=session, clock=clock, job_id=task.job_id, runner=task.runner
        )
    assert pickup is jobs.Pickup.first
    recovered = deliver(db, settings, clock, task)  # ... and B is given the task again
    assert recovered.status == JobStatus.done and recovered.attempt == 1
    late = cutouts.complete_cutout(  # A was only slow, and now finishes its attempt
        db=db, settings=settings, clock=clock, account_id=person.id, job=slow
    )
    assert late.status == JobStatus.done and late.attempt == 1, "B's result stands"
    assert available(db, clock, person.id) == start - cost
    assert holds(db, task.job_id)[f"cutout:{task.job_id}"] == ReservationStatus.released


def test_an_old_task_leaves_a_retried_job_alone(db, settings, clock, person, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    task, _ = queued(db, settings, clock, person)
    with monkeypatch.context() as patched:
        patched.setattr(cutouts, "_run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
        failed = deliver(db, settings, clock, task)
    assert failed.status == JobStatus.failed
    cutouts.retry_cutout(db=db, account_id=person.id, job_id=task.job_id)
    sent: list[DispatchedCutout] = []
    cutouts.queue_cutout(
        db=db,
        settings=settings,
        clock=clock,
        account_id=person.id,
        job_id=task.job_id,
        send=sent.append,
    )
    stale = deliver(db, settings, clock, task)  # the first attempt's message, delivered late
    assert stale.status == JobStatus.processing and stale.attempt == 1, "left to the new task"
    assert deliver(db, settings, clock, sent[0]).status == JobStatus.done
