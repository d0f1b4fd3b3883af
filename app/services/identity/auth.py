"""Signing up (confirmed by a mailed link), signing in (with a throttle), browser sessions,
password resets, and closing an account.

Password hashing is deliberately slow, so it never runs inside a transaction: the use-case
layer reads what it needs (`sign_in_check`, `reauth_check`, `peek_link`), hashes or verifies
outside any unit of work, then writes the outcome (`record_sign_in`, `set_password`, ...).

No answer tells whether an address has an account: sign-up and "forgot password" answer the
same for every address (what differs goes into the mail, which only the address's owner reads),
and a password sign-in costs one argon2 verification whatever the address.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.models.accounts import Account
from app.models.auth import (
    ApiKey,
    EmailLink,
    LinkPurpose,
    OAuthIdentity,
    SignInAttempt,
    UserSession,
)
from app.services.clock import Clock, as_utc
from app.services.identity import accounts

# Resolving a session happens on every page load; writing last_seen each time would turn reads
# into writes (and SQLite has one writer), so it is refreshed at most this often.
LAST_SEEN_RESOLUTION = timedelta(minutes=5)
USER_AGENT_LENGTH = 200
# An account without a password proves it is its owner by a sign-in this recent (through its
# provider, or a mailed link) before it may delete itself or set a password.
FRESH_SIGN_IN = timedelta(minutes=10)
# However many requests come from different addresses, one address gets at most this many
# verification or reset mails an hour.
MAILS_PER_EMAIL_PER_HOUR = 5
MAIL_REQUEST_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ThrottleRule:
    """After `free` failures within `window`, each further failure doubles the wait."""

    free: int
    window: timedelta
    base_delay: timedelta
    max_delay: timedelta
    # For an email, a correct password ends a run of failures. Not for an address: anyone with
    # an account of their own could then wipe the address's record between guesses.
    success_resets: bool

    def wait_after(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        # The exponent is capped so a long run of failures cannot overflow the multiplication.
        factor = 2 ** min(failures - self.free, 20)
        return min(self.base_delay * factor, self.max_delay)


# One email is one person: few guesses. One address can be a whole office behind NAT: more.
EMAIL_THROTTLE = ThrottleRule(
    free=5,
    window=timedelta(hours=1),
    base_delay=timedelta(seconds=2),
    max_delay=timedelta(minutes=15),
    success_resets=True,
)
ADDRESS_THROTTLE = ThrottleRule(
    free=20,
    window=timedelta(hours=1),
    base_delay=timedelta(seconds=2),
    max_delay=timedelta(minutes=15),
    success_resets=False,
)


class AuthError(ValueError):
    """Signing up or in failed; the message is safe to show the person.

    `code` names the failure in a redirect (`/signin?error=<code>`): pages show the message
    for a code (`message_for`), never text taken from the address bar.
    """

    code = "failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or MESSAGES[self.code])


class SignUpRefused(AuthError):
    """Not an email address Cutout accepts; carries accounts' own message."""

    code = "email"


class WrongCredentials(AuthError):
    # Same words whether the email exists or not: the form must not reveal who has an account.
    code = "credentials"


class _Waiting(AuthError):
    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after_seconds = max(1, math.ceil(retry_after.total_seconds()))
        super().__init__(message_for(self.code, self.retry_after_seconds))


class TooManyAttempts(_Waiting):
    code = "throttled"


class TooManyRequests(_Waiting):
    """Too many sign-ups or mailed links asked for from one address."""

    code = "busy"


class WrongPassword(AuthError):
    code = "current"


class PasswordRefused(AuthError):
    """The new password does not meet the rules; `code` says which (a PASSWORD_PROBLEMS key)."""

    def __init__(self, problem: str) -> None:
        self.code = problem
        super().__init__()


class PasswordsDiffer(AuthError):
    code = "differ"


class EmailNotConfirmed(AuthError):
    code = "unconfirmed"


class LinkInvalid(AuthError):
    code = "link"


class FreshSignInNeeded(AuthError):
    code = "fresh"


class AccountGone(AuthError):
    code = "gone"


