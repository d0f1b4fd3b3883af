"""The API's rate limit: megapixel-images per account per minute, as remove.bg counts them.

An image counts one unit per started megapixel of the size it is processed at (a preview counts
one, a 12 MP photo at full size twelve). Each account has a fixed one-minute window, counted in
a `LimitStore`: this process's memory by default, Redis when one is configured, so every web
worker counts against the same total (app/runtime.py: `api_limiter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from app.services.limits import LimitStore, MemoryLimitStore

MEGAPIXEL = 1_000_000
WINDOW_SECONDS = 60


def units_of(width: int, height: int) -> int:
    """Rate-limit units one image of this size uses: one per started megapixel, at least one."""
    return max(1, math.ceil(width * height / MEGAPIXEL))


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the window starts afresh

    def retry_after(self, now: datetime) -> int:
        return max(1, math.ceil(self.reset_at - now.timestamp()))


class RateLimited(Exception):
    def __init__(self, state: RateState, retry_after: int) -> None:
        super().__init__(f"rate limit reached; retry in {retry_after} s")
        self.state = state
        self.retry_after = retry_after


class RateLimiter:
    """Per-account counts in fixed windows; `take` counts an image or refuses it."""

    def __init__(self, per_minute: int, store: LimitStore | None = None) -> None:
        self.per_minute = per_minute
        self._store = store if store is not None else MemoryLimitStore()

    def _take(self, account_id: int, units: int, now: datetime) -> RateState:
        window = self._store.take(
            f"api:{account_id}",
            units,
            limit=self.per_minute,
            window_seconds=WINDOW_SECONDS,
            now=now.timestamp(),
        )
        state = RateState(self.per_minute, max(0, self.per_minute - window.used), window.reset_at)
        if not window.allowed:
            raise RateLimited(state, state.retry_after(now))
        return state

    def peek(self, account_id: int, now: datetime) -> RateState:
        return self._take(account_id, 0, now)

    def take(self, account_id: int, units: int, now: datetime) -> RateState:
        """Count `units` in the account's window, or raise RateLimited (nothing counted).

        An image larger than the whole limit still passes alone in an empty window, or it
        could never be processed at all.
        """
        return self._take(account_id, units, now)
