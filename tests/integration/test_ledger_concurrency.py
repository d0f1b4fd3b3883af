"""Fifty reservations race for ten credits: exactly ten win, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import writing
from app.models.ledger import CreditLot, Wallet
from app.services.billing import ledger
from app.services.clock import FrozenClock
from tests.conftest import new_account

THREADS = 50


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_fifty_threads_reserving_one_credit_against_ten(
    engine_name: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    with writing(engine) as session:
        account = new_account(session, clock, "race@example.com")
    assert account.id is not None
    start = threading.Barrier(THREADS)

    def reserve(n: int) -> str:
        start.wait()  # all threads hit the ledger at once
        try:
            with writing(engine) as session:
                ledger.reserve_credits(
                    session=session,
                    clock=clock,
                    account_id=account.id,
                    wallet=Wallet.web if n % 2 else Wallet.api,  # the trial lot serves both
                    amount=1_000,
                    key=f"job-{n}",
                )
        except ledger.InsufficientCredits:
            return "refused"
        return "reserved"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(reserve, range(THREADS)))

    with writing(engine) as session:
        lot = session.exec(select(CreditLot).where(CreditLot.account_id == account.id)).one()
        balances = ledger.balance(session=session, clock=clock, account_id=account.id)
        problems = ledger.check_ledger(session=session)
    assert outcomes.count("reserved") == 10
    assert outcomes.count("refused") == THREADS - 10
    assert (lot.remaining, lot.reserved) == (10_000, 10_000)
    assert balances[Wallet.web].available == balances[Wallet.api].available == 0
    assert problems == []
