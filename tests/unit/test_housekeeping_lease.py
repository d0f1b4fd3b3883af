"""Housekeeping runs in every web worker; on PostgreSQL only one pass runs at a time."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import text

from app.services.clock import FrozenClock
from app.services.jobs import dispatch, storage
from app.services.jobs.storage import JobFile
from app.settings import Settings
from app.usecases import housekeeping
from app.usecases.housekeeping import Swept, run_housekeeping_exclusively
from tests.conftest import MODELS_DIR


@pytest.fixture
def postgres(tmp_path):  # type: ignore[no-untyped-def]
    from tests.integration.scaled_stack import fresh_schema, scaled_urls

    database, _ = scaled_urls()
    url, engine, drop = fresh_schema(database)
    try:
        yield engine, Settings(data_dir=tmp_path / "data", models_dir=MODELS_DIR, database_url=url)
    finally:
        drop()


def test_sqlite_always_sweeps(db, settings) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(
        run_housekeeping_exclusively(db=db, settings=settings, clock=FrozenClock()), Swept
    )


def test_a_second_worker_skips_while_one_is_sweeping(postgres, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, settings = postgres
    clock = FrozenClock()
    inside, finish = threading.Event(), threading.Event()
    real_pass = housekeeping.run_housekeeping

    def slow_pass(**kwargs):  # type: ignore[no-untyped-def]
        inside.set()
        assert finish.wait(30)
        return real_pass(**kwargs)

    monkeypatch.setattr(housekeeping, "run_housekeeping", slow_pass)
    results: list[Swept | None] = []
    first = threading.Thread(
        target=lambda: results.append(
            run_housekeeping_exclusively(db=engine, settings=settings, clock=clock)
        )
    )
    first.start()
    assert inside.wait(30)
    # Another web worker (its own connection) comes round meanwhile: it does nothing.
    assert run_housekeeping_exclusively(db=engine, settings=settings, clock=clock) is None
    finish.set()
    first.join(30)
    assert isinstance(results[0], Swept)
    # The lease went with the pass: the next one runs.
    monkeypatch.setattr(housekeeping, "run_housekeeping", real_pass)
    assert isinstance(
        run_housekeeping_exclusively(db=engine, settings=settings, clock=clock), Swept
    )


def test_a_worker_that_dies_mid_pass_leaves_no_lease_behind(postgres) -> None:  # type: ignore[no-untyped-def]
    engine, settings = postgres
    clock = FrozenClock()
    dead = engine.connect()  # a worker's session holding the lease...
    dead.execute(
        text("SELECT pg_advisory_lock(:key, hashtext(current_schema()))"),
        {"key": housekeeping.HOUSEKEEPING_LOCK},
    )
    dead.commit()
    assert run_housekeeping_exclusively(db=engine, settings=settings, clock=clock) is None
    dead.invalidate()  # ...and its connection gone, as when the process is killed
    dead.close()
    # The server ends the dead session (and drops its locks) a moment after the socket closes.
    deadline = time.monotonic() + 30
    swept = None
    while swept is None and time.monotonic() < deadline:
        swept = run_housekeeping_exclusively(db=engine, settings=settings, clock=clock)
        time.sleep(0.1)
    assert isinstance(swept, Swept)


def test_folders_of_api_calls_nobody_awaits_are_swept_and_nothing_else(db, settings) -> None:  # type: ignore[no-untyped-def]
    """A web process that dies while a Celery worker runs its API call leaves the call's staged
    folder behind; housekeeping deletes it once no wait can still be going on, and never touches
    a fresh call's folder or a job whose id merely starts like one."""
    clock = FrozenClock()
    store = storage.store(settings)
    orphan = dispatch.new_api_call_id()
    fresh = dispatch.new_api_call_id()
    job_like = "api-" + "x" * 28  # a job id is 32 URL-safe characters: it can start with "api-"
    for name in (orphan, f"{orphan}-bg", fresh, job_like):
        store.save_upload(name, original=b"photo", preview=b"")
    stale = clock.now().timestamp() - settings.reservation_timeout_seconds - 120
    for name in (orphan, f"{orphan}-bg", job_like):
        for path in (store.job_dir(name), *store.job_dir(name).iterdir()):
            os.utime(path, (stale, stale))
    recent = clock.now().timestamp() - 5
    for path in (store.job_dir(fresh), *store.job_dir(fresh).iterdir()):
        os.utime(path, (recent, recent))

    swept = run_housekeeping_exclusively(db=db, settings=settings, clock=clock)

    assert swept is not None and swept.api_files == 2
    assert not store.job_dir(orphan).exists()
    assert not store.job_dir(f"{orphan}-bg").exists()
    assert store.read(fresh, JobFile.original) == b"photo"
    assert store.read(job_like, JobFile.original) == b"photo"
