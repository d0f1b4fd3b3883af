"""Signing up, signing in (with a throttle), browser sessions, and closing an account.

Password hashing is deliberately slow, so it never runs inside a transaction: the use-case
layer reads what it needs (`sign_in_check`, `password_hash_of`), hashes or verifies outside
any unit of work, then writes the outcome (`record_sign_in`, `set_password`).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.models.accounts import Account
from app.models.auth import ApiKey, OAuthIdentity, SignInAttempt, UserSession
from app.services.clock import Clock, as_utc
from app.services.identity import accounts

# Resolving a session happens on every page load; writing last_seen each time would turn reads
# into writes (and SQLite has one writer), so it is refreshed at most this often.
LAST_SEEN_RESOLUTION = timedelta(minutes=5)
USER_AGENT_LENGTH = 200


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
    """Signing up or in failed; the message is safe to show the person."""


class SignUpRefused(AuthError):
    """Bad email, weak password or a taken email; carries accounts' own message."""


class WrongCredentials(AuthError):
    def __init__(self) -> None:
        # Same words whether the email exists or not: the form must not reveal who has an account.
        super().__init__("Wrong email or password.")


class TooManyAttempts(AuthError):
    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after_seconds = max(1, math.ceil(retry_after.total_seconds()))
        super().__init__(f"Too many sign-in attempts. Try again in {self.retry_after_seconds} s.")


class WrongPassword(AuthError):
    def __init__(self) -> None:
        super().__init__("The current password is wrong.")


class PasswordRefused(AuthError):
    """The new password does not meet the rules; carries accounts' own message."""


class AccountGone(AuthError):
    def __init__(self) -> None:
        super().__init__("This account no longer exists.")


def account_owner(account_id: int) -> str:
    """The owner string of an account's cutout jobs (browsers' jobs use "browser:<hash>")."""
    return f"account:{account_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_password(password: str) -> str:
    """The password's hash, or PasswordRefused saying why. Slow: call outside transactions."""
    try:
        return accounts.hash_password(password)
    except accounts.AccountError as refused:
        raise PasswordRefused(_sentence(str(refused))) from refused


def sign_up(
    *,
    session: Session,
    clock: Clock,
    email: str,
    password_hash: str,
    trial_credits: int,
    lot_valid_days: int,
) -> Account:
    """A new password account with its trial credits; races on one email yield one account."""
    try:
        return accounts.create_account(
            session=session,
            email=email,
            password_hash=password_hash,
            clock=clock,
            trial_credits=trial_credits,
            lot_valid_days=lot_valid_days,
        )
    except accounts.AccountError as refused:
        raise SignUpRefused(_sentence(str(refused))) from refused


@dataclass(frozen=True)
class SignInCheck:
    """What a password sign-in needs to know before the (slow) password check."""

    attempt_keys: tuple[str, ...]
    account_id: int | None
    password_hash: str | None


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
    )


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
    now = clock.now()
    for key in check.attempt_keys:
        session.add(SignInAttempt(key=key, at=now, success=ok))
    if not ok or account is None:
        return None
    assert account.password_hash is not None
    if accounts.password_needs_rehash(account.password_hash):
        account.password_hash = accounts.hash_password(password)
        session.add(account)
    return account


def prune_sign_in_attempts(*, session: Session, clock: Clock) -> int:
    """Forget attempts older than any throttle window; for a periodic sweep."""
    horizon = clock.now() - max(EMAIL_THROTTLE.window, ADDRESS_THROTTLE.window)
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


def resolve_session(*, session: Session, clock: Clock, token: str) -> SignedIn | None:
    """Who a token signs in; None when unknown, expired, revoked or deleted. Read-only."""
    if not token:
        return None
    now = clock.now()
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
        return None
    account = session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None or account.id is None:
        return None
    assert row.id is not None
    stale = now - as_utc(row.last_seen_at) >= LAST_SEEN_RESOLUTION
    return SignedIn(account.id, account.email, row.id, stale)


def touch_session(*, session: Session, clock: Clock, session_id: int) -> None:
    """Note that a session was used now (written at most every LAST_SEEN_RESOLUTION)."""
    session.exec(
        update(UserSession)
        .where(col(UserSession.id) == session_id)
        .values(last_seen_at=clock.now())
    )


def sign_out(*, session: Session, clock: Clock, token: str) -> None:
    """Revoke this one session; unknown or already revoked tokens are fine."""
    session.exec(
        update(UserSession)
        .where(col(UserSession.token_hash) == token_hash(token))
        .where(col(UserSession.revoked_at).is_(None))
        .values(revoked_at=clock.now())
    )


def sign_out_everywhere(
    *, session: Session, clock: Clock, account_id: int, except_token: str | None = None
) -> int:
    """Revoke every session of the account (but `except_token`'s); returns how many."""
    statement = update(UserSession).where(
        col(UserSession.account_id) == account_id, col(UserSession.revoked_at).is_(None)
    )
    if except_token:
        statement = statement.where(col(UserSession.token_hash) != token_hash(except_token))
    result = session.exec(statement.values(revoked_at=clock.now()))
    return int(result.rowcount or 0)


def password_hash_of(*, session: Session, account_id: int) -> str | None:
    """The account's current hash (None: it signs in only through OAuth); AccountGone if gone."""
    return _live_account(session, account_id).password_hash


def current_password_ok(password_hash: str | None, current: str) -> bool:
    """An account without a password (made through OAuth) may set one without `current`."""
    return password_hash is None or accounts.verify_password(password_hash, current)


def set_password(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    expected_hash: str | None,
    new_hash: str,
    keep_token: str | None = None,
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
    sign_out_everywhere(
        session=session, clock=clock, account_id=account_id, except_token=keep_token
    )


def delete_account(*, session: Session, clock: Clock, account_id: int) -> None:
    """Remove the person's sign-in data: email, password, identities, sessions, keys.

    The account row stays, anonymised, because ledger rows (which the books must keep) point
    at it. Their photos are the jobs domain's to delete.
    """
    account = _live_account(session, account_id)
    session.exec(delete(OAuthIdentity).where(col(OAuthIdentity.account_id) == account_id))
    session.exec(delete(UserSession).where(col(UserSession.account_id) == account_id))
    session.exec(delete(ApiKey).where(col(ApiKey.account_id) == account_id))
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


def _account_by_email(session: Session, email: str) -> Account | None:
    return session.exec(
        select(Account).where(Account.email == email, col(Account.deleted_at).is_(None))
    ).first()


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


def _sentence(message: str) -> str:
    """accounts' messages are lower-case fragments; the forms show sentences."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
