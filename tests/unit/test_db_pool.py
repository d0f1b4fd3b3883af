"""PostgreSQL's pooled connections: a dead idle one is replaced before use; a unit of work that
meets a dead connection fails whole, and the next one works."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.db import make_engine, writing

pytestmark = pytest.mark.postgres

IDLE = 0.2  # seconds: the test engine's ping threshold


def engine_on(pg_db: Engine, ping_after_idle: float) -> Engine:
    """An engine of its own on the test's schema, with its own ping threshold."""
    own = make_engine(
        pg_db.url.render_as_string(hide_password=False), ping_after_idle=ping_after_idle
    )
    with own.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS note (id serial PRIMARY KEY, body text)")
    return own


@pytest.fixture
def engine(pg_db: Engine) -> Iterator[Engine]:
    own = engine_on(pg_db, IDLE)
    yield own
    own.dispose()


@pytest.fixture
def trusting(pg_db: Engine) -> Iterator[Engine]:
    """Trusts every pooled connection for a minute: no ping in the time of a test."""
    own = engine_on(pg_db, 60)
    yield own
    own.dispose()


def backend_of(engine: Engine) -> int:
    with writing(engine) as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def kill(admin: Engine, pid: int) -> None:
    with admin.begin() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    for _ in range(100):  # the backend exits shortly after the signal
        with admin.begin() as conn:
            alive = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar()
        if not alive:
            return
        time.sleep(0.01)


def notes(engine: Engine) -> list[str]:
    with writing(engine) as session:
        return list(session.execute(sa.text("SELECT body FROM note ORDER BY id")).scalars())


def test_a_connection_that_died_while_idle_is_replaced_before_use(
    engine: Engine, pg_db: Engine
) -> None:
    first = backend_of(engine)
    kill(pg_db, first)
    time.sleep(IDLE * 2)  # idle past the threshold: pinged at checkout
    with writing(engine) as session:
        session.execute(sa.text("INSERT INTO note (body) VALUES ('after restart')"))
    assert notes(engine) == ["after restart"]
    assert backend_of(engine) != first


def test_a_connection_that_died_just_after_use_fails_one_unit_of_work_whole(
    trusting: Engine, pg_db: Engine
) -> None:
    kill(pg_db, backend_of(trusting))  # within the threshold: handed out without a ping
    with pytest.raises(sa.exc.OperationalError), writing(trusting) as session:
        session.execute(sa.text("INSERT INTO note (body) VALUES ('lost with the connection')"))
    with writing(trusting) as session:  # the pool was discarded: a fresh connection
        session.execute(sa.text("INSERT INTO note (body) VALUES ('retried')"))
    assert notes(trusting) == ["retried"]
