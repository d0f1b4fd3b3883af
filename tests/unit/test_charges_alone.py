"""A hold or a capture as a unit of work of its own (app.usecases.charges), on both databases.

On PostgreSQL the plain case is one autocommitted call of the ledger's database function; the
rest falls back to the ledger's general path in a writing unit. These tests show which path ran
by counting the transactions SQLAlchemy began (a one-statement unit begins none), that both
paths give the same outcomes and refusals, and that a connection used for one statement goes
back to the pool in transaction mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlmodel import select

from app.db import has_one_statement_units, make_engine, one_statement, reading, writing
from app.models.ledger import CreditLot, LedgerEntry, ReservationStatus, Wallet
from app.services.billing import ledger
from app.services.clock import FrozenClock
from app.usecases import charges
from tests.conftest import new_account

BOTH = ["db", pytest.param("pg_db", marks=pytest.mark.postgres)]


@contextmanager
def counting_transactions(engine: Engine) -> Iterator[list[int]]:
    """How many transactions SQLAlchemy began on `engine` meanwhile (in a one-item list)."""
    began = [0]

    def count(_connection: sa.Connection) -> None:
        began[0] += 1

    event.listen(engine, "begin", count)
    try:
        yield began
    finally:
        event.remove(engine, "begin", count)


def an_account(engine: Engine, clock: FrozenClock, email: str = "alone@example.com") -> int:
    with writing(engine) as session:
        account = new_account(session, clock, email)  # a trial lot of 10 credits
    assert account.id is not None
    return account.id


def books(engine: Engine, account_id: int) -> tuple[list[tuple[int, int]], list[tuple[str, int]]]:
    """The account's lots (remaining, reserved) and entries (kind, amount), in order."""
    with reading(engine) as session:
        lots = session.exec(
            select(CreditLot).where(CreditLot.account_id == account_id).order_by(CreditLot.id)
        ).all()
        entries = session.exec(
            select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id)
        ).all()
        return (
            [(lot.remaining, lot.reserved) for lot in lots],
            [(entry.kind.value, entry.amount) for entry in entries],
        )


def check_clean(engine: Engine) -> None:
    with writing(engine) as session:
        assert ledger.check_ledger(session=session) == []


@pytest.mark.parametrize("engine_name", BOTH)
def test_a_hold_and_its_capture_write_what_the_ledger_writes_in_a_unit_of_work(
    engine_name: str, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    alone, inside = (
        an_account(engine, clock, "alone@example.com"),
        an_account(engine, clock, "inside@example.com"),
    )
    with counting_transactions(engine) as began:
        held = charges.reserve(
            db=engine, clock=clock, account_id=alone, wallet=Wallet.api, amount=1_100, key="k"
        )
        done = charges.capture(db=engine, clock=clock, account_id=alone, key="k", amount=900)
    # PostgreSQL: each was one autocommitted call, no transaction of SQLAlchemy's; SQLite runs
    # the ledger's path in a writing unit each.
    assert began[0] == (0 if has_one_statement_units(engine) else 2)
    with writing(engine) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=inside,
            wallet=Wallet.api,
            amount=1_100,
            key="k",
        )
    with writing(engine) as session:
        ledger.capture_reservation(
            session=session, clock=clock, account_id=inside, key="k", amount=900
        )
    assert (held.status, held.amount, held.wallet) == (ReservationStatus.open, 1_100, Wallet.api)
    assert (done.status, done.captured, done.resolved_at) == (
        ReservationStatus.captured,
        900,
        clock.now(),
    )
    assert books(engine, alone) == books(engine, inside)
    assert books(engine, alone)[0] == [(10_000 - 900, 0)]
    check_clean(engine)


@pytest.mark.parametrize("engine_name", BOTH)
def test_refusals_say_why_and_write_nothing(
    engine_name: str, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    account_id = an_account(engine, clock)

    def reserve(amount: int, key: str) -> object:
        return charges.reserve(
            db=engine, clock=clock, account_id=account_id, wallet=Wallet.web, amount=amount, key=key
        )

    with pytest.raises(ledger.InsufficientCredits) as short:
        reserve(10_001, "too-much")
    assert (short.value.available, short.value.needed) == (10_000, 10_001)
    with pytest.raises(ledger.AccountNotFound):
        charges.reserve(
            db=engine, clock=clock, account_id=account_id + 99, wallet=Wallet.web, amount=1, key="x"
        )
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ledger.InvalidAmount):
            reserve(bad, "bad")  # type: ignore[arg-type]
        with pytest.raises(ledger.InvalidAmount):
            charges.capture(db=engine, clock=clock, account_id=account_id, key="k", amount=bad)  # type: ignore[arg-type]
    with pytest.raises(ledger.ReservationNotFound):
        charges.capture(db=engine, clock=clock, account_id=account_id, key="nobody", amount=1)
    assert books(engine, account_id) == ([(10_000, 0)], [("grant", 10_000)])

    first = reserve(2_000, "k")
    assert reserve(2_000, "k").id == first.id  # a live hold replays
    with pytest.raises(ledger.IdempotencyConflict):
        reserve(3_000, "k")
    with pytest.raises(ledger.InvalidAmount):
        charges.capture(db=engine, clock=clock, account_id=account_id, key="k", amount=2_001)
    charges.capture(db=engine, clock=clock, account_id=account_id, key="k", amount=1_500)
    replay = charges.capture(db=engine, clock=clock, account_id=account_id, key="k", amount=1_500)
    assert (replay.status, replay.captured) == (ReservationStatus.captured, 1_500)
    with pytest.raises(ledger.IdempotencyConflict):
        charges.capture(db=engine, clock=clock, account_id=account_id, key="k", amount=1_000)
    with pytest.raises(ledger.ReservationClosed):
        reserve(2_000, "k")  # captured: the key is spent

    reserve(1_000, "late")
    clock.advance(timedelta(seconds=ledger.DEFAULT_RESERVATION_TIMEOUT_SECONDS))
    with pytest.raises(ledger.ReservationTimedOut):
        charges.capture(db=engine, clock=clock, account_id=account_id, key="late", amount=1_000)
    assert books(engine, account_id)[0] == [(10_000 - 1_500, 1_000)]  # not swept yet
    # The lapsed hold's credits are free again at once: a new hold may take all that is left.
    reserve(8_500, "after")
    assert books(engine, account_id)[0] == [(10_000 - 1_500, 8_500)]
    check_clean(engine)


@pytest.mark.postgres
def test_a_connection_used_for_one_statement_goes_back_in_transaction_mode(
    pg_db: Engine, clock: FrozenClock
) -> None:
    url = pg_db.url.render_as_string(hide_password=False)
    engine = make_engine(url)
    # One pooled connection only, so every unit of work below reuses the same one.
    single = sa.create_engine(url, pool_size=1, max_overflow=0)
    try:
        account_id = an_account(engine, clock)
        with one_statement(single) as unit:
            rows = unit.execute("SELECT 1", ()).fetchall()
            assert rows == [(1,)]
            with pytest.raises(RuntimeError, match="one statement"):
                unit.execute("SELECT 2", ())
        # A statement that fails (a key longer than the column) in a one-statement unit ...
        with pytest.raises(sa.exc.DBAPIError), one_statement(single) as unit:
            ledger.reserve_in_one_call(
                unit=unit,
                clock=clock,
                account_id=account_id,
                wallet=Wallet.web,
                amount=1,
                key="k" * 10_000,
            )
        # ... and the next writing unit on that same connection is a transaction again: its
        # error rolls its hold back.
        with pytest.raises(ZeroDivisionError), writing(single) as session:
            assert not session.connection().connection.driver_connection.autocommit  # type: ignore[union-attr]
            ledger.reserve_credits(
                session=session,
                clock=clock,
                account_id=account_id,
                wallet=Wallet.web,
                amount=1_000,
                key="rolled-back",
            )
            _ = 1 / 0
        assert books(engine, account_id) == ([(10_000, 0)], [("grant", 10_000)])
    finally:
        single.dispose()
        engine.dispose()


def test_one_statement_units_are_postgresql_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Its own SQLite file: the scaled pass makes the `db` fixture PostgreSQL.
    sqlite = make_engine(f"sqlite:///{tmp_path}/one.db")
    try:
        assert has_one_statement_units(sqlite) is False
        with pytest.raises(ValueError, match="PostgreSQL"), one_statement(sqlite):
            pass
    finally:
        sqlite.dispose()
