"""What /account and the page banner say about credits: the shared trial once, expiry ahead."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from app.db import reading, writing
from app.models.ledger import LotScope, LotSource, Wallet
from app.services.billing import ledger
from app.services.clock import FrozenClock
from app.settings import Settings
from app.state.account import wallet_rows
from app.state.auth import expiry_notice
from app.usecases import accounts
from tests.conftest import confirmed_account


def test_the_trial_is_shown_once_as_shared_by_both_wallets(
    db: Engine, clock: FrozenClock, settings: Settings
) -> None:
    person = confirmed_account(db, clock, settings, "ada@example.com")
    with writing(db) as session:
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            amount=2_500,
            scope=LotScope.api,
            source=LotSource.api_pack,
            key="pack",
        )
    board = accounts.dashboard(db=db, clock=clock, account_id=person.id)
    wallets, lots = wallet_rows(board.wallets)
    assert [(w["name"], w["available"]) for w in wallets] == [
        ("Web", "0"),
        ("API", "2.5"),
        ("Both wallets", "10"),  # the trial, once: not 10 on web and 10 more on the API
    ]
    assert [(lot["source"], lot["scope"], lot["remaining"]) for lot in lots] == [
        ("trial", "web and API", "10"),
        ("api pack", "API", "2.5"),
    ]


def test_every_page_warns_a_week_before_credits_expire(
    db: Engine, clock: FrozenClock, settings: Settings
) -> None:
    confirmed_account(db, clock, settings, "bea@example.com")
    token, person = accounts.sign_in(
        db=db,
        clock=clock,
        settings=settings.model_copy(update={"session_days": 120}),  # still signed in later
        email="bea@example.com",
        password="a long passphrase",
        address="203.0.113.9",
        user_agent="test",
    )
    assert expiry_notice(person) == ""
    clock.advance(timedelta(days=83, hours=1))  # the 90-day trial has under 7 days to go
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=person.id,
            wallet=Wallet.web,
            amount=5_500,
            key="job",
        )
    summary = accounts.account_for_token(db=db, clock=clock, token=token)
    assert summary is not None
    assert expiry_notice(summary) == "4.5 credits expire on 2026-04-01 unless used."
    with reading(db) as session:
        mailer_view = ledger.expiring_soon(session=session, clock=clock)
    assert list(summary.expiring) == mailer_view  # the banner and a mailer see the same lots
