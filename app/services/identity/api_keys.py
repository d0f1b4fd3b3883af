"""API keys for the remove.bg-style HTTP API: shown once, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from app.models.accounts import Account
from app.models.auth import ApiKey
from app.services.clock import Clock

# Recognisable in logs, config files and secret scanners, like Stripe's "sk_".
KEY_PREFIX = "co_"
DISPLAY_LENGTH = 10  # "co_" and 7 random characters: enough to tell keys apart, useless to guess
MAX_NAME_LENGTH = 100
MAX_ACTIVE_KEYS = 20


class ApiKeyError(ValueError):
    """The message is safe to show the person."""


class ApiKeyNotFound(ApiKeyError):
    def __init__(self) -> None:
        # Another account's key ids get the same answer as ids that never existed.
        super().__init__("No such API key.")


class InvalidApiKey(ApiKeyError):
    def __init__(self) -> None:
        super().__init__("Invalid or revoked API key.")


@dataclass(frozen=True)
class ApiKeyView:
    """What the account page shows of a key: never the key or its hash."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    view: ApiKeyView
    raw_key: str  # shown to the person once, then gone


def key_hash(raw_key: str) -> str:
    # The key carries 256 random bits, so a plain hash (no salt, no stretching) cannot be
    # reversed, and it keeps lookup a single indexed equality.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def create_api_key(*, session: Session, clock: Clock, account_id: int, name: str) -> NewApiKey:
    clean = " ".join(name.split())
    if not clean:
        raise ApiKeyError("Give the key a name, so you can tell it apart later.")
    if len(clean) > MAX_NAME_LENGTH:
        raise ApiKeyError(f"A key name may have at most {MAX_NAME_LENGTH} characters.")
    if len(_active(session, account_id)) >= MAX_ACTIVE_KEYS:
        raise ApiKeyError(
            f"An account can hold at most {MAX_ACTIVE_KEYS} keys; revoke one you no longer use."
        )
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        account_id=account_id,
        name=clean,
        prefix=raw_key[:DISPLAY_LENGTH],
        key_hash=key_hash(raw_key),
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return NewApiKey(view=_view(row), raw_key=raw_key)


def list_api_keys(*, session: Session, account_id: int) -> list[ApiKeyView]:
    """The account's usable keys, newest first."""
    return [_view(row) for row in _active(session, account_id)]


def revoke_api_key(*, session: Session, clock: Clock, account_id: int, key_id: int) -> None:
    """Revoke one of the account's keys; revoking a revoked key again is fine."""
    row = session.get(ApiKey, key_id)
    if row is None or row.account_id != account_id:
        raise ApiKeyNotFound()
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.add(row)


def authenticate_api_key(*, session: Session, clock: Clock, raw_key: str) -> Account:
    """The account behind an X-Api-Key header value; InvalidApiKey otherwise."""
    if not raw_key.startswith(KEY_PREFIX):
        raise InvalidApiKey()
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash(raw_key))).first()
    if row is None or row.revoked_at is not None:
        raise InvalidApiKey()
    account = session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None:
        raise InvalidApiKey()
    row.last_used_at = clock.now()
    session.add(row)
    return account


def _active(session: Session, account_id: int) -> list[ApiKey]:
    return list(
        session.exec(
            select(ApiKey)
            .where(ApiKey.account_id == account_id, col(ApiKey.revoked_at).is_(None))
            .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
        ).all()
    )


def _view(row: ApiKey) -> ApiKeyView:
    assert row.id is not None
    return ApiKeyView(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )
