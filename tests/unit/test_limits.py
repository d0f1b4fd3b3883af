"""Abuse counters in memory and in Redis, and uploads refused by them before any decoding."""

from __future__ import annotations

import os
import uuid

import pytest
from redis import Redis

from app.services.jobs.cutouts import UploadLimited
from app.services.limits import MemoryLimitStore, RedisLimitStore
from app.usecases import cutouts
from tests.conftest import confirmed_account


class Ticking:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_counts_per_key_and_window() -> None:
    time = Ticking()
    store = MemoryLimitStore(now=time)
    assert [store.hit("a", limit=2, window_seconds=60) for _ in range(3)] == [0, 0, 60]
    assert store.hit("b", limit=2, window_seconds=60) == 0, "another key has its own count"
    time.now += 45
    assert store.hit("a", limit=2, window_seconds=60) == pytest.approx(15)
    time.now += 15
    assert store.hit("a", limit=2, window_seconds=60) == 0, "a new window"


def test_memory_forgets_ended_windows_when_full() -> None:
    time = Ticking()
    store = MemoryLimitStore(now=time, max_keys=3)
    for key in "abc":
        store.hit(key, limit=1, window_seconds=10)
    time.now += 11
    store.hit("d", limit=1, window_seconds=10)
    assert len(store._windows) == 1


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis rate-limit test skipped")
    return url


def test_redis_is_one_count_for_every_process(redis_url: str) -> None:
    key = f"test-{uuid.uuid4().hex}"
    worker_a, worker_b = RedisLimitStore.from_url(redis_url), RedisLimitStore.from_url(redis_url)
    assert worker_a.hit(key, limit=2, window_seconds=30) == 0
    assert worker_b.hit(key, limit=2, window_seconds=30) == 0
    wait = worker_a.hit(key, limit=2, window_seconds=30)
    assert 0 < wait <= 30
    ttl = Redis.from_url(redis_url).ttl(RedisLimitStore.PREFIX + key)
    assert 0 < ttl <= 30, "the counter goes away with its window"


def test_an_unreachable_redis_lets_requests_through() -> None:
    store = RedisLimitStore.from_url("redis://127.0.0.1:1/0")
    assert store.hit("anything", limit=1, window_seconds=60) == 0


def test_refused_files_count_against_the_upload_limit(db, clock, settings) -> None:  # type: ignore[no-untyped-def]
    person = confirmed_account(db, clock, settings, "flood@example.com")
    strict = settings.model_copy(update={"uploads_per_minute": 2})
    store = MemoryLimitStore()
    for _ in range(2):
        with pytest.raises(cutouts.ImageRejected) as refused:
            cutouts.submit_photo(
                db=db,
                settings=strict,
                clock=clock,
                account_id=person.id,
                filename="x.jpg",
                data=b"not a photo",
                limits=store,
            )
        assert not isinstance(refused.value, UploadLimited)
    with pytest.raises(UploadLimited):
        cutouts.submit_photo(
            db=db,
            settings=strict,
            clock=clock,
            account_id=person.id,
            filename="x.jpg",
            data=b"not a photo",
            limits=store,
        )
