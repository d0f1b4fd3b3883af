"""Accounts: signing up (confirmed by mail) and in, who is signed in, password resets, the
account page, keys, closing an account.

Who is signed in is asked by session reference (`auth.session_ref`, the hash the database
keeps) so that Reflex state never holds a token; HTTP routes hash the cookie's token first.
Mails go out through the injected outbox only after their unit of work has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import reading, writing
from app.models.accounts import Account
from app.models.auth import LinkPurpose
from app.models.ledger import Wallet
from app.routes import safe_next
from app.services.billing import ledger
from app.services.clock import Clock
from app.services.identity import api_keys, auth, mails, oauth
from app.services.identity.api_keys import ApiKeyView
from app.services.jobs import cutouts
from app.services.jobs.cutouts import JobView
from app.services.mail import Mail, Outbox
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


def signed_in(*, db: Engine, clock: Clock, ref: str) -> auth.SignedIn | None:
    """The session behind a reference, checked against the database (None when it ended)."""
    with reading(db) as session:
        found = auth.resolve_session_ref(session=session, clock=clock, ref=ref)
    if found is not None and found.stale:
        with writing(db) as session:
            auth.touch_session(session=session, clock=clock, session_id=found.session_id)
    return found


def account_for_ref(*, db: Engine, clock: Clock, ref: str) -> AccountSummary | None:
    """The signed-in account with its balances, or None; every event handler starts here."""
    found = signed_in(db=db, clock=clock, ref=ref) if ref else None
    if found is None:
        return None
    with reading(db) as session:
        account = session.get(Account, found.account_id)
        return summary_of(session, clock, account) if account else None


def account_for_token(*, db: Engine, clock: Clock, token: str) -> AccountSummary | None:
    """As `account_for_ref`, for a raw token from a cookie or header."""
    return account_for_ref(db=db, clock=clock, ref=auth.session_ref(token) if token else "")


def account_id_for_ref(*, db: Engine, clock: Clock, ref: str) -> int | None:
    """Just who is signed in, for checks that need no balance."""
    found = signed_in(db=db, clock=clock, ref=ref) if ref else None
    return found.account_id if found else None


def account_id_for_token(*, db: Engine, clock: Clock, token: str) -> int | None:
    """Just who is signed in, for routes that need no balance (every image load asks)."""
    return account_id_for_ref(db=db, clock=clock, ref=auth.session_ref(token) if token else "")


def sign_up(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    outbox: Outbox,
    email: str,
    password: str,
    confirm: str | None = None,
    address: str,
    next_path: str = "/",
) -> None:
    """Register an address and mail it a confirmation link (the trial comes with the
    confirmation). The same answer for every address, taken or not: an address that already
    has an account gets a mail saying so instead. AuthError for a bad address or password,
    or when the address asked too often."""
    normalised = auth.normalised_email(email)
    if confirm is not None and confirm != password:
        raise auth.PasswordsDiffer()
    with reading(db) as session:
        auth.mail_request_check(
            session=session, clock=clock, address=address, per_hour=settings.signups_per_hour
        )
    password_hash = auth.check_new_password(password, email=normalised)  # slow, no transaction
    mail: Mail | None = None
    with writing(db) as session:
        auth.record_mail_request(session=session, clock=clock, address=address)
        registered = auth.sign_up(
            session=session, clock=clock, email=normalised, password_hash=password_hash
        )
        if registered.outcome == "exists":
            mail = mails.already_registered(to=normalised, public_url=settings.public_url)
        elif registered.outcome != "limited":
            mail = _confirmation(session, clock, settings, registered.account, next_path)
    if mail is not None:
        outbox.send_later(mail)


def resend_confirmation(
    *, db: Engine, clock: Clock, settings: Settings, outbox: Outbox, email: str, address: str
) -> None:
    """A new confirmation link for an unconfirmed sign-up; silently nothing for any other
    address (the page answers the same either way)."""
    try:
        normalised = auth.normalised_email(email)
    except auth.SignUpRefused:
        return
    mail: Mail | None = None
    with writing(db) as session:
        auth.mail_request_check(
            session=session, clock=clock, address=address, per_hour=settings.signups_per_hour
        )
        auth.record_mail_request(session=session, clock=clock, address=address)
        account = auth.find_account(session=session, email=normalised)
        if account is not None and account.email_verified_at is None and account.password_hash:
            mail = _confirmation(session, clock, settings, account, "/")
    if mail is not None:
        outbox.send_later(mail)


def _confirmation(
    session: Session, clock: Clock, settings: Settings, account: Account, next_path: str
) -> Mail | None:
    lifetime = timedelta(hours=settings.verify_link_hours)
    token = auth.issue_link(
        session=session,
        clock=clock,
        account=account,
        purpose=LinkPurpose.verify,
        lifetime=lifetime,
        next_path=safe_next(next_path),
    )
    if token is None:
        return None  # this address had its share of mail this hour
    return mails.confirm_address(
        to=account.email, public_url=settings.public_url, token=token, lifetime=lifetime
    )


def confirm_email(
    *, db: Engine, clock: Clock, settings: Settings, token: str, user_agent: str
) -> tuple[str, str]:
    """Spend a confirmation link: the address is confirmed, the trial granted (once per
    address, ever) and this browser signed in. The new session token and where to go next;
    LinkInvalid for a used, expired or superseded link."""
    with writing(db) as session:
        account, next_path = auth.use_link(
            session=session, clock=clock, token=token, purpose=LinkPurpose.verify
        )
        auth.confirm_email(
            session=session,
            clock=clock,
            account=account,
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )
        return _open_session(session, clock, settings, account, user_agent), next_path


def request_password_reset(
    *, db: Engine, clock: Clock, settings: Settings, outbox: Outbox, email: str, address: str
) -> None:
    """Mail a reset link if the address has an account; the same answer if it has none."""
    try:
        normalised = auth.normalised_email(email)
    except auth.SignUpRefused:
        return
    mail: Mail | None = None
    lifetime = timedelta(minutes=settings.reset_link_minutes)
    with writing(db) as session:
        auth.mail_request_check(
            session=session, clock=clock, address=address, per_hour=settings.signups_per_hour
        )
        auth.record_mail_request(session=session, clock=clock, address=address)
        account = auth.find_account(session=session, email=normalised)
        if account is not None:
            token = auth.issue_link(
                session=session,
                clock=clock,
                account=account,
                purpose=LinkPurpose.reset,
                lifetime=lifetime,
            )
            if token is not None:
                mail = mails.reset_password(
                    to=account.email,
                    public_url=settings.public_url,
                    token=token,
                    lifetime=lifetime,
                )
    if mail is not None:
        outbox.send_later(mail)


def reset_password(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    token: str,
    password: str,
    confirm: str,
    user_agent: str,
) -> str:
    """Spend a reset link: the new password replaces the old, every session ends, and this
    browser is signed in (the new token). Following the link also confirms the address."""
    if password != confirm:
        raise auth.PasswordsDiffer()
    with reading(db) as session:
        email = auth.peek_link(
            session=session, clock=clock, token=token, purpose=LinkPurpose.reset
        ).email
    new_hash = auth.check_new_password(password, email=email)  # slow, no transaction
    with writing(db) as session:
        account, _ = auth.use_link(
            session=session, clock=clock, token=token, purpose=LinkPurpose.reset
        )
        assert account.id is not None
        auth.set_password(
            session=session,
            clock=clock,
            account_id=account.id,
            expected_hash=account.password_hash,
            new_hash=new_hash,
        )
        auth.confirm_email(
            session=session,
            clock=clock,
            account=account,
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )
        return _open_session(session, clock, settings, account, user_agent)


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
    """Check the password (throttled per email and per address) and open a session.
    An account whose address is not confirmed yet gets EmailNotConfirmed instead."""
    with reading(db) as session:
        check = auth.sign_in_check(session=session, clock=clock, email=email, address=address)
    ok = auth.password_matches(check, password)  # slow, and outside any transaction
    with writing(db) as session:
        # A failed attempt is committed too: the throttle must see it.
        account = auth.record_sign_in(
            session=session, clock=clock, check=check, ok=ok, password=password
        )
        if account is not None and account.email_verified_at is not None:
            token = _open_session(session, clock, settings, account, user_agent)
            return token, summary_of(session, clock, account)
    if account is not None:
        raise auth.EmailNotConfirmed()
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
        auth.sign_out(session=session, clock=clock, ref=auth.session_ref(token))


def sign_out_everywhere(*, db: Engine, clock: Clock, account_id: int) -> None:
    with writing(db) as session:
        auth.sign_out_everywhere(session=session, clock=clock, account_id=account_id)


def _prove_owner(
    db: Engine, clock: Clock, ref: str, current: str, address: str
) -> tuple[auth.SignedIn, auth.SignInCheck]:
    """The session's account, once the person proved they own it (its current password, or
    a fresh provider sign-in for an account without one). Throttled like signing in."""
    found = signed_in(db=db, clock=clock, ref=ref)
    if found is None:
        raise auth.AccountGone()
    with reading(db) as session:
        check = auth.reauth_check(
            session=session, clock=clock, account_id=found.account_id, address=address
        )
    ok = auth.owner_proven(check, current, found, clock.now())  # slow: outside transactions
    with writing(db) as session:
        auth.record_attempt(session=session, clock=clock, check=check, ok=ok)
    if not ok:
        raise auth.WrongPassword()
    return found, check


def change_password(
    *, db: Engine, clock: Clock, ref: str, current: str, new: str, address: str
) -> None:
    """Check the current password and set the new one; other browsers are signed out."""
    found, check = _prove_owner(db, clock, ref, current, address)
    new_hash = auth.check_new_password(new, email=found.email)  # slow, no transaction
    with writing(db) as session:
        auth.set_password(
            session=session,
            clock=clock,
            account_id=found.account_id,
            expected_hash=check.password_hash,
            new_hash=new_hash,
            keep_ref=ref,
        )


def confirm_owner(*, db: Engine, clock: Clock, ref: str, password: str, address: str) -> int:
    """The session's account id once the person proved they own it (see `_prove_owner`), as
    closing the account asks first."""
    found, _ = _prove_owner(db, clock, ref, password, address)
    return found.account_id


def delete_account(*, db: Engine, clock: Clock, settings: Settings, account_id: int) -> None:
    """Photos, keys, sessions, identities, links and the email go; the anonymised ledger and
    the trial claim (a salted hash) stay."""
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
