"""Periodic upkeep: old results, stalled jobs, lapsed holds, expired lots, old sign-in attempts
and mailed links."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from app.db import writing
from app.services.billing import ledger
from app.services.clock import Clock
from app.services.identity import auth
from app.services.jobs import bulk, cutouts, dispatch
from app.settings import Settings


@dataclass(frozen=True)
class Swept:
    results: int
    stalled: int
    reservations: int
    lots: int
    attempts: int
    links: int
    batches: int = 0
    api_files: int = 0  # staged API calls' folders whose web process died mid-call


def run_housekeeping(*, db: Engine, settings: Settings, clock: Clock) -> Swept:
    """One pass of every sweeper; each step is its own unit of work and safe to repeat."""
    with writing(db) as session:
        results = cutouts.purge_expired(session=session, settings=settings, clock=clock)
    # No cutout takes anywhere near a reservation's lifetime; one older than that lost its worker.
    with writing(db) as session:
        stalled = cutouts.fail_stalled(
            session=session,
            clock=clock,
            older_than=timedelta(seconds=settings.reservation_timeout_seconds),
        )
    with writing(db) as session:
        reservations = ledger.sweep_timed_out_reservations(session=session, clock=clock)
    with writing(db) as session:
        lots = ledger.expire_lots(session=session, clock=clock)
    with writing(db) as session:
        attempts = auth.prune_sign_in_attempts(session=session, clock=clock)
    with writing(db) as session:
        links = auth.prune_email_links(session=session, clock=clock)
    with writing(db) as session:
        batches = bulk.purge_expired(session=session, clock=clock)
    api_files = dispatch.purge_stale_api_files(settings, now=clock.now())
    return Swept(
        results=results,
        stalled=len(stalled),
        reservations=len(reservations),
        lots=len(lots),
        attempts=attempts,
        links=links,
        batches=batches,
        api_files=api_files,
    )


# The PostgreSQL advisory lock only housekeeping takes: a fixed number, with the schema's name
# (hashed) as the second half, so several Cutouts in one database each sweep their own.
HOUSEKEEPING_LOCK = 0x6375_686B  # "cuhk"
_TRY = text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))")
_UNLOCK = text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))")


def run_housekeeping_exclusively(*, db: Engine, settings: Settings, clock: Clock) -> Swept | None:
    """One pass unless another process is in the middle of one (then None, nothing done).

    Every web worker runs this loop; on PostgreSQL a session advisory lock lets one pass run at
    a time across all of them (released when the pass ends, or by the server when the process
    holding it dies). SQLite is served by one process, whose loop never overlaps itself.
    """
    with _lease(db) as held:
        if not held:
            return None
        return run_housekeeping(db=db, settings=settings, clock=clock)


@contextmanager
def _lease(db: Engine) -> Iterator[bool]:
    if db.dialect.name != "postgresql":
        yield True
        return
    with db.connect() as conn:
        held = bool(conn.execute(_TRY, {"key": HOUSEKEEPING_LOCK}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(_UNLOCK, {"key": HOUSEKEEPING_LOCK})
                conn.commit()
