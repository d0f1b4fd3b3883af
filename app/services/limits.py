"""Counting requests per key in a time window, for abuse limits that sit in front of the
database: in this process's memory by default, in Redis when REFLEX_REDIS_URL is set, so every
web worker counts against the same total."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("cutout")


class LimitStore(Protocol):
    def hit(self, key: str, *, limit: int, window_seconds: int) -> float:
        """Count one request for `key`; 0 when it is within `limit` per window, otherwise how
        many seconds until the window ends (the request should be refused)."""


class MemoryLimitStore:
    """Fixed windows in a dict: one process's count (one worker per machine, or tests)."""

    def __init__(self, now: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._now = now
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window_seconds: int) -> float:
        now = self._now()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= window_seconds:
                start, count = now, 0
            count += 1
            if len(self._windows) >= self._max_keys and key not in self._windows:
                self._forget_ended(now, window_seconds)
            self._windows[key] = (start, count)
        return 0.0 if count <= limit else start + window_seconds - now

    def _forget_ended(self, now: float, window_seconds: int) -> None:
        for key in [k for k, (start, _) in self._windows.items() if now - start >= window_seconds]:
            del self._windows[key]


class RedisLimitStore:
    """Fixed windows in Redis: one counter per key and window, gone when the window ends."""

    PREFIX = "cutout:limit:"

    def __init__(self, client: Redis) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> RedisLimitStore:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    def hit(self, key: str, *, limit: int, window_seconds: int) -> float:
        name = self.PREFIX + key
        pipe = self._client.pipeline(transaction=True)
        pipe.set(name, 0, ex=window_seconds, nx=True)  # a new window starts its own clock
        pipe.incr(name)
        pipe.pttl(name)
        try:
            _, count, ttl_ms = pipe.execute()
        except RedisError as trouble:
            # These limits sit in front of the database's own; Redis being away must not stop
            # people working, so the request passes and the operator hears about it.
            log.warning("rate limit store unavailable: %s", type(trouble).__name__)
            return 0.0
        if count <= limit:
            return 0.0
        return max(ttl_ms, 0) / 1000 or float(window_seconds)
