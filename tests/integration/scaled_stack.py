"""The scaled stack for tests: a fresh PostgreSQL schema, Redis, and real Celery worker processes.

Tests that use it need TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL; where either is unset
they are skipped with a message saying which. Each test gets its own schema and Celery queue, so
runs in other checkouts on the same servers never take each other's tasks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.db import make_engine
from app.settings import Settings
from tests.conftest import MODELS_DIR, REPO, VENV_BIN, migrated_engine


def scaled_urls() -> tuple[str, str]:
    """(PostgreSQL URL, Redis URL) from the environment, or skip saying what is missing."""
    database, redis = scaled_urls_or_empty()
    needed = (("TEST_DATABASE_URL", database), ("TEST_REDIS_URL", redis))
    missing = " and ".join(name for name, value in needed if not value)
    if missing:
        pytest.skip(f"{missing} not set: scaled-stack (PostgreSQL + Redis) tests skipped")
    return database, redis


def fresh_schema(base_url: str) -> tuple[str, Engine, object]:
    """A new schema in the test database: its URL, a migrated engine, and a dropper."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    url = f"{base_url}{sep}options=-csearch_path%3D{schema}"
    engine = migrated_engine(url)

    def drop() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url, engine, drop


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment a web or Celery process of this stack runs with."""
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(settings.data_dir),
        U2NET_HOME=str(MODELS_DIR),
        DATABASE_URL=settings.database_url,
        REFLEX_REDIS_URL=settings.redis_url,
        CUTOUT_JOBS="celery",
        CUTOUT_CELERY_QUEUE=settings.celery_queue,
        CUTOUT_CELERY_REDELIVER_SECONDS=str(settings.celery_redeliver_seconds),
        CUTOUT_ONNX_THREADS="1",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache"))
    env.pop("CUTOUT_DATABASE_URL", None)
    env.pop("CUTOUT_REDIS_URL", None)
    return env


@dataclass
class CeleryWorker:
    """One `celery -A app.worker worker` process (its own process group: main and pool child)."""

    name: str
    log: Path
    proc: subprocess.Popen[bytes]

    def pool_children(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.proc.pid).children(recursive=True)]

    def kill(self) -> None:
        """SIGKILL the whole worker: no warm shutdown, nothing acknowledged, nothing cleaned."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@dataclass
class Workers:
    settings: Settings
    root: Path
    started: list[CeleryWorker] = field(default_factory=list)

    def start(self, name: str, *, wait: bool = True) -> CeleryWorker:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "app.worker",
                    "worker",
                    "--concurrency=1",
                    "--pool=prefork",
                    f"--hostname={name}@%h",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=REPO,
                env=stack_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = CeleryWorker(name, log, proc)
        self.started.append(worker)
        if wait:
            deadline = time.monotonic() + 180
            while "ready." not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


def scaled_settings(tmp_path: Path, database_url: str, redis_url: str, **more: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        models_dir=MODELS_DIR,
        database_url=database_url,
        redis_url=redis_url,
        jobs="celery",
        celery_queue=f"cutout-test-{uuid.uuid4().hex[:10]}",
        **more,
    )


def workers_for(settings: Settings, root: Path) -> Iterator[Workers]:
    workers = Workers(settings, root)
    try:
        yield workers
    finally:
        workers.stop_all()


@contextlib.contextmanager
def live_stack(root: Path, data_dir: Path) -> Iterator[dict[str, str]]:
    """For the live app in scaled mode: a schema, a Celery worker sharing the app's data folder,
    and the environment that makes the app use them with two web workers."""
    database, redis = scaled_urls()
    url, engine, drop = fresh_schema(database)
    engine.dispose()
    settings = scaled_settings(root, url, redis).model_copy(update={"data_dir": data_dir})
    data_dir.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, root)
    try:
        workers.start("live-worker")
        env = stack_env(settings)
        yield {
            name: env[name]
            for name in (
                "DATABASE_URL",
                "REFLEX_REDIS_URL",
                "CUTOUT_JOBS",
                "CUTOUT_CELERY_QUEUE",
                "CUTOUT_CELERY_REDELIVER_SECONDS",
            )
        } | {"GRANIAN_WORKERS": "2"}
    finally:
        workers.stop_all()
        drop()


def probe() -> str:
    """Why the scaled pass cannot run here, or "" when PostgreSQL and Redis both answer."""
    from redis import Redis

    database, redis = scaled_urls_or_empty()
    if not database or not redis:
        return "TEST_DATABASE_URL or TEST_REDIS_URL is empty"
    try:
        with make_engine(database).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as error:
        return f"PostgreSQL at {database} does not answer ({type(error).__name__})"
    try:
        Redis.from_url(redis, socket_connect_timeout=2).ping()
    except Exception as error:
        return f"Redis at {redis} does not answer ({type(error).__name__})"
    return ""


def scaled_urls_or_empty() -> tuple[str, str]:
    return os.environ.get("TEST_DATABASE_URL", ""), os.environ.get("TEST_REDIS_URL", "")


if __name__ == "__main__":
    import sys

    reason = probe()
    print(reason or "ok")
    sys.exit(1 if reason else 0)
