"""What the Reflex layer injects into services: settings, the database engine and the clock."""

from __future__ import annotations

from sqlalchemy import Engine

from app.db import engine_for
from app.services.clock import Clock, SystemClock
from app.settings import Settings, get_settings

_clock: Clock = SystemClock()


def settings() -> Settings:
    return get_settings()


def db() -> Engine:
    return engine_for(get_settings().db_url)


def clock() -> Clock:
    return _clock
