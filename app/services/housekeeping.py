"""Periodic upkeep: old results, stalled jobs, timed-out reservations, expired lots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from app.db import session_scope
from app.services import auth, cutouts, ledger
from app.services.clock import Clock
from app.settings import Settings


@dataclass(frozen=True)
class Swept:
    results: int
    stalled: int
    reservations: int
    lots: int
    attempts: int


def run_housekeeping(*, db: Engine, settings: Settings, clock: Clock) -> Swept:
    """One pass of every sweeper; each step is its own transaction and safe to repeat."""
    results = cutouts.purge_expired(db=db, settings=settings, clock=clock)
    # No cutout takes anywhere near a reservation's lifetime; one older than that lost its worker.
    stalled = cutouts.fail_stalled(
        db=db, clock=clock, older_than=timedelta(seconds=settings.reservation_timeout_seconds)
    )
    with session_scope(db) as session:
        reservations = len(ledger.sweep_timed_out_reservations(session=session, clock=clock))
    with session_scope(db) as session:
        lots = len(ledger.expire_lots(session=session, clock=clock))
    with session_scope(db) as session:
        attempts = auth.prune_sign_in_attempts(session=session, clock=clock)
    return Swept(
        results=results, stalled=stalled, reservations=reservations, lots=lots, attempts=attempts
    )
