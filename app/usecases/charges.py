"""A reserve or a capture that is a unit of work of its own (an API call's hold and its charge).

On PostgreSQL the plain case is one autocommitted call of the ledger's database function: no
BEGIN and COMMIT round trips, which were half of a charge's cost. When that call declines (it
then wrote nothing), the ledger's general path runs in a writing unit and says why or does the
rest. A charge that must commit together with other writes (a job's start, a job's finish)
stays inside that unit of work and calls the ledger directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from app.db import has_one_statement_units, one_statement, writing
from app.models.ledger import LotSource, Reservation, Wallet
from app.services.billing import ledger
from app.services.clock import Clock


def reserve(
    *,
    db: Engine,
    clock: Clock,
    account_id: int,
    wallet: Wallet,
    amount: int,
    key: str,
    timeout_seconds: int = ledger.DEFAULT_RESERVATION_TIMEOUT_SECONDS,
    sources: Sequence[LotSource] | None = None,
) -> Reservation:
    """Hold `amount` for `key` (ledger.reserve_credits, committed before it returns)."""
    if sources is None and has_one_statement_units(db):
        with one_statement(db) as unit:
            made = ledger.reserve_in_one_call(
                unit=unit,
                clock=clock,
                account_id=account_id,
                wallet=wallet,
                amount=amount,
                key=key,
                timeout_seconds=timeout_seconds,
            )
        if made is not None:
            return made
    with writing(db) as session:
        return ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=wallet,
            amount=amount,
            key=key,
            timeout_seconds=timeout_seconds,
            sources=sources,
        )


def capture(*, db: Engine, clock: Clock, account_id: int, key: str, amount: int) -> Reservation:
    """Spend `amount` of `key`'s hold (ledger.capture_reservation, committed before it returns)."""
    if has_one_statement_units(db):
        with one_statement(db) as unit:
            done = ledger.capture_in_one_call(
                unit=unit, clock=clock, account_id=account_id, key=key, amount=amount
            )
        if done is not None:
            return done
    with writing(db) as session:
        return ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key=key, amount=amount
        )
