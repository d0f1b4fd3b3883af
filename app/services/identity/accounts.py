"""Accounts: creating one (with its trial credits, once per email ever), email normalisation,
the password rules and password hashing."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from app.models.accounts import Account, Plan
from app.models.auth import InstallSecret, TrialClaim
from app.models.ledger import CreditLot, LotScope, LotSource
from app.services.billing.ledger import grant_credits
from app.services.billing.pricing import MILLI
from app.services.clock import Clock

MIN_PASSWORD_LENGTH = 10
MIN_DISTINCT_CHARACTERS = 4
TRIAL_SALT = "trial_salt"  # the install_secret row made by the migrations
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


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn's list of the 30,000 passwords seen most often in leaks, shipped with the package.
    return frozenset(FREQUENCY_LISTS["passwords"])


# Why a password is refused, by code (a redirect carries the code, the page the words).
PASSWORD_PROBLEMS = {
    "short": f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
    "long": f"a password may have at most {MAX_PASSWORD_LENGTH} characters",
    "mine": "a password must not be your email address; a few unrelated words make a good one",
    "common": (
        "that password is one of the most common ones and is guessed first; "
        "a few unrelated words make a good one"
    ),
}


def password_problem(password: str, *, email: str = "") -> str | None:
    """The code (a PASSWORD_PROBLEMS key) of why this password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "long"
    lowered = password.strip().lower()
    address = email.strip().lower()
    if address and lowered in (address, address.partition("@")[0]):
        return "mine"
    if lowered in _common_passwords() or len(set(lowered)) < MIN_DISTINCT_CHARACTERS:
        return "common"
    return None


def hash_password(password: str, *, email: str = "") -> str:
    """The argon2id hash of a password that meets the rules; WeakPassword saying why not."""
    problem = password_problem(password, email=email)
    if problem:
        raise WeakPassword(PASSWORD_PROBLEMS[problem])
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


def email_fingerprint(*, session: Session, email: str) -> str:
    """A salted hash of an address: equal for equal addresses, and not the address itself."""
    salt = session.get(InstallSecret, TRIAL_SALT)
    if salt is None:
        raise RuntimeError("the install secret is missing: run the migrations (make setup)")
    return hmac.new(salt.value.encode(), email.encode(), hashlib.sha256).hexdigest()


def claim_trial(
    *, session: Session, clock: Clock, account: Account, credits: int, valid_days: int
) -> CreditLot | None:
    """The trial lot for a confirmed address that never had one; None if it had one before.

    One trial per address, ever: the claim outlives the account, so deleting it and signing up
    again gives none. Concurrent claims for one address insert one row: the other gets None.
    """
    assert account.id is not None
    if credits <= 0:
        return None
    fingerprint = email_fingerprint(session=session, email=account.email)
    if session.get(TrialClaim, fingerprint) is not None:
        return None
    try:
        with session.begin_nested():
            session.add(TrialClaim(email_hash=fingerprint, claimed_at=clock.now()))
    except IntegrityError:
        return None
    return grant_trial(
        session=session, clock=clock, account_id=account.id, credits=credits, valid_days=valid_days
    )


def create_account(
    *,
    session: Session,
    email: str,
    password_hash: str | None,
    clock: Clock,
    trial_credits: int,
    lot_valid_days: int,
    verified: bool = True,
) -> Account:
    """A new free account; a confirmed one also gets its trial lot (serving both wallets),
    unless its address had a trial before.

    The password arrives hashed (`hash_password`, slow: done before the transaction); None for
    an account that signs in only through OAuth. `verified=False` (a sign-up still to confirm
    its address) gets no trial until `confirm_email`.
    """
    normalised = normalise_email(email)
    if session.exec(select(Account.id).where(Account.email == normalised)).first() is not None:
        raise EmailTaken(normalised)
    now = clock.now()
    account = Account(
        email=normalised,
        password_hash=password_hash,
        plan=Plan.free,
        created_at=now,
        email_verified_at=now if verified else None,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # Another request created the same email between our check and this insert.
        raise EmailTaken(normalised) from None
    if verified:
        claim_trial(
            session=session,
            clock=clock,
            account=account,
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
