"""The charge's SQL on the unit of work's own driver connection, one text per dialect.

A reserve+capture pair is what every cut-out costs, and SQLAlchemy's execution machinery
(compiling, binding, events, result objects) cost several times its SQL. Here the statements
are plain strings built once, run on the transaction's sqlite3 or psycopg connection. Values are
written exactly as the ORM writes them: enum names (equal to their values), SQLite datetimes as
naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', PostgreSQL ones as timestamptz. Driver errors come
out as SQLAlchemy's own exception classes, as from any other statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from app.db import OneStatement

# A reservation's columns, in the order every statement here reads them.
RESERVATION_COLUMNS = (
    "id, account_id, wallet, key, amount, captured, status, created_at, expires_at, resolved_at"
)


class Statements:
    """The hot path's SQL in one dialect (qmark for sqlite3, %s for psycopg)."""

    def __init__(self, postgres: bool) -> None:
        def sql(text: str) -> str:
            return " ".join(text.replace("?", "%s").split()) if postgres else " ".join(text.split())

        self.postgres = postgres
        self.lock_account = sql(
            "SELECT id FROM account WHERE id = ?" + (" FOR UPDATE" if postgres else "")
        )
        self.find_reservation = sql(
            f"SELECT {RESERVATION_COLUMNS} FROM credit_reservation WHERE account_id = ? AND key = ?"
        )
        self.overdue = sql(
            f"""SELECT {RESERVATION_COLUMNS} FROM credit_reservation
            WHERE account_id = ? AND status = 'open' AND expires_at <= ? ORDER BY id"""
        )
        # The wallet's active lots with credits in them, in draw order (soonest expiry first).
        self.free_lots = sql(
            """SELECT id, source, remaining, reserved FROM credit_lot
            WHERE account_id = ? AND scope IN (?, ?) AND issued_at <= ? AND expires_at > ?
            AND voided_at IS NULL AND remaining > 0
            ORDER BY expires_at, issued_at, id"""
        )
        # What a reservation holds, lot by lot, in the order it was taken.
        self.holds = sql(
            """SELECT e.amount, l.id, l.account_id, l.expired_at, l.voided_at
            FROM ledger_entry e JOIN credit_lot l ON l.id = e.lot_id
            WHERE e.reservation_id = ? AND e.kind = 'hold' ORDER BY e.id"""
        )
        # The same by the reservation's key: read together with the reservation (PostgreSQL).
        self.holds_by_key = sql(
            """SELECT e.amount, l.id, l.account_id, l.expired_at, l.voided_at
            FROM credit_reservation r
            JOIN ledger_entry e ON e.reservation_id = r.id
            JOIN credit_lot l ON l.id = e.lot_id
            WHERE r.account_id = ? AND r.key = ? AND e.kind = 'hold' ORDER BY e.id"""
        )
        self.insert_reservation = sql(
            """INSERT INTO credit_reservation
            (account_id, wallet, key, amount, captured, status, created_at, expires_at)
            VALUES (?, ?, ?, ?, 0, 'open', ?, ?) RETURNING id"""
        )
        self.resolve_reservation = sql(
            "UPDATE credit_reservation SET status = ?, captured = ?, resolved_at = ? WHERE id = ?"
        )
        self.move = sql(
            "UPDATE credit_lot SET reserved = reserved + ?, remaining = remaining - ? WHERE id = ?"
        )
        self.insert_entry = sql(
            """INSERT INTO ledger_entry
            (account_id, lot_id, reservation_id, kind, amount, op_key, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)"""
        )
        if not postgres:
            return
        # PostgreSQL: the plain reserve and resolve in one call each (migration 0017), which
        # return the reservation's row, or no row to leave the case to the general path.
        self.reserve_plainly = sql(
            f"""SELECT {RESERVATION_COLUMNS} FROM ledger_reserve(
                ?, ?::wallet, ?, ?, ?::text[]::lotscope[], ?, ?)"""
        )
        self.resolve_plainly = sql(
            f"""SELECT {RESERVATION_COLUMNS} FROM ledger_resolve(
                ?, ?, ?, ?::reservationstatus, ?)"""
        )


SQLITE = Statements(postgres=False)
POSTGRES = Statements(postgres=True)


class Driver:
    """The transaction's driver connection with the ledger's statements in its dialect."""

    __slots__ = ("raw", "sql", "postgres", "_dialect", "_error")

    def __init__(self, connection: Connection) -> None:
        self._bind(connection.connection.driver_connection, connection.dialect)

    @classmethod
    def alone(cls, unit: OneStatement) -> Driver:
        """On a unit of work of one statement: its one `rows` call is the whole transaction."""
        driver = cls.__new__(cls)
        driver._bind(unit, unit.dialect)
        return driver

    def _bind(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.postgres = dialect.name == "postgresql"
        self.sql = POSTGRES if self.postgres else SQLITE
        self._dialect = dialect
        self._error: type[Exception] = dialect.loaded_dbapi.Error

    def db_time(self, value: datetime) -> Any:
        """A datetime as the ORM's UTCDateTime binds it."""
        if value.utcoffset() is None:
            raise ValueError("Datetime values must have timezone information.")
        value = value.astimezone(UTC)
        return value if self.postgres else value.strftime("%Y-%m-%d %H:%M:%S.%f")

    def time(self, value: Any) -> datetime | None:
        """A datetime read back, as UTCDateTime returns it: aware, in UTC."""
        if value is None:
            return None
        if self.postgres:
            return value.astimezone(UTC)  # type: ignore[no-any-return]
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.raw.execute(statement, params).fetchall()  # type: ignore[no-any-return]
        except self._error as error:
            raise self._wrap(statement, params, error) from error

    def run(self, statement: str, params: Sequence[Any]) -> Any:
        """Run one statement."""
        try:
            return self.raw.execute(statement, params)
        except self._error as error:
            raise self._wrap(statement, params, error) from error

    def many(self, statement: str, params: Iterable[Sequence[Any]]) -> None:
        try:
            self.raw.cursor().executemany(statement, params)
        except self._error as error:
            raise self._wrap(statement, [], error) from error

    def pipelined(self, *queries: tuple[str, Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        """PostgreSQL: several statements in one round trip, each after the one before it.

        Each still takes its own snapshot when it starts (READ COMMITTED), so what follows a
        lock is read after the lock is held.
        """
        try:
            with self.raw.pipeline():
                cursors = [self.raw.execute(statement, params) for statement, params in queries]
            return [cursor.fetchall() for cursor in cursors]
        except self._error as error:
            raise self._wrap(queries[0][0], queries[0][1], error) from error

    def _wrap(self, statement: str, params: Any, error: Exception) -> DBAPIError:
        return DBAPIError.instance(  # type: ignore[no-any-return]
            statement,
            params,
            error,
            self._error,
            dialect=self._dialect,
        )
