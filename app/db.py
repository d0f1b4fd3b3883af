"""Database engine and units of work: SQLite (WAL) or PostgreSQL, chosen by URL.

Only the use-case layer (`app/usecases/`) opens units of work. It says up front whether one
writes: on SQLite a writing unit takes the database's one write lock at BEGIN (so two charges
never both read a balance and then both spend it), while a reading unit runs in WAL snapshot
mode and never waits for a writer. On PostgreSQL a unit of work can also be a single statement
(`one_statement`), which the server commits as it completes: no BEGIN or COMMIT round trips.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlmodel import Session, create_engine

# Execution option carried by connections of writing units of work.
WRITE_OPTION = "cutout_writes"


class ReadOnlyUnitOfWork(RuntimeError):
    """A write was attempted inside a unit of work opened for reading (a programming error)."""


# Every commit on disk before it returns: in WAL mode NORMAL could lose the last commits
# (a paid-for charge, a grant) to a power cut, and this database holds money.
SQLITE_SYNCHRONOUS = "FULL"


# A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0


def make_engine(
    url: str,
    *,
    sqlite_synchronous: str = SQLITE_SYNCHRONOUS,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
) -> Engine:
    if url.startswith("sqlite"):
        if sqlite_synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {sqlite_synchronous!r}")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (pysqlite's own
            # handling defers BEGIN and breaks locking); see SQLAlchemy's SQLite dialect docs.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers take the write lock up front; readers read a WAL snapshot and never block.
            begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN"
            # On the driver itself: every unit of work begins, and SQLAlchemy's execution
            # machinery cost more than the statement. Its errors keep SQLAlchemy's classes.
            try:
                conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
            except sqlite3.Error as error:
                raise DBAPIError.instance(begin, (), error, sqlite3.Error) from error

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_when_idle(engine, ping_after_idle)
    return engine


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    """SQLAlchemy's pool_pre_ping, but only for connections idle longer than `seconds`.

    A server restart, a failover or an idle timeout kills connections while they sit in the
    pool; those are pinged and replaced before use, as pool_pre_ping would. A connection back in
    the pool for less than `seconds` was working a moment ago: pinging it on every unit of work
    was two round trips per charge. If it did die in that moment, its unit of work fails (before
    anything was committed) and SQLAlchemy's disconnect handling discards the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < seconds:
            return  # new, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards the connection and hands out a fresh one.
            raise DisconnectionError(f"pooled connection is gone: {error}") from error


_CHECKED_IN = "cutout_checked_in"


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def is_writing(session: Session) -> bool:
    """True inside a unit of work opened with `writing`."""
    return bool(session.connection().get_execution_options().get(WRITE_OPTION))


def require_writing(session: Session) -> None:
    """Refuse a write in a reading unit: on SQLite it would run without the write lock."""
    writing_connection(session)


def writing_connection(session: Session) -> Connection:
    """The connection of a unit of work opened with `writing`; a reading unit is refused."""
    connection = session.connection()
    if not connection.get_execution_options().get(WRITE_OPTION):
        raise ReadOnlyUnitOfWork("this operation writes; open the unit of work with writing()")
    return connection


@lru_cache(maxsize=16)
def _writer(engine: Engine) -> Engine:
    return engine.execution_options(**{WRITE_OPTION: True})


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A unit of work that writes: commit on success, roll back on error."""
    with Session(_writer(engine), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads, from one consistent snapshot; never commits anything."""
    with Session(engine, expire_on_commit=False) as s:
        event.listen(s, "before_flush", _refuse_flush)
        try:
            yield s
        finally:
            s.rollback()


def _refuse_flush(session: Session, _context: object, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyUnitOfWork("changes made in a reading unit of work; open it with writing()")


class OneStatement:
    """A unit of work that is exactly one statement, committed by the server as it completes.

    PostgreSQL runs every statement atomically, a function call with all its writes included,
    so for a database function that is a whole operation (the ledger's plain charge) the
    transaction's own BEGIN and COMMIT are two round trips for nothing. A second statement
    would be a second transaction, so the unit refuses it: work of more than one statement
    opens `writing`.
    """

    __slots__ = ("dialect", "_driver_connection", "_used")

    def __init__(self, driver_connection: Any, dialect: Dialect) -> None:
        self.dialect = dialect
        self._driver_connection = driver_connection
        self._used = False

    def execute(self, statement: str, params: Any) -> Any:
        """Run the unit's statement on the driver (its cursor), once."""
        if self._used:
            raise RuntimeError("a one-statement unit of work runs one statement; use writing()")
        self._used = True
        return self._driver_connection.execute(statement, params)


def has_one_statement_units(engine: Engine) -> bool:
    """PostgreSQL (psycopg) only. SQLite gains nothing: no round trips, and a writer takes the
    database's write lock at BEGIN anyway."""
    return engine.dialect.name == "postgresql"


@contextmanager
def one_statement(engine: Engine) -> Iterator[OneStatement]:
    """A pooled connection in autocommit for one statement, back in transaction mode after."""
    if not has_one_statement_units(engine):
        raise ValueError(f"one-statement units of work need PostgreSQL, not {engine.dialect.name}")
    pooled = engine.raw_connection()
    driver_connection: Any = pooled.driver_connection
    try:
        driver_connection.autocommit = True
        yield OneStatement(driver_connection, engine.dialect)
    finally:
        try:
            driver_connection.autocommit = False
        except engine.dialect.loaded_dbapi.Error:
            pooled.invalidate()  # broken or mid-transaction: never hand it to a writing unit
        pooled.close()
