"""Image work on real Celery workers (PostgreSQL + Redis): a job runs once and is charged once,
even when the worker running it is SIGKILLed mid-job."""

from __future__ import annotations

import asyncio
import functools
import io
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading, writing
from app.models.jobs import CutoutJob, JobStatus
from app.models.ledger import LotScope, LotSource, Reservation, ReservationStatus, Wallet
from app.services.api_limits import RateLimiter
from app.services.billing import ledger
from app.services.billing.pricing import MILLI
from app.services.clock import SystemClock
from app.services.imaging.removebg_options import parse
from app.services.jobs import dispatch
from app.services.jobs.dispatch import send_to_celery
from app.services.jobs.storage import JobFile, file_path
from app.settings import Settings
from app.usecases import api_calls, bulk, cutouts
from tests.conftest import VENV_BIN, confirmed_account
from tests.integration.scaled_stack import (
    Workers,
    fresh_schema,
    scaled_settings,
    scaled_urls,
    stack_env,
    workers_for,
)

pytestmark = pytest.mark.postgres
clock = SystemClock()  # the workers use the real clock; so does every charge here


@dataclass
class Stack:
    settings: Settings
    db: Engine


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    database, redis = scaled_urls()
    url, engine, drop = fresh_schema(database)
    # A whole worker that vanishes has its message handed out again after 8 s (not 11 min).
    settings = scaled_settings(tmp_path, url, redis, celery_redeliver_seconds=8)
    settings.data_dir.mkdir(parents=True)
    try:
        yield Stack(settings, engine)
    finally:
        drop()


@pytest.fixture
def workers(stack: Stack, tmp_path: Path) -> Iterator[Workers]:
    yield from workers_for(stack.settings, tmp_path)


def photo(width: int, height: int) -> bytes:
    """A real photo (scikit-image's astronaut) at the given size, as a JPEG."""
    image = Image.fromarray(photos.astronaut()).resize((width, height))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def upload_and_queue(stack: Stack, email: str, data: bytes):  # type: ignore[no-untyped-def]
    person = confirmed_account(stack.db, clock, stack.settings, email)
    before = web_available(stack, person.id)
    job = cutouts.submit_photo(
        db=stack.db,
        settings=stack.settings,
        clock=clock,
        account_id=person.id,
        filename="astronaut.jpg",
        data=data,
    )
    queued = cutouts.queue_cutout(
        db=stack.db,
        settings=stack.settings,
        clock=clock,
        account_id=person.id,
        job_id=job.id,
        send=functools.partial(send_to_celery, stack.settings),
    )
    assert queued.status == JobStatus.processing, queued.error
    return person, before, queued