def _sentence(message: str) -> str:
    """accounts' messages are lower-case fragments; the forms show sentences."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


MESSAGES: dict[str, str] = {
    "failed": "That did not work. Please try again.",
    "email": "That is not an email address Cutout can use.",
    "credentials": "Wrong email or password.",
    "throttled": "Too many sign-in attempts. Try again in {seconds} s.",
    "busy": "Too many requests from your network. Try again in {minutes} min.",
    "current": "The current password is wrong.",
    "differ": "The two passwords differ.",
    "unconfirmed": (
        "Confirm your email address first: follow the link in the mail we sent. "
        "No mail? Send it again below."
    ),
    "link": "This link has expired or was already used. Ask for a new one below.",
    "fresh": (
        "For your safety, sign in again (through the same provider), then try again "
        "within 10 minutes."
    ),
    "gone": "This account no longer exists.",
}
MESSAGES.update({code: _sentence(text) for code, text in accounts.PASSWORD_PROBLEMS.items()})


def message_for(code: str, seconds: int = 0) -> str:
    """The sentence for a failure code (unknown codes get a neutral one)."""
    template = MESSAGES.get(code, MESSAGES["failed"])
    return template.format(seconds=max(1, seconds), minutes=max(1, math.ceil(seconds / 60)))


def account_owner(account_id: int) -> str:
    """The owner string of an account's cutout jobs (browsers' jobs use "browser:<hash>")."""
    return f"account:{account_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_ref(token: str) -> str:
    """What stands for a browser's session where its token must not be kept (Reflex state):
    the hash the database already holds, so it is checked there on every use."""
    return token_hash(token)


def normalised_email(email: str) -> str:
    """The address as stored; SignUpRefused saying why it cannot be one."""
    try:
        return accounts.normalise_email(email)
    except accounts.AccountError as refused:
        raise SignUpRefused() from refused


def check_new_password(password: str, *, email: str = "") -> str:
    """The password's hash, or PasswordRefused saying why. Slow: call outside transactions."""
    problem = accounts.password_problem(password, email=email)
    if problem:
        raise PasswordRefused(problem)
    return accounts.hash_password(password, email=email)


@dataclass(frozen=True)
class Registration:
    """What a sign-up did. The person sees the same page for all three; the mail differs."""

    account: Account
    # "new": made unconfirmed; "renewed": an unconfirmed account for that address took the new
    # password (whoever confirms by mail owns it); "limited": the same, but the address had its
    # share of mail this hour, so nothing changed; "exists": the address already has a
    # confirmed account, which is left untouched.
    outcome: str


def sign_up(*, session: Session, clock: Clock, email: str, password_hash: str) -> Registration:
    """Register a password account for an address, unconfirmed and without its trial (granted
    on confirmation). Races on one address yield one account."""
    normalised = normalised_email(email)
    existing = _account_by_email(session, normalised, lock=True)
    if existing is None:
        try:
            with session.begin_nested():
                account = accounts.create_account(
                    session=session,
                    email=normalised,
                    password_hash=password_hash,
                    clock=clock,
                    trial_credits=0,
                    lot_valid_days=1,
                    verified=False,
                )
            return Registration(account, "new")
        except accounts.EmailTaken:
            existing = _account_by_email(session, normalised, lock=True)
            if existing is None:
                raise
    if existing.email_verified_at is not None:
        return Registration(existing, "exists")
    if _links_sent(session, clock, existing.email) >= MAILS_PER_EMAIL_PER_HOUR:
        # No new link could be mailed: keep the password the last mailed link confirms.
        return Registration(existing, "limited")
    existing.password_hash = password_hash
    session.add(existing)
    session.flush()
    return Registration(existing, "renewed")


@dataclass(frozen=True)
class SignInCheck:
    """What a password sign-in needs to know before the (slow) password check."""

    attempt_keys: tuple[str, ...]
    account_id: int | None
    password_hash: str | None
    confirmed: bool = True


