"""Accounts: creating one (with its trial credits), email normalisation and password hashing."""

from __future__ import annotations

import os
import re
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.models.accounts import Account, Plan
from app.models.ledger import CreditLot, LotScope, LotSource
from app.services.billing.ledger import grant_credits
from app.services.billing.pricing import MILLI
from app.services.clock import Clock

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing is deliberately slow: bound the work one request can ask for
# Deliberately loose: one @, no spaces, a dot in the domain. The confirmation mail is the real test.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

# argon2id with the library's (RFC 9106 low-memory) defaults.
_hasher = PasswordHasher()
# Each hash takes ~64 MB and several cores for tens of milliseconds. A storm of sign-ins would
# otherwise run dozens at once and starve everything else on the machine (image loads, the
# event loop); past one per core they only queue here, which costs them nothing in throughput.
_hashing = threading.BoundedSemaphore(os.cpu_count() or 1)


class AccountError(ValueError):
    """The account could not be created or changed; the message is safe to show the user."""


class InvalidEmail(AccountError):
    pass


class WeakPassword(AccountError):
    pass


class EmailTaken(AccountError):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with {email} already exists")
        self.email = email


def normalise_email(raw: str) -> str:
    """Strip and lower-case, then check the shape; raises InvalidEmail with the reason."""
    email = raw.strip().lower()
    if not email:
        raise InvalidEmail("an email address is required")
    if len(email) > 254:
        raise InvalidEmail("that email address is too long")
    if not _EMAIL.match(email):
        raise InvalidEmail(f"{email!r} is not an email address")
    return email


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """False for a wrong password, a malformed hash, or an account without a password."""
    if not password_hash or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        with _hashing:
            return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True once the hashing parameters have been raised since this hash was made."""
    return _hasher.check_needs_rehash(password_hash)


def find_account_by_email(*, session: Session, email: str) -> Account | None:
    return session.exec(select(Account).where(Account.email == normalise_email(email))).first()


def trial_key(account_id: int) -> str:
    """The trial grant's idempotency key: tied to the account, so it can be granted only once."""
    return f"trial:{account_id}"


def create_account(
    *,
    session: Session,
    email: str,
    password_hash: str | None,
    clock: Clock,
    trial_credits: int,
    lot_valid_days: int,
) -> Account:
    """A new free account holding its one trial lot, which serves both wallets.

    The password arrives hashed (`hash_password`, slow: done before the transaction); None for
    an account that signs in only through OAuth.
    """
    normalised = normalise_email(email)
    if session.exec(select(Account.id).where(Account.email == normalised)).first() is not None:
        raise EmailTaken(normalised)
    account = Account(
        email=normalised, password_hash=password_hash, plan=Plan.free, created_at=clock.now()
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # Another request created the same email between our check and this insert.
        raise EmailTaken(normalised) from None
    assert account.id is not None
    if trial_credits > 0:
        grant_trial(
            session=session,
            clock=clock,
            account_id=account.id,
            credits=trial_credits,
            valid_days=lot_valid_days,
        )
    return account


def grant_trial(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    credits: int,
    valid_days: int,
) -> CreditLot:
    """Idempotent: a second call returns the lot the first one issued."""
    return grant_credits(
        session=session,
        clock=clock,
        account_id=account_id,
        amount=credits * MILLI,
        scope=LotScope.both,
        source=LotSource.trial,
        key=trial_key(account_id),
        valid_days=valid_days,
    )