def web_available(stack: Stack, account_id: int) -> int:
    with reading(stack.db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def job_row(stack: Stack, job_id: str) -> CutoutJob:
    with reading(stack.db) as session:
        job = session.get(CutoutJob, job_id)
        assert job is not None
        return CutoutJob.model_validate(job.model_dump())  # a copy that outlives the session


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def finished(stack: Stack, job_id: str) -> CutoutJob | None:
    job = job_row(stack, job_id)
    return job if job.status in (JobStatus.done, JobStatus.failed) else None


def reservations(stack: Stack, job_id: str) -> dict[str, ReservationStatus]:
    with reading(stack.db) as session:
        rows = session.exec(
            select(Reservation).where(Reservation.key.startswith(f"cutout:{job_id}"))
        )
        return {row.key: row.status for row in rows}


def ledger_check(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The operator's auditor, as an operator runs it."""
    return subprocess.run(
        [str(VENV_BIN / "cutout-admin"), "ledger", "check"],
        env=stack_env(stack.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_charged_once(stack: Stack, person, before: int, job: CutoutJob) -> None:  # type: ignore[no-untyped-def]
    cost = cutouts.cutout_cost(cutouts.cutouts.view_of(job))
    assert web_available(stack, person.id) == before - cost, "charged exactly once"
    held = reservations(stack, job.id)
    captured = [key for key, status in held.items() if status == ReservationStatus.captured]
    assert captured == [cutouts.cutouts.charge_key(job.id, job.attempt)]
    check = ledger_check(stack)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_celery_worker_runs_the_job_and_the_page_sees_it_in_the_jobs_table(
    stack: Stack, workers: Workers
) -> None:
    workers.start("w1")
    person, before, queued = upload_and_queue(stack, "celery@example.com", photo(800, 600))
    seen = {queued.status}

    def watched() -> CutoutJob | None:  # what the page's poll of the jobs table sees
        seen.add(job_row(stack, queued.id).status)
        return finished(stack, queued.id)

    done = wait_for(watched, 180, "the job to finish")
    assert done.status == JobStatus.done, done.error
    assert seen <= {JobStatus.processing, JobStatus.done}
    assert done.picked_up_at is not None and done.attempt == 0
    with Image.open(file_path(stack.settings, done.id, JobFile.cutout)) as result:
        assert result.size == (800, 600) and result.mode == "RGBA"
    assert_charged_once(stack, person, before, done)


def picked_up(stack: Stack, job_id: str) -> CutoutJob | None:
    job = job_row(stack, job_id)
    return job if job.picked_up_at is not None else None


def test_a_worker_killed_mid_job_leaves_it_to_another_worker_charged_once(
    stack: Stack, workers: Workers
) -> None:
    first = workers.start("doomed")
    # 12 MP: the model and the PNG encoding take seconds, so the kill lands mid-job.
    person, before, queued = upload_and_queue(stack, "killed@example.com", photo(4000, 3000))
    wait_for(lambda: picked_up(stack, queued.id), 120, "the worker to pick the job up")
    first.kill()  # SIGKILL, main process and pool child: nothing acknowledged
    assert job_row(stack, queued.id).status == JobStatus.processing, "killed before it finished"

    workers.start("survivor")
    done = wait_for(lambda: finished(stack, queued.id), 240, "the job to be recovered")
    assert done.status == JobStatus.done, done.error
    assert done.attempt == 1, "the dead worker's attempt was replaced by a new one"
    assert reservations(stack, queued.id) == {
        f"cutout:{queued.id}": ReservationStatus.released,
        f"cutout:{queued.id}:1": ReservationStatus.captured,
    }
    assert_charged_once(stack, person, before, done)
    leftovers = list(file_path(stack.settings, done.id, JobFile.cutout).parent.glob("*.part"))
    assert len(leftovers) <= 1, "at most the dead worker's unfinished part file"


def test_a_pool_process_killed_mid_job_is_retried_at_once(stack: Stack, workers: Workers) -> None:
    worker = workers.start("w1")
    person, before, queued = upload_and_queue(stack, "child@example.com", photo(4000, 3000))
    wait_for(lambda: picked_up(stack, queued.id), 120, "the worker to pick the job up")
    children = worker.pool_children()
    assert children, "a prefork worker runs jobs in a child process"
    for pid in children:
        subprocess.run(["kill", "-KILL", str(pid)], check=True)
    # The worker sees its child die, rejects the message, and it comes back without waiting
    # for the redelivery timeout.
    done = wait_for(lambda: finished(stack, queued.id), 240, "the job to be retried")
    assert done.status == JobStatus.done, done.error
    assert done.attempt == 1
    assert_charged_once(stack, person, before, done)


def test_without_a_reachable_queue_the_attempt_fails_and_nothing_is_charged(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    person = confirmed_account(stack.db, clock, settings, "noqueue@example.com")
    before = web_available(stack, person.id)
    job = cutouts.submit_photo(
        db=stack.db,
        settings=settings,
        clock=clock,
        account_id=person.id,
        filename="astronaut.jpg",
        data=photo(400, 300),
    )
    failed = cutouts.queue_cutout(
        db=stack.db,
        settings=settings,
        clock=clock,
        account_id=person.id,
        job_id=job.id,
        send=functools.partial(send_to_celery, settings),
    )
    assert failed.status == JobStatus.failed
    assert "queue could not be reached" in (failed.error or "")
    assert web_available(stack, person.id) == before
    assert reservations(stack, job.id) == {f"cutout:{job.id}": ReservationStatus.released}


def test_a_bulk_batch_runs_on_celery_with_its_background_colour(
    stack: Stack, workers: Workers
) -> None:
    """The batch's colour travels with each photo's task: the worker paints it, opaque."""
    workers.start("w1")
    person = confirmed_account(stack.db, clock, stack.settings, "bulk@example.com")
    before = web_available(stack, person.id)
    batch_id = bulk.new_batch(
        db=stack.db, settings=stack.settings, clock=clock, account_id=person.id
    )
    for name in ("one.jpg", "two.jpg"):
        bulk.add_photo(
            db=stack.db,
            settings=stack.settings,
            clock=clock,
            account_id=person.id,
            batch_id=batch_id,
            filename=name,
            data=photo(640, 480),
        )
    bulk.set_options(
        db=stack.db, account_id=person.id, batch_id=batch_id, hair=False, background="#ff0000"
    )
    bulk.start(db=stack.db, account_id=person.id, batch_id=batch_id)
    asyncio.run(
        bulk.drive(
            db=stack.db,
            settings=stack.settings,
            clock=clock,
            account_id=person.id,
            batch_id=batch_id,
        )
    )
    members = bulk.zip_members(
        db=stack.db, settings=stack.settings, account_id=person.id, batch_id=batch_id
    )
    assert len(members) == 2
    total = 0
    for _, path in members:
        with Image.open(path) as result:
            rgba = np.asarray(result.convert("RGBA"))
        assert rgba[..., 3].min() == 255, "painted on the colour: opaque everywhere"
        red = np.all(rgba == (255, 0, 0, 255), axis=-1).mean()
        assert 0.1 < red < 0.9, f"{red:.0%} of the photo is the batch's red"
        job_id = path.parent.name
        done = job_row(stack, job_id)
        assert done.runner is not None, "run by a Celery task, not the web's pool"
        total += cutouts.cutout_cost(cutouts.cutouts.view_of(done))
    assert web_available(stack, person.id) == before - total
    assert "cutout.process" in workers.started[0].log.read_text()
    check = ledger_check(stack)
    assert check.returncode == 0, check.stdout + check.stderr


# --- The remove.bg API's model step on Celery ----------------------------------------------------


def api_customer(stack: Stack, email: str) -> int:
    person = confirmed_account(stack.db, clock, stack.settings, email)
    with writing(stack.db) as session:
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            amount=50 * MILLI,
            scope=LotScope.api,
            source=LotSource.api_pack,
            key=f"pack-{email}",
        )
    return person.id


def api_available(stack: Stack, account_id: int) -> int:
    with reading(stack.db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.api
        ].available


def api_holds(stack: Stack) -> list[ReservationStatus]:
    with reading(stack.db) as session:
        return list(
            session.exec(select(Reservation.status).where(Reservation.key.startswith("api:"))).all()
        )


def api_call(stack: Stack, settings: Settings, account_id: int, image: bytes):  # type: ignore[no-untyped-def]
    return asyncio.run(
        api_calls.remove_background_queued(
            db=stack.db,
            settings=settings,
            clock=clock,
            limiter=RateLimiter(settings.api_megapixel_images_per_minute),
            caller=api_calls.Caller(account_id),
            image_data=image,
            options=parse({"size": "full"}),
            queue=dispatch.CeleryApiQueue(),
        )
    )


def staged_calls(settings: Settings) -> list[str]:
    return [p.name for p in settings.results_dir.glob("api-*")]


def test_an_api_call_whose_worker_dies_mid_call_is_charged_once(
    stack: Stack, workers: Workers
) -> None:
    worker = workers.start("w1")
    account_id = api_customer(stack, "api-killed@example.com")
    before = api_available(stack, account_id)
    with ThreadPoolExecutor(1) as web:
        # 12 MP: seconds of model and encoding, so the kill lands mid-call.
        answer = web.submit(api_call, stack, stack.settings, account_id, photo(4000, 3000))
        wait_for(
            lambda: "cutout.api_call" in worker.log.read_text(), 120, "the worker to take the call"
        )
        for pid in worker.pool_children():
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
        result = answer.result(timeout=300)
    assert (result.exported.width, result.exported.height) == (4000, 3000)
    assert worker.log.read_text().count("cutout.api_call[") >= 2, "delivered again after the kill"
    assert api_available(stack, account_id) == before - result.charged
    assert api_holds(stack) == [ReservationStatus.captured]
    assert staged_calls(stack.settings) == []
    check = ledger_check(stack)
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_api_call_no_worker_answers_times_out_and_costs_nothing(stack: Stack) -> None:
    impatient = stack.settings.model_copy(update={"reservation_timeout_seconds": 12})
    account_id = api_customer(stack, "api-nobody@example.com")
    before = api_available(stack, account_id)
    with pytest.raises(dispatch.ApiCallTimedOut):
        api_call(stack, impatient, account_id, photo(400, 300))
    assert api_available(stack, account_id) == before
    assert api_holds(stack) == [ReservationStatus.released]
    assert staged_calls(stack.settings) == []