def sign_in_check(*, session: Session, clock: Clock, email: str, address: str) -> SignInCheck:
    """Refuse with TooManyAttempts while the email or the address is cooling down; else say
    which account and hash the password must be checked against (read-only)."""
    now = clock.now()
    try:
        normalised = accounts.normalise_email(email)
    except accounts.InvalidEmail:
        # Still counted against the address, so junk input is not a free probe.
        normalised = email.strip().lower()[:254]
    keys = [
        (_attempt_key("email", normalised), EMAIL_THROTTLE),
        (_attempt_key("address", address), ADDRESS_THROTTLE),
    ]
    wait = max((_wait(session, key, rule, now) for key, rule in keys), default=timedelta(0))
    if wait > timedelta(0):
        raise TooManyAttempts(wait)
    account = _account_by_email(session, normalised)
    return SignInCheck(
        attempt_keys=tuple(key for key, _ in keys),
        account_id=account.id if account else None,
        password_hash=account.password_hash if account else None,
        confirmed=bool(account and account.email_verified_at is not None),
    )


def reauth_check(*, session: Session, clock: Clock, account_id: int, address: str) -> SignInCheck:
    """Asking a signed-in person for their password again (to change it or delete the
    account) counts against the same throttle as signing in: a stolen session cannot guess."""
    account = _live_account(session, account_id)
    now = clock.now()
    keys = [
        (_attempt_key("email", account.email), EMAIL_THROTTLE),
        (_attempt_key("address", address), ADDRESS_THROTTLE),
    ]
    wait = max(_wait(session, key, rule, now) for key, rule in keys)
    if wait > timedelta(0):
        raise TooManyAttempts(wait)
    return SignInCheck(
        attempt_keys=tuple(key for key, _ in keys),
        account_id=account.id,
        password_hash=account.password_hash,
    )


def record_attempt(*, session: Session, clock: Clock, check: SignInCheck, ok: bool) -> None:
    """Count a password check; committed even when the caller then refuses."""
    now = clock.now()
    for key in check.attempt_keys:
        session.add(SignInAttempt(key=key, at=now, success=ok))


def password_matches(check: SignInCheck, password: str) -> bool:
    """The slow part. An unknown email costs the same time as a real check, so timing does not
    reveal who has an account."""
    if check.password_hash is None:
        accounts.verify_password(_dummy_hash(), password)
        return False
    return accounts.verify_password(check.password_hash, password)


def record_sign_in(
    *, session: Session, clock: Clock, check: SignInCheck, ok: bool, password: str
) -> Account | None:
    """Count the attempt; the account when the password matched and nothing changed since.

    On None the caller commits anyway (an uncounted failure would make the throttle useless)
    and then refuses with WrongCredentials.
    """
    account = session.get(Account, check.account_id) if check.account_id else None
    ok = bool(
        ok
        and account is not None
        and account.deleted_at is None
        and account.password_hash == check.password_hash  # no password change in between
    )
    record_attempt(session=session, clock=clock, check=check, ok=ok)
    if not ok or account is None:
        return None
    assert account.password_hash is not None
    if accounts.password_needs_rehash(account.password_hash):
        account.password_hash = accounts.hash_password(password)
        session.add(account)
    return account


def mail_request_check(*, session: Session, clock: Clock, address: str, per_hour: int) -> None:
    """Refuse (TooManyRequests) an address that asked for `per_hour` sign-ups or mailed links
    within the last hour; one address cannot flood mailboxes or fill the accounts table."""
    now = clock.now()
    rows = session.exec(
        select(SignInAttempt.at)
        .where(
            SignInAttempt.key == _attempt_key("mail-request", address),
            SignInAttempt.at > now - MAIL_REQUEST_WINDOW,
        )
        .order_by(col(SignInAttempt.at))
    ).all()
    if len(rows) >= per_hour:
        oldest = as_utc(rows[len(rows) - per_hour])
        raise TooManyRequests(oldest + MAIL_REQUEST_WINDOW - now)


def record_mail_request(*, session: Session, clock: Clock, address: str) -> None:
    session.add(
        SignInAttempt(key=_attempt_key("mail-request", address), at=clock.now(), success=True)
    )


