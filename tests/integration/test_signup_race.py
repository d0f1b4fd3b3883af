"""Twenty parallel sign-ups with one email: one account, one trial lot (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import writing
from app.models.accounts import Account
from app.models.auth import OAuthIdentity
from app.models.ledger import CreditLot, LedgerEntry, LotSource
from app.services.billing.pricing import MILLI
from app.services.clock import FrozenClock
from app.services.identity import auth
from app.settings import Settings
from app.usecases import accounts as usecases

SETTINGS = Settings(trial_credits=10, lot_valid_days=90, session_days=30)

RACERS = 20


def race_sign_ups(engine: Engine, clock: FrozenClock) -> list[str]:
    """Every racer signs up at once; returns "ok" or the refusal each one got."""
    barrier = threading.Barrier(RACERS)

    def sign_up(n: int) -> str:
        # The same address, written differently: normalisation must not let any through.
        email = "race@example.com" if n % 2 else f"  Race@EXAMPLE.com{' ' * (n % 3)}"
        barrier.wait(timeout=30)
        try:
            usecases.sign_up(
                db=engine,
                clock=clock,
                settings=SETTINGS,
                email=email,
                password="a fine password",
                user_agent="race",
            )
        except auth.SignUpRefused as refused:
            return str(refused)
        return "ok"

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(sign_up, range(RACERS)))


def assert_one_account_one_trial(engine: Engine, outcomes: list[str]) -> None:
    assert outcomes.count("ok") == 1, outcomes
    refusals = [outcome for outcome in outcomes if outcome != "ok"]
    assert refusals == ["An account with race@example.com already exists."] * (RACERS - 1)
    with writing(engine) as session:
        accounts = session.exec(select(Account)).all()
        assert [account.email for account in accounts] == ["race@example.com"]
        lots = session.exec(select(CreditLot)).all()
        assert [(lot.account_id, lot.source, lot.amount) for lot in lots] == [
            (accounts[0].id, LotSource.trial, 10 * MILLI)
        ]
        assert len(session.exec(select(LedgerEntry)).all()) == 1


def test_parallel_sign_ups_on_sqlite(db: Engine, clock: FrozenClock) -> None:
    assert_one_account_one_trial(db, race_sign_ups(db, clock))


@pytest.mark.postgres
def test_parallel_sign_ups_on_postgresql(pg_db: Engine, clock: FrozenClock) -> None:
    assert_one_account_one_trial(pg_db, race_sign_ups(pg_db, clock))


def race_oauth_first_sign_ins(engine: Engine, clock: FrozenClock) -> set[int]:
    """Double-clicked callbacks: one provider login arriving many times at once."""
    barrier = threading.Barrier(RACERS)

    def sign_in(_n: int) -> int:
        barrier.wait(timeout=30)
        with writing(engine) as session:
            account, _created = auth.find_or_create_oauth_account(
                session=session,
                clock=clock,
                provider="https://id.example",
                subject="s-1",
                email="race@example.com",
                trial_credits=10,
                lot_valid_days=90,
            )
            assert account.id is not None
            return account.id

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return set(pool.map(sign_in, range(RACERS)))


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_parallel_first_oauth_sign_ins_make_one_account(
    engine_name: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    assert len(race_oauth_first_sign_ins(engine, clock)) == 1
    with writing(engine) as session:
        assert len(session.exec(select(Account)).all()) == 1
        assert len(session.exec(select(CreditLot)).all()) == 1
        assert len(session.exec(select(OAuthIdentity)).all()) == 1
