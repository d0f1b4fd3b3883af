"""CUTOUT_TRIAL_CREDITS and CUTOUT_LOT_VALID_DAYS reach every way an account is made."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading
from app.models.ledger import CreditLot, LotScope, LotSource
from app.services.clock import FrozenClock
from app.services.identity.oauth import VerifiedLogin
from app.settings import Settings
from app.usecases import accounts, operator


def sign_up_on_the_web(
    db: Engine, clock: FrozenClock, settings: Settings, request: pytest.FixtureRequest
) -> int:
    """Sign-up mails a link; the trial comes with following it, as a person would."""
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    accounts.sign_up(
        db=db,
        clock=clock,
        settings=settings,
        outbox=request.getfixturevalue("outbox"),
        email=email,
        password="a long passphrase",
        address="203.0.113.9",
    )
    link = request.getfixturevalue("mailbox").link(email)
    token, _next = accounts.confirm_email(
        db=db,
        clock=clock,
        settings=settings,
        token=parse_qs(urlsplit(link).query)["token"][0],
        user_agent="test",
    )
    summary = accounts.account_for_token(db=db, clock=clock, token=token)
    assert summary is not None
    return summary.id


def sign_in_with_a_provider(
    db: Engine, clock: FrozenClock, settings: Settings, _request: pytest.FixtureRequest
) -> int:
    login = VerifiedLogin(
        provider_id="https://id.example.com", subject="42", email="sso@example.com", next_path="/"
    )
    signed_in = accounts.finish_oauth_sign_in(
        db=db, clock=clock, settings=settings, login=login, user_agent="test"
    )
    return signed_in.account_id


def created_by_an_operator(
    db: Engine, clock: FrozenClock, settings: Settings, _request: pytest.FixtureRequest
) -> int:
    account = operator.create_user(
        db=db, clock=clock, settings=settings, email="ops@example.com", password="long enough"
    )
    assert account.id is not None
    return account.id


@pytest.mark.parametrize(
    "path", [sign_up_on_the_web, sign_in_with_a_provider, created_by_an_operator]
)
def test_every_sign_up_path_grants_the_configured_trial(
    db: Engine, clock: FrozenClock, settings: Settings, path, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(update={"trial_credits": 3, "lot_valid_days": 7})
    account_id = path(db, clock, configured, request)
    with reading(db) as session:
        lots = [
            (lot.source, lot.scope, lot.amount, lot.expires_at - lot.issued_at)
            for lot in session.exec(select(CreditLot).where(CreditLot.account_id == account_id))
        ]
    assert lots == [(LotSource.trial, LotScope.both, 3_000, timedelta(days=7))]