def issue_link(
    *,
    session: Session,
    clock: Clock,
    account: Account,
    purpose: LinkPurpose,
    lifetime: timedelta,
    next_path: str = "/",
) -> str | None:
    """A new one-time link token for the account's address (only its hash is stored), or None
    when that address was sent MAILS_PER_EMAIL_PER_HOUR links within the hour already."""
    assert account.id is not None
    now = clock.now()
    if _links_sent(session, clock, account.email) >= MAILS_PER_EMAIL_PER_HOUR:
        return None
    token = secrets.token_urlsafe(32)
    session.add(
        EmailLink(
            token_hash=token_hash(token),
            account_id=account.id,
            purpose=purpose,
            email=account.email,
            password_hash=account.password_hash if purpose is LinkPurpose.verify else None,
            next_path=next_path[:500],
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def _links_sent(session: Session, clock: Clock, email: str) -> int:
    since = clock.now() - MAIL_REQUEST_WINDOW
    return session.exec(
        select(func.count())
        .select_from(EmailLink)
        .where(EmailLink.email == email, col(EmailLink.created_at) > since)
    ).one()


def peek_link(*, session: Session, clock: Clock, token: str, purpose: LinkPurpose) -> Account:
    """The account a link is for, without using it up; LinkInvalid when it cannot be used."""
    return _usable_link(session, clock, token, purpose)[1]


def use_link(
    *, session: Session, clock: Clock, token: str, purpose: LinkPurpose
) -> tuple[Account, str]:
    """Spend a link (exactly once, even when two requests race): its account and next path."""
    link, account = _usable_link(session, clock, token, purpose)
    spent = session.exec(  # type: ignore[call-overload]
        update(EmailLink)
        .where(col(EmailLink.id) == link.id, col(EmailLink.used_at).is_(None))
        .values(used_at=clock.now())
    )
    if spent.rowcount != 1:
        raise LinkInvalid()
    return account, link.next_path


def _usable_link(
    session: Session, clock: Clock, token: str, purpose: LinkPurpose
) -> tuple[EmailLink, Account]:
    link = session.exec(
        select(EmailLink).where(EmailLink.token_hash == token_hash(token or ""))
    ).first()
    if (
        link is None
        or link.purpose != purpose
        or link.used_at is not None
        or as_utc(link.expires_at) <= clock.now()
    ):
        raise LinkInvalid()
    account = session.get(Account, link.account_id)
    if (
        account is None
        or account.deleted_at is not None
        or account.email != link.email
        # A verify link confirms the sign-up that asked for it, not a later one's password.
        or (purpose is LinkPurpose.verify and account.password_hash != link.password_hash)
    ):
        raise LinkInvalid()
    return link, account


def prune_email_links(*, session: Session, clock: Clock) -> int:
    """Forget links a day past their expiry (they name an address); for a periodic sweep."""
    horizon = clock.now() - timedelta(days=1)
    result = session.exec(delete(EmailLink).where(col(EmailLink.expires_at) < horizon))
    return int(result.rowcount or 0)


def confirm_email(
    *, session: Session, clock: Clock, account: Account, trial_credits: int, lot_valid_days: int
) -> None:
    """The address is the account owner's: note it, and grant the trial if it never had one."""
    if account.email_verified_at is None:
        account.email_verified_at = clock.now()
        session.add(account)
        session.flush()
    accounts.claim_trial(
        session=session,
        clock=clock,
        account=account,
        credits=trial_credits,
        valid_days=lot_valid_days,
    )


def prune_sign_in_attempts(*, session: Session, clock: Clock) -> int:
    """Forget attempts older than any throttle window; for a periodic sweep."""
    horizon = clock.now() - max(EMAIL_THROTTLE.window, ADDRESS_THROTTLE.window, MAIL_REQUEST_WINDOW)
    result = session.exec(delete(SignInAttempt).where(col(SignInAttempt.at) < horizon))
    return int(result.rowcount or 0)


def create_session(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    lifetime: timedelta,
    user_agent: str | None = None,
) -> str:
    """A new session for the account; returns the raw token, which is never stored."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        UserSession(
            token_hash=token_hash(token),
            account_id=account_id,
            created_at=now,
            expires_at=now + lifetime,
            last_seen_at=now,
            user_agent=user_agent[:USER_AGENT_LENGTH] if user_agent else None,
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class SignedIn:
    account_id: int
    email: str
    session_id: int
    # True when last_seen is old enough to be written again (in a writing unit of work).
    stale: bool
    created_at: datetime


def resolve_session_ref(*, session: Session, clock: Clock, ref: str) -> SignedIn | None:
    """Who a session reference (`session_ref`) signs in; None when unknown, expired, revoked
    or deleted. Read-only."""
    if not ref:
        return None
    now = clock.now()
    row = session.exec(select(UserSession).where(UserSession.token_hash == ref)).first()
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
        return None
    account = session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None or account.id is None:
        return None
    assert row.id is not None
    stale = now - as_utc(row.last_seen_at) >= LAST_SEEN_RESOLUTION
    return SignedIn(account.id, account.email, row.id, stale, as_utc(row.created_at))


def touch_session(*, session: Session, clock: Clock, session_id: int) -> None:
    """Note that a session was used now (written at most every LAST_SEEN_RESOLUTION)."""
    session.exec(
        update(UserSession)
        .where(col(UserSession.id) == session_id)
        .values(last_seen_at=clock.now())
    )


def sign_out(*, session: Session, clock: Clock, ref: str) -> None:
    """Revoke this one session (by `session_ref`); unknown or already revoked ones are fine."""
    session.exec(
        update(UserSession)
        .where(col(UserSession.token_hash) == ref)
        .where(col(UserSession.revoked_at).is_(None))
        .values(revoked_at=clock.now())
    )


def sign_out_everywhere(
    *, session: Session, clock: Clock, account_id: int, except_ref: str | None = None
) -> int:
    """Revoke every session of the account (but `except_ref`'s); returns how many."""
    statement = update(UserSession).where(
        col(UserSession.account_id) == account_id, col(UserSession.revoked_at).is_(None)
    )
    if except_ref:
        statement = statement.where(col(UserSession.token_hash) != except_ref)
    result = session.exec(statement.values(revoked_at=clock.now()))
    return int(result.rowcount or 0)


def owner_proven(check: SignInCheck, current: str, signed_in: SignedIn, now: datetime) -> bool:
    """The person at the keyboard owns the account: they know its password, or (an account
    without one, made through OAuth) they signed in within FRESH_SIGN_IN, else
    FreshSignInNeeded. Slow (argon2): call outside transactions."""
    if check.password_hash is None:
        if signed_in.created_at + FRESH_SIGN_IN <= now:
            raise FreshSignInNeeded()
        return True
    return accounts.verify_password(check.password_hash, current)


def set_password(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    expected_hash: str | None,
    new_hash: str,
    keep_ref: str | None = None,
) -> None:
    """Store the new hash and sign out every other session.

    `expected_hash` is the hash the current password was checked against; if it changed in
    the meantime the check no longer holds and WrongPassword is raised.
    """
    account = _live_account(session, account_id)
    if account.password_hash != expected_hash:
        raise WrongPassword()
    account.password_hash = new_hash
    session.add(account)
    # Whoever knew the old password may hold a session; only the browser that changed it stays.
    sign_out_everywhere(session=session, clock=clock, account_id=account_id, except_ref=keep_ref)


def delete_account(*, session: Session, clock: Clock, account_id: int) -> None:
    """Remove the person's sign-in data: email, password, identities, sessions, keys.

    The account row stays, anonymised, because ledger rows (which the books must keep) point
    at it. Their photos are the jobs domain's to delete.
    """
    account = _live_account(session, account_id)
    session.exec(delete(OAuthIdentity).where(col(OAuthIdentity.account_id) == account_id))
    session.exec(delete(UserSession).where(col(UserSession.account_id) == account_id))
    session.exec(delete(ApiKey).where(col(ApiKey.account_id) == account_id))
    session.exec(delete(EmailLink).where(col(EmailLink.account_id) == account_id))
    session.exec(
        delete(SignInAttempt).where(col(SignInAttempt.key) == _attempt_key("email", account.email))
    )
    account.email = anonymous_email(account_id)
    account.password_hash = None
    account.deleted_at = clock.now()
    session.add(account)
    session.flush()


def anonymous_email(account_id: int) -> str:
    """A deleted account's placeholder: unique, and on a reserved domain nobody can own."""
    return f"deleted-{account_id}@deleted.invalid"


def find_or_create_oauth_account(
    *,
    session: Session,
    clock: Clock,
    provider: str,
    subject: str,
    email: str,
    trial_credits: int,
    lot_valid_days: int,
) -> tuple[Account, bool]:
    """The account for a provider login with a verified email; True when it was just created.

    A known (provider, subject) signs into its account; else the account with that email is
    linked; else a new account (with its trial) is made. Concurrent first sign-ins are safe:
    each insert sits in a savepoint, and the loser reads what the winner wrote.

    Pre-account takeover: someone may have signed up with this address and a password of
    their own without ever confirming it. The provider has just vouched that the address
    belongs to this person, so the unconfirmed account is taken over: its password and every
    session, API key and pending link are revoked first (`_take_over`), then it is linked.
    """
    identity = session.exec(
        select(OAuthIdentity).where(
            OAuthIdentity.provider == provider, OAuthIdentity.subject == subject
        )
    ).first()
    if identity is not None:
        account = session.get(Account, identity.account_id)
        if account is not None and account.deleted_at is None:
            return account, False
    normalised = accounts.normalise_email(email)
    created = False
    account = _account_by_email(session, normalised)
    if account is None:
        try:
            with session.begin_nested():
                account = accounts.create_account(
                    session=session,
                    email=normalised,
                    password_hash=None,
                    clock=clock,
                    trial_credits=trial_credits,
                    lot_valid_days=lot_valid_days,
                )
            created = True
        except accounts.EmailTaken:
            account = _account_by_email(session, normalised)
            if account is None:
                raise
    assert account.id is not None
    if account.email_verified_at is None:
        _take_over(session, clock, account)
    accounts.claim_trial(
        session=session,
        clock=clock,
        account=account,
        credits=trial_credits,
        valid_days=lot_valid_days,
    )
    try:
        with session.begin_nested():
            session.add(
                OAuthIdentity(
                    provider=provider,
                    subject=subject,
                    account_id=account.id,
                    email=normalised,
                    created_at=clock.now(),
                )
            )
    except IntegrityError:
        pass  # the same login was linked by a concurrent callback a moment ago
    return account, created


def _take_over(session: Session, clock: Clock, account: Account) -> None:
    """An unconfirmed account passes to whoever proved the address: nothing of its maker's
    (password, sessions, keys, links) keeps working."""
    assert account.id is not None
    now = clock.now()
    account.password_hash = None
    account.email_verified_at = now
    session.add(account)
    sign_out_everywhere(session=session, clock=clock, account_id=account.id)
    session.exec(
        update(ApiKey)
        .where(col(ApiKey.account_id) == account.id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    session.exec(
        update(EmailLink)
        .where(col(EmailLink.account_id) == account.id, col(EmailLink.used_at).is_(None))
        .values(used_at=now)
    )
    session.flush()


def find_account(*, session: Session, email: str) -> Account | None:
    """The live account for a normalised address, or None."""
    return _account_by_email(session, email)


def _account_by_email(session: Session, email: str, *, lock: bool = False) -> Account | None:
    query = select(Account).where(Account.email == email, col(Account.deleted_at).is_(None))
    # On PostgreSQL, concurrent sign-ups for one address wait for each other here (SQLite's
    # writing units are serialised already).
    return session.exec(query.with_for_update() if lock else query).first()


def _live_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise AccountGone()
    return account


def _attempt_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _wait(session: Session, key: str, rule: ThrottleRule, now: datetime) -> timedelta:
    """How long this key must still wait before its next attempt is even checked."""
    rows = session.exec(
        select(SignInAttempt.at, SignInAttempt.success)
        .where(SignInAttempt.key == key, SignInAttempt.at > now - rule.window)
        .order_by(col(SignInAttempt.at).desc(), col(SignInAttempt.id).desc())
    ).all()
    failures = 0
    last_failure: datetime | None = None
    for at, success in rows:
        if success:
            if rule.success_resets:
                break
            continue
        failures += 1
        last_failure = last_failure or as_utc(at)
    if last_failure is None:
        return timedelta(0)
    return max(timedelta(0), last_failure + rule.wait_after(failures) - now)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return accounts.hash_password(secrets.token_urlsafe(16))
