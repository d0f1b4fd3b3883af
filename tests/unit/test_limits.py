"""Rate-limit counters in memory and in Redis, and uploads refused by them before any decoding."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from app.services.api_limits import RateLimited, RateLimiter
from app.services.jobs.cutouts import UploadLimited
from app.services.limits import LimitStore, MemoryLimitStore, RedisLimitStore
from app.usecases import cutouts
from tests.conftest import confirmed_account

T0 = 1_800_000_000.0  # a window boundary for 60 s windows


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis rate-limit tests skipped")
    return url


@pytest.fixture(params=["memory", "redis"])
def store(request) -> LimitStore:  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return MemoryLimitStore()
    return RedisLimitStore.from_url(request.getfixturevalue("redis_url"))


def test_units_count_per_key_in_clock_aligned_windows(store: LimitStore) -> None:
    key = uuid.uuid4().hex
    take = lambda units, now: store.take(key, units, limit=10, window_seconds=60, now=now)  # noqa: E731
    assert take(6, T0).allowed
    refused = take(5, T0 + 30)
    assert not refused.allowed and refused.used == 6, "a refusal counts nothing"
    assert refused.retry_after(T0 + 30) == 30
    assert take(4, T0 + 59).used == 10
    assert take(0, T0 + 59).used == 10, "units=0 only reads"
    assert take(5, T0 + 60).allowed, "a new window"
    other = store.take(uuid.uuid4().hex, 1, limit=10, window_seconds=60, now=T0)
    assert other.used == 1, "another key has its own count"


def test_one_image_larger_than_the_limit_passes_alone(store: LimitStore) -> None:
    key = uuid.uuid4().hex
    assert store.take(key, 25, limit=10, window_seconds=60, now=T0).allowed
    assert not store.take(key, 1, limit=10, window_seconds=60, now=T0 + 1).allowed


def test_redis_is_one_count_for_every_worker(redis_url: str) -> None:
    key = uuid.uuid4().hex
    workers = [RedisLimitStore.from_url(redis_url) for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: workers[i % 4].take(key, 1, limit=25, window_seconds=60, now=T0),
                range(100),
            )
        )
    assert sum(result.allowed for result in results) == 25
    ttl = Redis.from_url(redis_url).ttl(f"{RedisLimitStore.PREFIX}{key}:{int(T0)}")
    assert 0 < ttl <= 65, "the counter goes away with its window"


def test_an_unreachable_redis_lets_requests_through() -> None:
    store = RedisLimitStore.from_url("redis://127.0.0.1:1/0")
    assert store.take("anything", 1, limit=1, window_seconds=60, now=T0).allowed


def test_memory_forgets_ended_windows_when_full() -> None:
    store = MemoryLimitStore(max_keys=3)
    for key in "abc":
        store.take(key, 1, limit=1, window_seconds=10, now=T0)
    store.take("d", 1, limit=1, window_seconds=10, now=T0 + 20)
    assert len(store._windows) == 1


def test_refused_files_count_against_the_upload_limit(db, clock, settings) -> None:  # type: ignore[no-untyped-def]
    person = confirmed_account(db, clock, settings, "flood@example.com")
    strict = settings.model_copy(update={"uploads_per_minute": 2})
    store = MemoryLimitStore()

    def upload():  # type: ignore[no-untyped-def]
        return cutouts.submit_photo(
            db=db,
            settings=strict,
            clock=clock,
            account_id=person.id,
            filename="x.jpg",
            data=b"not a photo",
            limits=store,
        )

    for _ in range(2):
        with pytest.raises(cutouts.ImageRejected) as refused:
            upload()
        assert not isinstance(refused.value, UploadLimited)
    with pytest.raises(UploadLimited):
        upload()


def test_the_api_rate_limit_is_one_count_for_every_web_worker(redis_url: str) -> None:
    """Two web workers (two limiters, each with its own Redis connection) share one window,
    and both report remove.bg's X-RateLimit figures from that shared count."""
    prefix = f"cutout:test:{uuid.uuid4().hex}:"
    first, second = (
        RateLimiter(10, RedisLimitStore.from_url(redis_url, prefix=prefix)) for _ in range(2)
    )
    now = datetime.fromtimestamp(T0 + 5, UTC)
    assert first.take(7, 4, now).remaining == 6
    assert second.take(7, 5, now).remaining == 1
    assert first.peek(7, now).remaining == 1
    with pytest.raises(RateLimited) as refused:
        second.take(7, 2, now)
    assert refused.value.state.remaining == 1 and refused.value.state.reset_at == T0 + 60
    assert refused.value.retry_after == 55
    assert first.take(7, 2, now + timedelta(seconds=55)).remaining == 8  # the next minute
