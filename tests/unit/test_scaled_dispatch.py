"""What a queue worker does with each delivery of a cutout task (app/usecases/cutouts.py:
run_dispatched), on a real SQLite file: whatever the deliveries, one job is charged at most once.

Celery itself is not needed here: `queue_cutout` hands the task to a list instead of a broker,
and each delivery is a call. tests/integration/test_scaled_celery.py runs real workers and kills
them; here a worker's death is played by an exception no handler catches.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select

from app.db import reading, writing
from app.models.jobs import JobStatus
from app.models.ledger import LotScope, LotSource, Reservation, ReservationStatus, Wallet
from app.services.api_limits import RateLimiter
from app.services.billing import ledger
from app.services.billing.pricing import MILLI
from app.services.imaging.editor import Exported
from app.services.imaging.removebg_options import OptionError, parse
from app.services.jobs import cutouts as jobs
from app.services.jobs import dispatch, storage
from app.services.jobs.dispatch import DispatchedApiCall, DispatchedCutout
from app.services.jobs.storage import JobFile
from app.usecases import api_calls, cutouts
from tests.conftest import run_async
from tests.unit.test_charging import jpeg, photos, sign_up


class WorkerDied(BaseException):
    """Plays a SIGKILL: nothing in the use case catches it, so nothing is cleaned up."""


@pytest.fixture
def person(db, clock, settings):  # type: ignore[no-untyped-def]
    return sign_up(db, clock, settings, "queue@example.com")


def queued(db, settings, clock, person, background=None) -> tuple[DispatchedCutout, int]:  # type: ignore[no-untyped-def]
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
        background=background,
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


def test_a_bulk_photos_background_colour_travels_with_its_task(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    """A bulk batch's colour is part of the message (plain JSON) and the worker paints it."""
    sent, _ = queued(db, settings, clock, person, background="#00ff00")
    task = DispatchedCutout(**json.loads(json.dumps(asdict(sent))))  # as Celery carries it
    assert task.background == "#00ff00"
    assert deliver(db, settings, clock, task).status == JobStatus.done
    with Image.open(storage.file_path(settings, task.job_id, JobFile.cutout)) as result:
        rgba = np.asarray(result.convert("RGBA"))
    assert rgba[..., 3].min() == 255
    assert 0.05 < np.all(rgba == (0, 255, 0, 255), axis=-1).mean() < 0.95


# --- API calls with their model step on a queue (CUTOUT_JOBS=celery) ---------------------------
# The queue here runs the worker's side (`run_queued_call`) in a thread and reads its answer the
# way the web does (`exported_from`); tests/integration/test_api.py runs the same calls through
# real Celery workers in the scaled pass.


class ThreadQueue:
    """Plays Celery: the worker's function on the staged files, its answer read back."""

    def __init__(self, fails: BaseException | None = None) -> None:
        self.fails = fails
        self.calls: list[DispatchedApiCall] = []
        self.staged_seen: list[bool] = []

    async def run(self, settings, call: DispatchedApiCall) -> Exported:  # type: ignore[no-untyped-def]
        self.calls.append(call)
        # The message is plain JSON: what Celery would carry, with no image inside.
        sent = json.loads(json.dumps(asdict(call)))
        assert len(json.dumps(sent)) < 2000
        self.staged_seen.append(
            storage.store(settings).path_for(call.call_id, JobFile.original).is_file()
        )
        if self.fails is not None:
            raise self.fails
        answer = await asyncio.to_thread(
            api_calls.run_queued_call, settings=settings, call=DispatchedApiCall(**sent)
        )
        return dispatch.exported_from(settings, call, answer)


def api_wallet(db, clock, account_id: int) -> int:  # type: ignore[no-untyped-def]
    with reading(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.api
        ].available


def with_api_credits(db, clock, person, amount: int) -> None:  # type: ignore[no-untyped-def]
    with writing(db) as session:
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            amount=amount,
            scope=LotScope.api,
            source=LotSource.api_pack,
            key=f"pack-{person.id}",
        )


def queued_call(db, settings, clock, person, queue, **fields):  # type: ignore[no-untyped-def]
    return run_async(
        api_calls.remove_background_queued(
            db=db,
            settings=settings,
            clock=clock,
            limiter=RateLimiter(settings.api_megapixel_images_per_minute),
            caller=api_calls.Caller(person.id),
            image_data=jpeg(photos.astronaut()),
            options=parse(fields),
            queue=queue,
        )
    )


def leftover_calls(settings) -> list[str]:  # type: ignore[no-untyped-def]
    root = settings.results_dir
    return (
        sorted(p.name for p in root.iterdir() if p.name.startswith("api-")) if root.exists() else []
    )


def test_options_cross_the_queue_unchanged() -> None:
    options = parse(
        {
            "size": "medium",
            "bg_color": "81d4fa77",
            "crop": "true",
            "crop_margin": "10px 20%",
            "scale": "80%",
            "position": "original",
            "roi": "10% 5% 90% 95%",
            "add_shadow": "true",
            "semitransparency": "false",
            "format": "webp",
        }
    )
    plain = json.loads(json.dumps(dispatch.options_to_plain(options)))
    assert dispatch.options_from_plain(plain) == options


def test_a_queued_api_call_is_charged_what_its_result_costs(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    with_api_credits(db, clock, person, 5 * MILLI)
    before = api_wallet(db, clock, person.id)
    queue = ThreadQueue()
    result = queued_call(db, settings, clock, person, queue, size="preview", bg_color="ff0000")
    assert queue.staged_seen == [True]  # the photo went through the store, not the message
    image = Image.open(io.BytesIO(result.exported.data))
    assert (image.width, image.height) == (result.exported.width, result.exported.height)
    assert image.width * image.height <= 250_000 and image.format == "JPEG"
    assert result.charged > 0 and before - api_wallet(db, clock, person.id) == result.charged
    assert leftover_calls(settings) == []  # the staged photo and the result are cleaned up


@pytest.mark.parametrize(
    "failure",
    [dispatch.ApiCallTimedOut("no worker"), dispatch.ApiCallFailed("ref"), WorkerDied()],
)
def test_a_queued_call_that_fails_or_times_out_costs_nothing(  # type: ignore[no-untyped-def]
    db, settings, clock, person, failure
) -> None:
    with_api_credits(db, clock, person, 5 * MILLI)
    before = api_wallet(db, clock, person.id)
    with pytest.raises(type(failure)):
        queued_call(db, settings, clock, person, ThreadQueue(fails=failure))
    assert api_wallet(db, clock, person.id) == before
    with reading(db) as session:
        held = session.exec(
            select(Reservation.status).where(Reservation.key.startswith("api:"))
        ).all()
    assert held == [ReservationStatus.released]
    assert leftover_calls(settings) == []


def test_refusals_come_before_anything_is_queued(db, settings, clock, person) -> None:  # type: ignore[no-untyped-def]
    queue = ThreadQueue()
    broke = settings.model_copy(update={"trial_credits": 0})
    poor = sign_up(db, clock, broke, "poor@example.com")
    with pytest.raises(api_calls.ApiRefused) as refused:  # no credits at all
        queued_call(db, broke, clock, poor, queue, size="full")
    assert refused.value.status == 402 and queue.calls == []
    with pytest.raises(OptionError):
        queued_call(db, settings, clock, person, queue, size="huge")
    assert queue.calls == [] and leftover_calls(settings) == []
