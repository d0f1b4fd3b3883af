"""Accounts: signing up and in, who is signed in, the account page, keys, closing an account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import reading, writing
from app.models.accounts import Account
from app.models.ledger import Wallet
from app.services.billing import ledger
from app.services.clock import Clock
from app.services.identity import api_keys, auth, oauth
from app.services.identity.api_keys import ApiKeyView
from app.services.jobs import cutouts
from app.services.jobs.cutouts import JobView
from app.settings import Settings


class NotAllowed(PermissionError):
    """The account may not do this now; the message says why."""


@dataclass(frozen=True)
class AccountSummary:
    id: int
    email: str
    plan: str
    web_available: int  # milli-credits
    api_available: int
    # Credits left in lots that expire within a week (soonest first): the banner's warning.
    expiring: tuple[ledger.ExpiryWarning, ...] = ()


@dataclass(frozen=True)
class Dashboard:
    summary: AccountSummary
    wallets: dict[Wallet, ledger.WalletBalance]
    history: ledger.HistoryPage
    jobs: list[JobView]
    keys: list[ApiKeyView]


def summary_of(
    session: Session,
    clock: Clock,
    account: Account,
    wallets: dict[Wallet, ledger.WalletBalance] | None = None,
) -> AccountSummary:
    assert account.id is not None
    if wallets is None:
        wallets = ledger.balance(session=session, clock=clock, account_id=account.id)
    return AccountSummary(
        id=account.id,
        email=account.email,
        plan=account.plan.value,
        web_available=wallets[Wallet.web].available,
        api_available=wallets[Wallet.api].available,
        expiring=tuple(ledger.expiry_warnings_in(wallets, account_id=account.id, now=clock.now())),
    )


def _signed_in(db: Engine, clock: Clock, token: str) -> auth.SignedIn | None:
    with reading(db) as session:
        found = auth.resolve_session(session=session, clock=clock, token=token)
    if found is not None and found.stale:
        with writing(db) as session:
            auth.touch_session(session=session, clock=clock, session_id=found.session_id)
    return found


def account_for_token(*, db: Engine, clock: Clock, token: str) -> AccountSummary | None:
    """The signed-in account with its balances, or None; every handler starts here."""
    found = _signed_in(db, clock, token) if token else None
    if found is None:
        return None
    with reading(db) as session:
        account = session.get(Account, found.account_id)
        return summary_of(session, clock, account) if account else None


def account_id_for_token(*, db: Engine, clock: Clock, token: str) -> int | None:
    """Just who is signed in, for routes that need no balance (every image load asks)."""
    found = _signed_in(db, clock, token) if token else None
    return found.account_id if found else None


def sign_up(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    email: str,
    password: str,
    user_agent: str,
) -> tuple[str, AccountSummary]:
    """A new account with its trial, signed in: the raw session token and the summary."""
    password_hash = auth.check_new_password(password)  # slow, and outside any transaction
    with writing(db) as session:
        account = auth.sign_up(
            session=session,
            clock=clock,
            email=email,
            password_hash=password_hash,
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )
        token = _open_session(session, clock, settings, account, user_agent)
        return token, summary_of(session, clock, account)


def sign_in(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    email: str,
    password: str,
    address: str,
    user_agent: str,
) -> tuple[str, AccountSummary]:
    """Check the password (throttled per email and per address) and open a session."""
    with reading(db) as session:
        check = auth.sign_in_check(session=session, clock=clock, email=email, address=address)
    ok = auth.password_matches(check, password)  # slow, and outside any transaction
    with writing(db) as session:
        # A failed attempt is committed too: the throttle must see it.
        account = auth.record_sign_in(
            session=session, clock=clock, check=check, ok=ok, password=password
        )
        if account is not None:
            token = _open_session(session, clock, settings, account, user_agent)
            return token, summary_of(session, clock, account)
    raise auth.WrongCredentials()


def _open_session(
    session: Session, clock: Clock, settings: Settings, account: Account, user_agent: str
) -> str:
    assert account.id is not None
    return auth.create_session(
        session=session,
        clock=clock,
        account_id=account.id,
        user_agent=user_agent,
        lifetime=timedelta(days=settings.session_days),
    )


def finish_oauth_sign_in(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    login: oauth.VerifiedLogin,
    user_agent: str | None,
) -> oauth.OAuthSignIn:
    """A login the provider vouched for: into its account, created with its trial when new."""
    with writing(db) as session:
        return oauth.open_session_for(
            session=session,
            clock=clock,
            login=login,
            user_agent=user_agent,
            lifetime=timedelta(days=settings.session_days),
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )


def sign_out(*, db: Engine, clock: Clock, token: str) -> None:
    with writing(db) as session:
        auth.sign_out(session=session, clock=clock, token=token)


def sign_out_everywhere(*, db: Engine, clock: Clock, account_id: int) -> None:
    with writing(db) as session:
        auth.sign_out_everywhere(session=session, clock=clock, account_id=account_id)


def change_password(
    *, db: Engine, clock: Clock, account_id: int, current: str, new: str, keep_token: str
) -> None:
    """Check the current password and set the new one; other browsers are signed out."""
    with reading(db) as session:
        stored = auth.password_hash_of(session=session, account_id=account_id)
    # Both hashes are slow on purpose: neither runs inside a transaction.
    if not auth.current_password_ok(stored, current):
        raise auth.WrongPassword()
    new_hash = auth.check_new_password(new)
    with writing(db) as session:
        auth.set_password(
            session=session,
            clock=clock,
            account_id=account_id,
            expected_hash=stored,
            new_hash=new_hash,
            keep_token=keep_token,
        )


def delete_account(*, db: Engine, clock: Clock, settings: Settings, account_id: int) -> None:
    """Photos, keys, sessions, identities and the email go; the anonymised ledger stays."""
    with writing(db) as session:
        cutouts.delete_jobs(
            session=session, settings=settings, owner=auth.account_owner(account_id)
        )
        auth.delete_account(session=session, clock=clock, account_id=account_id)


def dashboard(*, db: Engine, clock: Clock, account_id: int, page: int = 1) -> Dashboard:
    """Everything the account page shows, from one consistent snapshot."""
    with reading(db) as session:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise NotAllowed("This account no longer exists.")
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
        return Dashboard(
            summary=summary_of(session, clock, account, wallets),
            wallets=wallets,
            history=ledger.history(session=session, account_id=account_id, page=page, per_page=20),
            jobs=cutouts.list_jobs(session=session, owner=auth.account_owner(account_id), limit=20),
            keys=api_keys.list_api_keys(session=session, account_id=account_id),
        )


def create_api_key(*, db: Engine, clock: Clock, account_id: int, name: str) -> tuple[str, str]:
    """The raw key (shown once) and its display prefix."""
    with writing(db) as session:
        created = api_keys.create_api_key(
            session=session, clock=clock, account_id=account_id, name=name
        )
        return created.raw_key, created.view.prefix


def revoke_api_key(*, db: Engine, clock: Clock, account_id: int, key_id: int) -> None:
    with writing(db) as session:
        api_keys.revoke_api_key(session=session, clock=clock, account_id=account_id, key_id=key_id)
