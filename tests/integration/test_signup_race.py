"""Twenty parallel sign-ups with one email: one account, one valid confirmation link, one
trial lot (SQLite and PostgreSQL); parallel first OAuth sign-ins make one account."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

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
from app.services.mail import Outbox
from app.settings import Settings
from app.usecases import accounts as usecases
from tests.mailbox import LINK, Mailbox

SETTINGS = Settings(trial_credits=10, lot_valid_days=90, session_days=30, signups_per_hour=100)

RACERS = 20


def race_sign_ups(engine: Engine, clock: FrozenClock, outbox: Outbox, email: str) -> list[str]:
    """Every racer signs up at once; returns "ok" or the refusal each one got."""
    barrier = threading.Barrier(RACERS)

    def sign_up(n: int) -> str:
        # The same address, written differently: normalisation must not let any through.
        written = email if n % 2 else f"  {email.upper()}{' ' * (n % 3)}"
        barrier.wait(timeout=30)
        try:
            usecases.sign_up(
                db=engine,
                clock=clock,
                settings=SETTINGS,
                outbox=outbox,
                email=written,
                password=f"a fine password {n}",
                address=f"192.0.2.{n}",
            )
        except auth.AuthError as refused:
            return str(refused)
        return "ok"

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(sign_up, range(RACERS)))


def assert_one_account_one_trial(
    engine: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox, email: str
) -> None:
    assert race_sign_ups(engine, clock, outbox, email) == ["ok"] * RACERS  # the same answer
    assert outbox.wait_until_sent()
    links = [m.get_content() for m in mailbox.to(email)]
    assert len(links) == auth.MAILS_PER_EMAIL_PER_HOUR  # no mail flood for the address
    confirmed = 0
    for body in links:
        found = LINK.search(body)
        assert found
        token = parse_qs(urlsplit(found.group(0)).query)["token"][0]
        try:
            usecases.confirm_email(
                db=engine, clock=clock, settings=SETTINGS, token=token, user_agent="race"
            )
        except auth.LinkInvalid:
            continue
        confirmed += 1
    assert confirmed == 1  # only the link of the password the account holds works
    with writing(engine) as session:
        accounts = session.exec(select(Account)).all()
        assert [account.email for account in accounts] == [email]
        lots = session.exec(select(CreditLot)).all()
        assert [(lot.account_id, lot.source, lot.amount) for lot in lots] == [
            (accounts[0].id, LotSource.trial, 10 * MILLI)
        ]
        assert len(session.exec(select(LedgerEntry)).all()) == 1


def test_parallel_sign_ups_on_sqlite(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    assert_one_account_one_trial(db, clock, outbox, mailbox, "race.sqlite@example.com")


@pytest.mark.postgres
def test_parallel_sign_ups_on_postgresql(
    pg_db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    assert_one_account_one_trial(pg_db, clock, outbox, mailbox, "race.pg@example.com")


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
