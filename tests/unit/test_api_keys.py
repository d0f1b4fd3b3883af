"""API keys: shown once, stored hashed, listed without the key, revocable, only by their owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import writing
from app.models.auth import ApiKey
from app.services.clock import FrozenClock
from app.services.identity import api_keys
from tests.conftest import new_account


def make_account(db: Engine, clock: FrozenClock, email: str) -> int:
    with writing(db) as session:
        account = new_account(session, clock, email, "long enough pw")
        assert account.id is not None
        return account.id


def create(db: Engine, clock: FrozenClock, account_id: int, name: str) -> api_keys.NewApiKey:
    with writing(db) as session:
        return api_keys.create_api_key(
            session=session, clock=clock, account_id=account_id, name=name
        )


def authenticate(db: Engine, clock: FrozenClock, raw_key: str) -> int | None:
    with writing(db) as session:
        return api_keys.authenticate_api_key(session=session, clock=clock, raw_key=raw_key).id


@pytest.fixture
def ada(db: Engine, clock: FrozenClock) -> int:
    return make_account(db, clock, "ada@example.com")


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    new = create(db, clock, ada, "  build   server ")
    assert new.raw_key.startswith("co_") and len(new.raw_key) > 40
    assert new.view.name == "build server"
    assert new.raw_key.startswith(new.view.prefix) and len(new.view.prefix) == 10
    with writing(db) as session:
        row = session.exec(select(ApiKey)).one()
        stored = " ".join(str(value) for value in row.model_dump().values())
    assert new.raw_key not in stored and new.raw_key[10:] not in stored
    assert row.key_hash == api_keys.key_hash(new.raw_key)
    assert new.raw_key not in repr(new.view)


def test_authenticate_finds_the_account_and_records_last_use(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    new = create(db, clock, ada, "script")
    clock.advance(timedelta(hours=3))
    assert authenticate(db, clock, new.raw_key) == ada
    with writing(db) as session:
        [listed] = api_keys.list_api_keys(session=session, account_id=ada)
    assert listed.last_used_at == clock.now()


@pytest.mark.parametrize("raw_key", ["", "co_", "co_not-a-real-key", "sk_live_something"])
def test_unknown_keys_are_refused(db: Engine, clock: FrozenClock, ada: int, raw_key: str) -> None:
    create(db, clock, ada, "script")
    with pytest.raises(api_keys.InvalidApiKey, match="Invalid or revoked API key"):
        authenticate(db, clock, raw_key)


def test_list_shows_active_keys_newest_first_and_never_the_key(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    first = create(db, clock, ada, "first")
    clock.advance(timedelta(minutes=1))
    second = create(db, clock, ada, "second")
    with writing(db) as session:
        listed = api_keys.list_api_keys(session=session, account_id=ada)
    assert [key.name for key in listed] == ["second", "first"]
    assert [key.id for key in listed] == [second.view.id, first.view.id]
    assert not hasattr(listed[0], "raw_key") and not hasattr(listed[0], "key_hash")


def test_a_revoked_key_stops_working_and_leaves_the_list(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    kept = create(db, clock, ada, "kept")
    gone = create(db, clock, ada, "gone")
    with writing(db) as session:
        api_keys.revoke_api_key(session=session, clock=clock, account_id=ada, key_id=gone.view.id)
        # Revoking twice is harmless (a double click).
        api_keys.revoke_api_key(session=session, clock=clock, account_id=ada, key_id=gone.view.id)
    with pytest.raises(api_keys.InvalidApiKey):
        authenticate(db, clock, gone.raw_key)
    assert authenticate(db, clock, kept.raw_key) == ada
    with writing(db) as session:
        assert [k.name for k in api_keys.list_api_keys(session=session, account_id=ada)] == ["kept"]


def test_another_account_can_neither_see_nor_revoke_a_key(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    bob = make_account(db, clock, "bob@example.com")
    adas = create(db, clock, ada, "ada's")
    with writing(db) as session:
        assert api_keys.list_api_keys(session=session, account_id=bob) == []
    with pytest.raises(api_keys.ApiKeyNotFound) as foreign, writing(db) as session:
        api_keys.revoke_api_key(session=session, clock=clock, account_id=bob, key_id=adas.view.id)
    with pytest.raises(api_keys.ApiKeyNotFound) as missing, writing(db) as session:
        api_keys.revoke_api_key(session=session, clock=clock, account_id=bob, key_id=999_999)
    assert str(foreign.value) == str(missing.value)  # another's id looks like a missing one
    assert authenticate(db, clock, adas.raw_key) == ada


@pytest.mark.parametrize(
    ("name", "message"), [("   ", "Give the key a name"), ("x" * 101, "at most 100")]
)
def test_bad_names_are_refused(
    db: Engine, clock: FrozenClock, ada: int, name: str, message: str
) -> None:
    with pytest.raises(api_keys.ApiKeyError, match=message):
        create(db, clock, ada, name)


def test_an_account_holds_a_bounded_number_of_keys(
    db: Engine, clock: FrozenClock, ada: int
) -> None:
    keys = [create(db, clock, ada, f"key {n}") for n in range(api_keys.MAX_ACTIVE_KEYS)]
    with pytest.raises(api_keys.ApiKeyError, match="revoke one"):
        create(db, clock, ada, "one too many")
    with writing(db) as session:
        api_keys.revoke_api_key(
            session=session, clock=clock, account_id=ada, key_id=keys[0].view.id
        )
    assert create(db, clock, ada, "now fits").view.name == "now fits"
