"""Charges sharing commits (app.db.GroupCommit): durable before answered, failures stay apart.

Run on SQLite and on PostgreSQL, with real threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from app.db import GroupCommit, reading, writing
from app.models.ledger import Wallet
from app.services.billing import ledger
from app.services.clock import FrozenClock
from tests.conftest import new_account

ENGINES = ["db", pytest.param("pg_db", marks=pytest.mark.postgres)]
THREADS = 8


def accounts(engine: Engine, clock: FrozenClock, count: int) -> list[int]:
    ids = []
    with writing(engine) as session:
        for n in range(count):
            account = new_account(session, clock, f"group-{n}@example.com")
            assert account.id is not None
            ids.append(account.id)
    return ids


@pytest.mark.parametrize("engine_name", ENGINES)
def test_threads_sharing_commits_charge_exactly_and_each_answer_is_already_committed(
    engine_name: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    ids = accounts(engine, clock, THREADS)
    commit = GroupCommit(engine)
    start = threading.Barrier(THREADS)
    unseen: list[str] = []

    def charge(account_id: int) -> None:
        start.wait()
        for n in range(5):
            key = f"job-{n}"
            commit.run(
                lambda s, k=key: ledger.reserve_credits(
                    session=s,
                    clock=clock,
                    account_id=account_id,
                    wallet=Wallet.web,
                    amount=1_000,
                    key=k,
                )
            )
            # Another connection sees the hold as soon as the caller is answered.
            with reading(engine) as other:
                if ledger.find_reservation(session=other, account_id=account_id, key=key) is None:
                    unseen.append(key)
            commit.run(
                lambda s, k=key: ledger.capture_reservation(
                    session=s, clock=clock, account_id=account_id, key=k, amount=600
                )
            )

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(charge, ids))

    with reading(engine) as session:
        available = [
            ledger.balance(session=session, clock=clock, account_id=a)[Wallet.web].available
            for a in ids
        ]
        problems = ledger.check_ledger(session=session)
    assert unseen == []
    assert available == [10_000 - 5 * 600] * THREADS
    assert commit.units == 2 * 5 * THREADS
    assert problems == []


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_refused_charge_is_rolled_back_alone_and_leaves_no_transaction_open(
    engine_name: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    poor, rich = accounts(engine, clock, 2)
    commit = GroupCommit(engine)
    other_done = threading.Event()

    def reserve(account_id: int, amount: int, key: str) -> object:
        return commit.run(
            lambda s: ledger.reserve_credits(
                session=s,
                clock=clock,
                account_id=account_id,
                wallet=Wallet.web,
                amount=amount,
                key=key,
            )
        )

    def too_much(session):  # type: ignore[no-untyped-def]
        # Writes first, then is refused: while it holds the shared transaction another
        # caller queues up, so the two usually share a batch.
        threading.Thread(
            target=lambda: (reserve(rich, 2_000, "fine"), other_done.set()), daemon=True
        ).start()
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=poor,
            wallet=Wallet.web,
            amount=4_000,
            key="first",
        )
        return ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=poor,
            wallet=Wallet.web,
            amount=7_000,
            key="second",
        )

    with pytest.raises(ledger.InsufficientCredits):
        commit.run(too_much)
    assert other_done.wait(timeout=60)
    # Nothing keeps the shared transaction (on SQLite, the write lock) open: a plain unit
    # of work from another connection writes at once.
    with writing(engine) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=poor,
            wallet=Wallet.web,
            amount=1_000,
            key="after",
        )
    with reading(engine) as session:
        held = {
            key: ledger.find_reservation(session=session, account_id=poor, key=key)
            for key in ("first", "second", "after")
        }
        fine = ledger.find_reservation(session=session, account_id=rich, key="fine")
        problems = ledger.check_ledger(session=session)
    assert held["first"] is None and held["second"] is None, "the refused unit left nothing"
    assert held["after"] is not None
    assert fine is not None and fine.amount == 2_000
    assert problems == []
