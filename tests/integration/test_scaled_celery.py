"""Image work on real Celery workers (PostgreSQL + Redis): a job runs once and is charged once,
even when the worker running it is SIGKILLed mid-job."""

from __future__ import annotations

import functools
import io
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as photos
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading
from app.models.jobs import CutoutJob, JobStatus
from app.models.ledger import Reservation, ReservationStatus, Wallet
from app.services.billing import ledger
from app.services.clock import SystemClock
from app.services.jobs.dispatch import send_to_celery
from app.services.jobs.storage import JobFile, file_path
from app.settings import Settings
from app.usecases import cutouts
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
