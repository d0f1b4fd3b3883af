"""Database engine and units of work: SQLite (WAL) or PostgreSQL, chosen by URL.

Only the use-case layer (`app/usecases/`) opens units of work. It says up front whether one
writes: on SQLite a writing unit takes the database's one write lock at BEGIN (so two charges
never both read a balance and then both spend it), while a reading unit runs in WAL snapshot
mode and never waits for a writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import Connection, Engine, event
from sqlmodel import Session, create_engine

T = TypeVar("T")

# Execution option carried by connections of writing units of work.
WRITE_OPTION = "cutout_writes"


class ReadOnlyUnitOfWork(RuntimeError):
    """A write was attempted inside a unit of work opened for reading (a programming error)."""


# Every commit on disk before it returns: in WAL mode NORMAL could lose the last commits
# (a paid-for charge, a grant) to a power cut, and this database holds money.
SQLITE_SYNCHRONOUS = "FULL"


def make_engine(url: str, *, sqlite_synchronous: str = SQLITE_SYNCHRONOUS) -> Engine:
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
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def is_writing(session: Session) -> bool:
    """True inside a unit of work opened with `writing`."""
    return bool(session.connection().get_execution_options().get(WRITE_OPTION))


def require_writing(session: Session) -> None:
    """Refuse a write in a reading unit: on SQLite it would run without the write lock."""
    if not is_writing(session):
        raise ReadOnlyUnitOfWork("this operation writes; open the unit of work with writing()")


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


class GroupCommit:
    """Units of work from many threads of one process sharing one durable commit.

    Each unit runs in its own SAVEPOINT of a transaction shared with the units that arrive
    while it is open, so a unit that fails is rolled back alone. Units run one at a time (as
    every writer does on SQLite anyway). After its unit, a caller waits until the shared
    transaction has committed: whoever gets there first commits everything done so far,
    with one fsync, while the others queue behind it and form the next batch. So nobody gets
    an answer before its writes are on disk, and if that commit fails every unit in the batch
    raises. Meant for short units without outside calls, such as a charge's reserve or capture.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = _writer(engine)
        self._lock = threading.Lock()  # the shared transaction, one unit or commit at a time
        self._session: Session | None = None
        self._batch = 0  # number of the open (or next) shared transaction
        self._committed = -1  # the last batch known to be on disk
        self._failed: dict[int, BaseException] = {}  # batches whose commit failed
        self.commits = 0
        self.units = 0

    def run(self, unit: Callable[[Session], T]) -> T:
        """Run `unit(session)` in its own savepoint; return its result once it is durable."""
        with self._lock:
            if self._session is None:
                self._session = Session(self._engine, expire_on_commit=False)
            session, batch = self._session, self._batch
            savepoint = session.begin_nested()
            failure: BaseException | None = None
            try:
                result = unit(session)
                savepoint.commit()
            except BaseException as error:
                savepoint.rollback()
                failure = error
            self.units += 1
        try:
            # A failed unit commits the batch too: nothing may keep the shared transaction
            # (and SQLite's write lock) open while no caller is left to commit it.
            self._commit_through(batch)
        finally:
            if failure is not None:
                raise failure
        return result

    def _commit_through(self, batch: int) -> None:
        with self._lock:
            if batch == self._batch and self._session is not None:
                session, self._session = self._session, None
                self._batch += 1
                try:
                    session.commit()
                except BaseException as error:
                    self._failed[batch] = error
                    session.rollback()
                    raise
                finally:
                    session.close()
                self._committed = batch
                self.commits += 1
                # A failed batch's callers look it up once; keep only recent ones.
                for old in [b for b in self._failed if b < batch - 1000]:
                    del self._failed[old]
            elif batch in self._failed:
                raise SharedCommitFailed("the commit shared with other units failed") from (
                    self._failed[batch]
                )


class SharedCommitFailed(RuntimeError):
    """The durable commit of a batch of units failed: none of its writes were kept."""


@lru_cache(maxsize=8)
def group_commit_for(engine: Engine) -> GroupCommit:
    """The process's one GroupCommit for `engine`: threads batch only if they share it."""
    return GroupCommit(engine)
