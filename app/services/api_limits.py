"""The API's rate limit: megapixel-images per account per minute, as remove.bg counts them.

An image counts one unit per started megapixel of the size it is processed at (a preview counts
one, a 12 MP photo at full size twelve). Each account has a fixed one-minute window; the counts
live in this process's memory (one backend process serves the API; a restart forgets them).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime

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

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[int, tuple[int, int]] = {}  # account -> (window start, units used)
        self._lock = threading.Lock()

    def _window(self, account_id: int, now: datetime) -> tuple[int, int]:
        start = int(now.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS
        began, used = self._windows.get(account_id, (start, 0))
        return (start, 0) if began != start else (began, used)

    def peek(self, account_id: int, now: datetime) -> RateState:
        with self._lock:
            start, used = self._window(account_id, now)
        return RateState(self.per_minute, max(0, self.per_minute - used), start + WINDOW_SECONDS)

    def take(self, account_id: int, units: int, now: datetime) -> RateState:
        """Count `units` in the account's window, or raise RateLimited (nothing counted).

        An image larger than the whole limit still passes alone in an empty window, or it
        could never be processed at all.
        """
        with self._lock:
            start, used = self._window(account_id, now)
            reset_at = start + WINDOW_SECONDS
            if used and used + units > self.per_minute:
                state = RateState(self.per_minute, max(0, self.per_minute - used), reset_at)
                raise RateLimited(state, state.retry_after(now))
            self._windows[account_id] = (start, used + units)
            if len(self._windows) > 10_000:  # forget windows long gone
                self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
            return RateState(self.per_minute, max(0, self.per_minute - used - units), reset_at)
