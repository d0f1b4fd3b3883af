"""Rate-limit counters: units per key in fixed windows (aligned to the clock, like remove.bg's
per-minute limit). In this process's memory by default; in Redis when REFLEX_REDIS_URL is set,
so every web worker counts against the same total.

A request that would pass the limit is refused and counts nothing, except that the first one
in an empty window always passes (an image bigger than the whole limit could never run else).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("cutout")


@dataclass(frozen=True)
class Window:
    allowed: bool
    used: int  # units counted in this window, the request included when allowed
    reset_at: int  # unix seconds when the next window starts

    def retry_after(self, now: float) -> int:
        return max(1, int(self.reset_at - now + 0.999))


class LimitStore(Protocol):
    def take(self, key: str, units: int, *, limit: int, window_seconds: int, now: float) -> Window:
        """Count `units` for `key` in the window holding `now` (unix seconds), or refuse.
        `units=0` only reads the window."""


def _window_start(now: float, window_seconds: int) -> int:
    return int(now) // window_seconds * window_seconds


def _decide(used: int, units: int, limit: int) -> bool:
    return used == 0 or used + units <= limit


class MemoryLimitStore:
    """One process's counts (one web worker, the CLI, tests)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, used)
        self._lock = threading.Lock()

    def take(self, key: str, units: int, *, limit: int, window_seconds: int, now: float) -> Window:
        start = _window_start(now, window_seconds)
        with self._lock:
            began, used = self._windows.get(key, (start, 0))
            if began != start:
                used = 0
            allowed = _decide(used, units, limit)
            if allowed and units:
                used += units
                if len(self._windows) >= self._max_keys and key not in self._windows:
                    # Forget windows long gone before growing further.
                    self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
                self._windows[key] = (start, used)
        return Window(allowed, used, start + window_seconds)


# Read, decide and count in one step on the server: two web workers never both pass the last unit.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[1])
if used > 0 and used + units > tonumber(ARGV[2]) then return {0, used} end
if units > 0 then
  used = redis.call('INCRBY', KEYS[1], units)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return {1, used}
"""


class RedisLimitStore:
    """The same windows in Redis: one counter per key and window, gone when the window ends."""

    PREFIX = "cutout:limit:"

    def __init__(self, client: Redis, prefix: str = PREFIX) -> None:
        self._client = client
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    @classmethod
    def from_url(cls, url: str, prefix: str = PREFIX) -> RedisLimitStore:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), prefix)

    def take(self, key: str, units: int, *, limit: int, window_seconds: int, now: float) -> Window:
        start = _window_start(now, window_seconds)
        name = f"{self._prefix}{key}:{start}"
        try:
            allowed, used = self._take(keys=[name], args=[units, limit, window_seconds + 5])
        except RedisError as trouble:
            # These limits protect capacity, not money (the ledger does that): Redis being away
            # must not stop people working, so the request passes and the operator hears of it.
            log.warning("rate limit store unavailable: %s", type(trouble).__name__)
            return Window(True, 0, start + window_seconds)
        return Window(bool(allowed), int(used), start + window_seconds)
