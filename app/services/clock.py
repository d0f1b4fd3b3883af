"""Injected time: services ask a clock, never the system, so tests can travel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock that only moves when told to; for tests and replays."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def as_utc(value: datetime) -> datetime:
    """Datetimes read back from SQLite lose their zone; they were written as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
