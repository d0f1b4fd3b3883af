"""The ledger against a reference model written from the rules, step by step, plus sharp edges.

The model is not the implementation again. It keeps no caches and runs no sweeps: it records
what was granted, held and spent, and derives everything else from the product's rules at the
moment it is asked:

1. A wallet draws only on lots whose scope serves it (web: web + both; api: api + both), and
   only while a lot is active (issued, not expired, not voided).
2. A reservation takes from those lots soonest expiry first (then earliest issue, then lot id);
   it is refused whole if they do not hold enough free credits.
3. A reservation is live until it is captured, released, or its deadline passes. At the
   deadline it lapses, for every purpose, whether or not any sweeper has run: its credits are
   free again and it can no longer be resolved.
4. A capture spends at most what was held, from the held credits that expire soonest; the rest
   is free again. A lot's free credits are its amount less what was spent from it and what live
   reservations hold on it.
5. Replaying an operation's key gives its first outcome; a different request under a used key
   is a conflict; a resolved or lapsed reservation's key says so.

Housekeeping (sweeps, expiry) may run at any moment and must never change what the model sees.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.db import writing
from app.models.ledger import (
    CreditLot,
    EntryKind,
    LedgerEntry,
    LotScope,
    LotSource,
    Reservation,
    ReservationStatus,
    Wallet,
)
from app.services.billing import ledger
from app.services.clock import FrozenClock
from app.services.identity.accounts import (
    EmailTaken,
    InvalidEmail,
    WeakPassword,
    grant_trial,
    verify_password,
)
from app.usecases import charges
from tests.conftest import new_account

SERVES = {Wallet.web: {LotScope.web, LotScope.both}, Wallet.api: {LotScope.api, LotScope.both}}
TIMEOUT = timedelta(seconds=ledger.DEFAULT_RESERVATION_TIMEOUT_SECONDS)
ACCOUNT_NUMBERS = itertools.count()  # fresh accounts per generated run
BAD_AMOUNTS = [0, -1, 1.5, True, "5", ledger.MAX_AMOUNT + 1]


# --- the reference model: plain Python, from the rules above ----------------------------------


@dataclass
class ModelLot:
    id: int
    source: LotSource
    scope: LotScope
    amount: int
    issued: datetime
    expires: datetime
    voided: bool = False

    def active(self, now: datetime) -> bool:
        return self.issued <= now < self.expires and not self.voided

    def order(self) -> tuple[datetime, datetime, int]:
        return (self.expires, self.issued, self.id)


@dataclass
class ModelReservation:
    key: str
    wallet: Wallet
    amount: int
    deadline: datetime
    holds: dict[int, int]  # lot id -> credits held there
    resolution: ReservationStatus | None = None  # captured or released, once
    captured: int = 0
    spent: dict[int, int] = field(default_factory=dict)  # lot id -> credits spent there

    def status(self, now: datetime) -> ReservationStatus:
        if self.resolution is not None:
            return self.resolution
        return ReservationStatus.timed_out if now >= self.deadline else ReservationStatus.open


@dataclass
class Model:
    lots: dict[int, ModelLot] = field(default_factory=dict)
    reservations: dict[str, ModelReservation] = field(default_factory=dict)

    def spent_from(self, lot_id: int) -> int:
        return sum(r.spent.get(lot_id, 0) for r in self.reservations.values())

    def held_on(self, lot_id: int, now: datetime) -> int:
        return sum(
            r.holds.get(lot_id, 0)
            for r in self.reservations.values()
            if r.status(now) == ReservationStatus.open
        )

    def unspent(self, lot: ModelLot) -> int:
        return lot.amount - self.spent_from(lot.id)

    def free(self, lot: ModelLot, now: datetime) -> int:
        return self.unspent(lot) - self.held_on(lot.id, now)

    def usable(
        self, wallet: Wallet, now: datetime, sources: tuple[LotSource, ...] | None = None
    ) -> list[ModelLot]:
        lots = [
            lot
            for lot in self.lots.values()
            if lot.scope in SERVES[wallet]
            and lot.active(now)
            and (sources is None or lot.source in sources)
        ]
        return sorted(lots, key=ModelLot.order)

    def available(
        self, wallet: Wallet, now: datetime, sources: tuple[LotSource, ...] | None = None
    ) -> int:
        return sum(self.free(lot, now) for lot in self.usable(wallet, now, sources))

    def live_reserved(self, wallet: Wallet, now: datetime) -> int:
        return sum(
            r.amount
            for r in self.reservations.values()
            if r.wallet == wallet and r.status(now) == ReservationStatus.open
        )

    def reserve(
        self,
        key: str,
        wallet: Wallet,
        amount: int,
        now: datetime,
        sources: tuple[LotSource, ...] | None,
    ) -> None:
        holds: dict[int, int] = {}
        need = amount
        for lot in self.usable(wallet, now, sources):
            take = min(need, self.free(lot, now))
            if take > 0:
                holds[lot.id] = take
                need -= take
        assert need == 0, "reserve() is only called when enough is available"
        self.reservations[key] = ModelReservation(key, wallet, amount, now + TIMEOUT, holds)

    def capture(self, key: str, amount: int) -> None:
        reservation = self.reservations[key]
        need = amount
        for lot_id in sorted(reservation.holds, key=lambda i: self.lots[i].order()):
            take = min(need, reservation.holds[lot_id])
            if take:
                reservation.spent[lot_id] = take
                need -= take
        reservation.resolution, reservation.captured = ReservationStatus.captured, amount

    def release(self, key: str) -> None:
        self.reservations[key].resolution = ReservationStatus.released


def seen_status(row: Reservation, now: datetime) -> ReservationStatus:
    """What a stored reservation is now: an open one past its deadline has lapsed."""
    if row.status == ReservationStatus.open and now >= row.expires_at:
        return ReservationStatus.timed_out
    return row.status


# --- tampering, for the auditor ---------------------------------------------------------------


@contextmanager
def unguarded(session: Session) -> Iterator[None]:
    """Lift the append-only and fixed-column triggers inside this (rolled back) transaction."""
    if session.get_bind().dialect.name == "sqlite":
        for trigger in ("ledger_entry_no_update", "ledger_entry_no_delete", "credit_lot_fixed"):
            session.execute(sa.text(f"DROP TRIGGER {trigger}"))
    else:
        for table in ("ledger_entry", "credit_lot"):
            session.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    yield


class RolledBack(Exception):
    pass


@dataclass(frozen=True)
class Tamper:
    """One way to corrupt the books, and what the ledger check must say about it."""

    name: str
    # Given a session and the account, corrupt something and return the (subject, field) the
    # check must report, or None when this state has nothing to corrupt that way.
    apply: Callable[[Session, int, int], tuple[str, str] | None]


def _one(session: Session, query: Any) -> Any:
    return session.exec(query).first()


def _lots(account_id: int) -> Any:
    return select(CreditLot).where(CreditLot.account_id == account_id).order_by(CreditLot.id)


def tamper_remaining(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    lot = _one(session, _lots(account_id).where(CreditLot.remaining > CreditLot.reserved))
    if lot is None:
        return None
    session.execute(
        sa.text("UPDATE credit_lot SET remaining = remaining - 1 WHERE id = :id"), {"id": lot.id}
    )
    return f"lot {lot.id}", "remaining"


def tamper_reserved(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    lot = _one(session, _lots(account_id).where(CreditLot.reserved > 0))
    if lot is None:
        return None
    session.execute(
        sa.text("UPDATE credit_lot SET reserved = reserved - 1 WHERE id = :id"), {"id": lot.id}
    )
    return f"lot {lot.id}", "reserved"


def tamper_close(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Mark a lot expired without writing off its rest."""
    lot = _one(
        session,
        _lots(account_id).where(
            CreditLot.expired_at.is_(None),  # type: ignore[union-attr]
            CreditLot.voided_at.is_(None),  # type: ignore[union-attr]
            CreditLot.remaining > CreditLot.reserved,
        ),
    )
    if lot is None:
        return None
    session.execute(
        sa.text("UPDATE credit_lot SET expired_at = issued_at WHERE id = :id"), {"id": lot.id}
    )
    return f"lot {lot.id}", "unreserved remaining of a closed lot"


def tamper_hold_time(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Date a hold after its lot expired: the sums stay right, the timing does not."""
    row = _one(
        session,
        select(LedgerEntry, CreditLot)
        .join(CreditLot, CreditLot.id == LedgerEntry.lot_id)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.hold),
    )
    if row is None:
        return None
    entry, lot = row
    with unguarded(session):
        session.execute(
            sa.update(LedgerEntry)
            .where(LedgerEntry.id == entry.id)
            .values(created_at=lot.expires_at + timedelta(seconds=1))
        )
    return f"lot {lot.id}", f"held outside its validity by entry {entry.id}"


def tamper_entry_account(session: Session, account_id: int, other: int) -> tuple[str, str] | None:
    """Move an entry to another account: every sum per lot stays right."""
    entry = _one(
        session,
        select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id),
    )
    with unguarded(session):
        session.execute(
            sa.update(LedgerEntry).where(LedgerEntry.id == entry.id).values(account_id=other)
        )
    return f"entry {entry.id}", "account_id"


def tamper_expiry(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Extend a lot's validity: only its grant entry remembers."""
    lot = _one(session, _lots(account_id))
    with unguarded(session):
        session.execute(
            sa.update(CreditLot)
            .where(CreditLot.id == lot.id)
            .values(expires_at=lot.expires_at + timedelta(days=365))
        )
    return f"lot {lot.id}", "expires_at"


def tamper_amount(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Raise a lot's amount: its remaining and its entries still add up the old way."""
    lot = _one(session, _lots(account_id))
    with unguarded(session):
        session.execute(
            sa.update(CreditLot).where(CreditLot.id == lot.id).values(amount=lot.amount + 500)
        )
    return f"lot {lot.id}", "amount"


def tamper_scope(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    lot = _one(session, _lots(account_id))
    scope = LotScope.both if lot.scope != LotScope.both else LotScope.web
    with unguarded(session):
        session.execute(sa.update(CreditLot).where(CreditLot.id == lot.id).values(scope=scope))
    return f"lot {lot.id}", "scope"


def tamper_lot_account(session: Session, account_id: int, other: int) -> tuple[str, str] | None:
    """Hand a whole lot to another account; its entries still name the first."""
    lot = _one(session, _lots(account_id))
    with unguarded(session):
        session.execute(sa.update(CreditLot).where(CreditLot.id == lot.id).values(account_id=other))
    return f"lot {lot.id}", "account_id"


def tamper_issued(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    lot = _one(session, _lots(account_id))
    with unguarded(session):
        session.execute(
            sa.update(CreditLot)
            .where(CreditLot.id == lot.id)
            .values(issued_at=lot.issued_at - timedelta(days=1))
        )
    return f"lot {lot.id}", "issued_at"


def tamper_grant(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Delete a lot's grant entry (and its amount with it)."""
    entry = _one(
        session,
        select(LedgerEntry).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.grant
        ),
    )
    with unguarded(session):
        session.execute(sa.delete(LedgerEntry).where(LedgerEntry.id == entry.id))
    return f"lot {entry.lot_id}", "grant entries"


def _reservation(
    session: Session, account_id: int, status: ReservationStatus
) -> Reservation | None:
    return _one(
        session,
        select(Reservation).where(
            Reservation.account_id == account_id, Reservation.status == status
        ),
    )


def tamper_status(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Relabel a resolution: released and timed out differ only in when they happened."""
    swaps = {
        ReservationStatus.released: ReservationStatus.timed_out,
        ReservationStatus.timed_out: ReservationStatus.released,
    }
    for before, after in swaps.items():
        reservation = _reservation(session, account_id, before)
        if reservation is not None:
            session.execute(
                sa.update(Reservation).where(Reservation.id == reservation.id).values(status=after)
            )
            return f"reservation {reservation.id}", "status"
    return None


def tamper_reopen(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    """Turn a captured reservation back to open, as if never charged."""
    reservation = _reservation(session, account_id, ReservationStatus.captured)
    if reservation is None:
        return None
    session.execute(
        sa.update(Reservation)
        .where(Reservation.id == reservation.id)
        .values(status=ReservationStatus.open)
    )
    return f"reservation {reservation.id}", "status"


def tamper_captured(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    reservation = _reservation(session, account_id, ReservationStatus.captured)
    if reservation is None or reservation.captured < 2:
        return None
    session.execute(
        sa.update(Reservation)
        .where(Reservation.id == reservation.id)
        .values(captured=reservation.captured - 1)
    )
    return f"reservation {reservation.id}", "captured"


def tamper_held(session: Session, account_id: int, _other: int) -> tuple[str, str] | None:
    reservation = _one(session, select(Reservation).where(Reservation.account_id == account_id))
    if reservation is None:
        return None
    session.execute(
        sa.update(Reservation)
        .where(Reservation.id == reservation.id)
        .values(amount=reservation.amount + 1)
    )
    return f"reservation {reservation.id}", "held"


TAMPERS = [
    Tamper("remaining", tamper_remaining),
    Tamper("reserved", tamper_reserved),
    Tamper("closed without write-off", tamper_close),
    Tamper("hold after expiry", tamper_hold_time),
    Tamper("entry on another account", tamper_entry_account),
    Tamper("expiry extended", tamper_expiry),
    Tamper("amount raised", tamper_amount),
    Tamper("scope widened", tamper_scope),
    Tamper("lot moved to another account", tamper_lot_account),
    Tamper("issue date moved", tamper_issued),
    Tamper("grant entry deleted", tamper_grant),
    Tamper("resolution relabelled", tamper_status),
    Tamper("captured reopened", tamper_reopen),
    Tamper("captured amount", tamper_captured),
    Tamper("held amount", tamper_held),
]


def detected(engine: Engine, tamper: Tamper, account_id: int, other: int) -> bool | None:
    """Apply `tamper`, run the check in the same transaction, roll everything back.

    None when the state offered nothing to tamper with that way.
    """
    outcome: bool | None = None
    try:
        with writing(engine) as session:
            expected = tamper.apply(session, account_id, other)
            if expected is not None:
                found = ledger.check_ledger(session=session)
                outcome = expected in {(d.subject, d.field) for d in found}
                if not outcome:
                    pytest.fail(f"{tamper.name}: expected {expected}, the check found {found}")
            raise RolledBack
    except RolledBack:
        pass
    return outcome


# --- the state machine ------------------------------------------------------------------------

ALONE: dict[Callable[..., Any], Callable[..., Any]] = {
    ledger.reserve_credits: charges.reserve,
    ledger.capture_reservation: charges.capture,
}


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.clock = FrozenClock()
        self.model = Model()
        self.counter = 0
        self.calls = 0
        # Operations that succeeded, to replay: replaying any key must equal doing it once.
        self.done: list[tuple[str, Callable[[], Any], Any]] = []

    def new_key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def now(self) -> datetime:
        return self.clock.now()

    def call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        self.calls += 1
        alone = ALONE.get(operation)
        if alone is not None and self.calls % 2:
            # Every other hold and capture as a unit of work of its own, as an API call makes
            # them (on PostgreSQL, the one autocommitted database call when the case is plain).
            return alone(db=self.engine, clock=self.clock, account_id=self.account_id, **kwargs)
        with writing(self.engine) as session:
            return operation(
                session=session, clock=self.clock, account_id=self.account_id, **kwargs
            )

    @initialize()
    def open_accounts(self) -> None:
        number = next(ACCOUNT_NUMBERS)
        with writing(self.engine) as session:
            account = new_account(session, self.clock, f"model-{number}@example.com")
            other = new_account(session, self.clock, f"other-{number}@example.com")
            trial = session.exec(select(CreditLot).where(CreditLot.account_id == account.id)).one()
        assert account.id is not None and other.id is not None and trial.id is not None
        self.account_id, self.other_id = account.id, other.id
        self.model.lots[trial.id] = ModelLot(
            trial.id, LotSource.trial, LotScope.both, 10_000, trial.issued_at, trial.expires_at
        )

    @rule(
        scope=st.sampled_from(list(LotScope)),
        amount=st.integers(1, 20_000),
        valid_days=st.sampled_from([1, 30, 90]),
    )
    def grant(self, scope: LotScope, amount: int, valid_days: int) -> None:
        key = self.new_key("grant")

        def again() -> int:
            lot = self.call(
                ledger.grant_credits,
                amount=amount,
                scope=scope,
                source=LotSource.adjustment,
                key=key,
                valid_days=valid_days,
            )
            return lot.id

        lot_id = again()
        now = self.now()
        self.model.lots[lot_id] = ModelLot(
            lot_id, LotSource.adjustment, scope, amount, now, now + timedelta(days=valid_days)
        )
        self.done.append(("grant", again, lot_id))

    @rule(
        target=reservations,
        wallet=st.sampled_from(list(Wallet)),
        amount=st.integers(1, 8_000),
        trial_only=st.sampled_from([False, False, False, True]),
    )
    def reserve(self, wallet: Wallet, amount: int, trial_only: bool) -> Any:
        key = self.new_key("reserve")
        now = self.now()
        sources = (LotSource.trial,) if trial_only else None
        available = self.model.available(wallet, now, sources)

        def again() -> int:
            reservation = self.call(
                ledger.reserve_credits, wallet=wallet, amount=amount, key=key, sources=sources
            )
            return reservation.id

        if available < amount:
            with pytest.raises(ledger.InsufficientCredits) as refused:
                again()
            assert (refused.value.available, refused.value.needed) == (available, amount)
            return multiple()  # nothing to capture or release later
        reservation_id = again()
        self.model.reserve(key, wallet, amount, now, sources)
        self.assert_holds_match(key, reservation_id)
        self.done.append(("reserve", again, reservation_id))
        return key

    @rule(
        wallet=st.sampled_from(list(Wallet)),
        amount=st.integers(1, 8_000),
        spend=st.integers(1, 100),
    )
    def charge(self, wallet: Wallet, amount: int, spend: int) -> None:
        """Reserve, then capture part of it at once: the normal life of one cut-out."""
        if self.model.available(wallet, self.now()) < amount:
            return
        key = self.reserve(wallet, amount, False)
        self.capture(key, spend)

    # Few rules, each doing a whole step of life: Hypothesis switches rules off at random per run
    # (swarm testing), and sequences like reserve -> travel -> capture need all of them on.
    @rule(
        key=reservations,
        action=st.sampled_from(["capture", "release", "reserve again", "capture otherwise"]),
        spend=st.integers(1, 100),
    )
    def resolve(self, key: str, action: str, spend: int) -> None:
        """Resolve a reservation, perhaps again, perhaps differently: it resolves once."""
        if action == "capture":
            self.capture(key, spend)
        elif action == "release":
            self.release(key)
        elif action == "reserve again":
            self.reserve_again(key)
        else:
            self.capture_otherwise(key)

    @rule(
        step=st.sampled_from([60, 5 * 60, 11 * 60, 86_400, 29 * 86_400, 61 * 86_400]),
        housekeeping=st.sampled_from(["none", "expire", "sweep", "both"]),
    )
    def travel(self, step: int, housekeeping: str) -> None:
        self.clock.advance(timedelta(seconds=step))
        with writing(self.engine) as session:
            if housekeeping in ("expire", "both"):
                ledger.expire_lots(session=session, clock=self.clock, account_id=self.account_id)
            if housekeeping in ("sweep", "both"):
                ledger.sweep_timed_out_reservations(session=session, clock=self.clock)
        # Nothing to tell the model: housekeeping only writes down what the rules already say.

    def capture(self, key: str, spend: int) -> None:
        expected = self.model.reservations[key]
        amount = max(1, expected.amount * spend // 100)
        status = expected.status(self.now())

        def again() -> tuple[ReservationStatus, int]:
            reservation = self.call(ledger.capture_reservation, key=key, amount=amount)
            return reservation.status, reservation.captured

        if status == ReservationStatus.captured:
            if amount == expected.captured:
                assert again() == (ReservationStatus.captured, amount)
            else:
                with pytest.raises(ledger.IdempotencyConflict):
                    again()
        elif status != ReservationStatus.open:
            with pytest.raises(ledger.ReservationClosed) as closed:
                again()
            assert closed.value.status == status
        else:
            outcome = again()
            self.model.capture(key, amount)
            assert outcome == (ReservationStatus.captured, amount)
            self.done.append(("capture", again, outcome))

    def capture_otherwise(self, key: str) -> None:
        """A captured reservation replayed with another amount is a conflict, not a no-op."""
        expected = self.model.reservations[key]
        if expected.status(self.now()) != ReservationStatus.captured:
            return
        other = expected.captured % expected.amount + 1  # in range, and not the same
        if other == expected.captured:
            return
        with pytest.raises(ledger.IdempotencyConflict):
            self.call(ledger.capture_reservation, key=key, amount=other)

    def release(self, key: str) -> None:
        expected = self.model.reservations[key]
        status = expected.status(self.now())

        def again() -> ReservationStatus:
            return self.call(ledger.release_reservation, key=key).status

        if status in (ReservationStatus.open, ReservationStatus.released):
            assert again() == ReservationStatus.released
            if status == ReservationStatus.open:
                self.model.release(key)
                self.done.append(("release", again, ReservationStatus.released))
        else:
            with pytest.raises(ledger.ReservationClosed) as closed:
                again()
            assert closed.value.status == status

    def reserve_again(self, key: str) -> None:
        """Reserving with a used key: the live hold itself, or word that it is over."""
        expected = self.model.reservations[key]
        status = expected.status(self.now())

        def again() -> int:
            return self.call(
                ledger.reserve_credits, wallet=expected.wallet, amount=expected.amount, key=key
            ).id

        if status == ReservationStatus.open:
            again()
        else:
            with pytest.raises(ledger.ReservationClosed) as closed:
                again()
            assert closed.value.status == status

    @rule(data=st.data(), roll=st.integers(0, 3))
    def void(self, data: st.DataObject, roll: int) -> None:
        if roll:  # voids are rare in life; voiding on every pick would empty most runs early
            return
        lot_id = data.draw(st.sampled_from(sorted(self.model.lots)))
        key = self.new_key("void")

        def again() -> tuple[int, bool]:
            lot = self.call(ledger.void_lot, lot_id=lot_id, key=key)
            return lot.id, lot.voided_at is not None

        assert again() == (lot_id, True)
        self.model.lots[lot_id].voided = True
        self.done.append(("void", again, (lot_id, True)))

    @rule(
        operation=st.sampled_from(["grant", "reserve", "capture"]),
        amount=st.sampled_from(BAD_AMOUNTS),
    )
    def refuse_bad_amounts(self, operation: str, amount: Any) -> None:
        """Every operation takes only a positive whole number of milli-credits."""
        before = self.snapshot()
        with pytest.raises(ledger.InvalidAmount):
            if operation == "grant":
                self.call(
                    ledger.grant_credits,
                    amount=amount,
                    scope=LotScope.web,
                    source=LotSource.adjustment,
                    key=self.new_key("bad"),
                )
            elif operation == "reserve":
                self.call(
                    ledger.reserve_credits, wallet=Wallet.web, amount=amount, key=self.new_key("b")
                )
            else:
                live = [
                    r.key
                    for r in self.model.reservations.values()
                    if r.status(self.now()) == ReservationStatus.open
                ]
                self.call(ledger.capture_reservation, key=(live or ["none"])[0], amount=amount)
        assert self.snapshot() == before

    @rule(data=st.data(), times=st.integers(1, 3))
    def replay(self, data: st.DataObject, times: int) -> None:
        if not self.done:
            return
        name, again, first = data.draw(st.sampled_from(self.done))
        if name == "reserve":
            return  # a reservation's replay depends on its status: reserve_again covers it
        before = self.snapshot()
        for _ in range(times):
            assert again() == first, name
        assert self.snapshot() == before, f"replaying {name} changed the ledger"

    @rule(tamper=st.sampled_from(TAMPERS))
    def tamper(self, tamper: Tamper) -> None:
        """Whatever the state, the auditor notices each kind of corruption."""
        detected(self.engine, tamper, self.account_id, self.other_id)

    # --- checks after every step ---

    def snapshot(self) -> tuple[Any, ...]:
        with writing(self.engine) as session:
            lots = session.exec(
                select(CreditLot.id, CreditLot.remaining, CreditLot.reserved).where(
                    CreditLot.account_id == self.account_id
                )
            ).all()
            entries = session.exec(
                select(sa.func.count()).where(LedgerEntry.account_id == self.account_id)
            ).one()
        return tuple(sorted(lots)), entries

    def assert_holds_match(self, key: str, reservation_id: int) -> None:
        with writing(self.engine) as session:
            holds = session.exec(
                select(LedgerEntry.lot_id, LedgerEntry.amount)
                .where(
                    LedgerEntry.reservation_id == reservation_id,
                    LedgerEntry.kind == EntryKind.hold,
                )
                .order_by(LedgerEntry.id)
            ).all()
        # Rule 2: the ledger drew the lots the model drew, in the same order, the same amounts.
        assert [tuple(hold) for hold in holds] == list(self.model.reservations[key].holds.items())

    @invariant()
    def wallets_match_the_rules(self) -> None:
        if not hasattr(self, "account_id"):
            return
        now = self.now()
        with writing(self.engine) as session:
            balances = ledger.balance(session=session, clock=self.clock, account_id=self.account_id)
        for wallet in Wallet:
            shown = balances[wallet]
            assert shown.available == self.model.available(wallet, now), wallet
            assert shown.reserved == self.model.live_reserved(wallet, now), wallet
            expected_lots = {
                lot.id: (self.model.unspent(lot), self.model.held_on(lot.id, now))
                for lot in self.model.usable(wallet, now)
                if self.model.unspent(lot)
            }
            assert {lot.id: (lot.remaining, lot.reserved) for lot in shown.lots} == expected_lots
            assert [lot.id for lot in shown.lots] == [
                lot.id for lot in self.model.usable(wallet, now) if lot.id in expected_lots
            ]

    @invariant()
    def reservations_match_the_rules_and_the_ledger_check_passes(self) -> None:
        if not hasattr(self, "account_id"):
            return
        now = self.now()
        with writing(self.engine) as session:
            rows = session.exec(
                select(Reservation).where(Reservation.account_id == self.account_id)
            ).all()
            # This account's books only: earlier examples share the database.
            problems = ledger.check_ledger(session=session, account_id=self.account_id)
            lots = session.exec(
                select(CreditLot).where(CreditLot.account_id == self.account_id)
            ).all()
        assert {r.key: (seen_status(r, now), r.captured) for r in rows} == {
            key: (r.status(now), r.captured) for key, r in self.model.reservations.items()
        }
        assert {lot.id for lot in lots} == set(self.model.lots)
        assert problems == []


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_ledger_matches_reference_model(engine_name: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    examples = 60 if engine_name == "db" else 20
    run_state_machine_as_test(
        lambda: LedgerMachine(engine),
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# --- sharp edges, one at a time ---------------------------------------------------------------


@pytest.fixture
def account_id(db: Engine, clock: FrozenClock) -> int:
    with writing(db) as session:
        account = new_account(session, clock, "a@example.com")
    assert account.id is not None
    return account.id


def reserve(db: Engine, clock: FrozenClock, account_id: int, key: str, amount: int, **kw: Any):  # type: ignore[no-untyped-def]
    with writing(db) as session:
        return ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=kw.pop("wallet", Wallet.web),
            amount=amount,
            key=key,
            **kw,
        )


def capture(db: Engine, clock: FrozenClock, account_id: int, key: str, amount: Any):  # type: ignore[no-untyped-def]
    with writing(db) as session:
        return ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key=key, amount=amount
        )


def release(db: Engine, clock: FrozenClock, account_id: int, key: str):  # type: ignore[no-untyped-def]
    with writing(db) as session:
        return ledger.release_reservation(
            session=session, clock=clock, account_id=account_id, key=key
        )


def web_balance(db: Engine, clock: FrozenClock, account_id: int) -> ledger.WalletBalance:
    with writing(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[Wallet.web]


def test_a_lot_that_expires_while_reserved_still_honours_the_reservation(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    clock.advance(timedelta(days=90) - timedelta(seconds=1))
    reserve(db, clock, account_id, "job", 1_000)
    clock.advance(timedelta(seconds=2))  # the trial lot is now past its 90 days
    with writing(db) as session:
        expired = ledger.expire_lots(session=session, clock=clock)
    capture(db, clock, account_id, "job", 600)
    with writing(db) as session:
        lot = session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).one()
        problems = ledger.check_ledger(session=session)
    assert [e.id for e in expired] == [lot.id]
    assert (lot.remaining, lot.reserved) == (0, 0)  # 600 spent, the rest written off as expired
    assert web_balance(db, clock, account_id).available == 0
    assert problems == []


def test_a_reservation_lapses_at_its_deadline_before_any_sweep(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    reserve(db, clock, account_id, "slow", 8_000)
    assert web_balance(db, clock, account_id).available == 2_000
    clock.advance(TIMEOUT)
    # No sweeper has run: the hold is free again all the same, for every purpose.
    lapsed = web_balance(db, clock, account_id)
    assert (lapsed.available, lapsed.reserved) == (10_000, 0)
    assert [(lot.remaining, lot.reserved) for lot in lapsed.lots] == [(10_000, 0)]
    reserve(db, clock, account_id, "next", 9_000)
    with pytest.raises(ledger.ReservationTimedOut):
        capture(db, clock, account_id, "slow", 8_000)
    with pytest.raises(ledger.ReservationTimedOut):
        release(db, clock, account_id, "slow")
    with writing(db) as session:
        stored = ledger.find_reservation(session=session, account_id=account_id, key="slow")
        assert stored is not None and stored.status == ReservationStatus.timed_out
        assert ledger.sweep_timed_out_reservations(session=session, clock=clock) == []
        assert ledger.check_ledger(session=session) == []


def test_capture_after_the_deadline_is_refused_and_the_sweeper_releases(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.api,
            amount=2_000,
            key="slow",
        )
    clock.advance(TIMEOUT)
    with pytest.raises(ledger.ReservationTimedOut), writing(db) as session:
        ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key="slow", amount=2_000
        )
    with writing(db) as session:
        swept = ledger.sweep_timed_out_reservations(session=session, clock=clock)
        again = ledger.sweep_timed_out_reservations(session=session, clock=clock)
        available = ledger.balance(session=session, clock=clock, account_id=account_id)
    assert [r.status for r in swept] == [ReservationStatus.timed_out]
    assert again == []
    assert available[Wallet.api].available == 10_000


def test_insufficient_credits_says_what_is_available_and_needed(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with pytest.raises(ledger.InsufficientCredits) as refused:
        reserve(db, clock, account_id, "big", 10_500)
    assert (refused.value.available, refused.value.needed) == (10_000, 10_500)
    assert "10 available, 10.5 needed" in str(refused.value)


def test_reusing_a_key_for_a_different_reservation_is_refused(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    reserve(db, clock, account_id, "k", 1_000)
    with pytest.raises(ledger.IdempotencyConflict):
        reserve(db, clock, account_id, "k", 2_000)
    assert reserve(db, clock, account_id, "k", 1_000).status == ReservationStatus.open


@pytest.mark.parametrize("ending", ["released", "captured", "timed out", "lapsed"])
def test_reserving_with_a_key_that_is_no_longer_a_live_hold_says_so(
    db: Engine, clock: FrozenClock, account_id: int, ending: str
) -> None:
    reserve(db, clock, account_id, "k", 1_000)
    if ending == "released":
        release(db, clock, account_id, "k")
    elif ending == "captured":
        capture(db, clock, account_id, "k", 1_000)
    else:
        clock.advance(TIMEOUT)
        if ending == "timed out":
            with writing(db) as session:
                ledger.sweep_timed_out_reservations(session=session, clock=clock)
    with pytest.raises(ledger.ReservationClosed) as closed:
        reserve(db, clock, account_id, "k", 1_000)
    status = {"released": "released", "captured": "captured"}.get(ending, "timed_out")
    assert closed.value.status == ReservationStatus(status)
    assert web_balance(db, clock, account_id).reserved == 0  # no live hold came back


def test_a_capture_replayed_with_another_amount_is_a_conflict(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    reserve(db, clock, account_id, "k", 1_000)
    capture(db, clock, account_id, "k", 700)
    assert capture(db, clock, account_id, "k", 700).captured == 700  # the same: a replay
    with pytest.raises(ledger.IdempotencyConflict, match="0.7 credits"):
        capture(db, clock, account_id, "k", 800)
    assert web_balance(db, clock, account_id).available == 9_300


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_capture_validates_its_amount_like_reserve_and_grant(
    db: Engine, clock: FrozenClock, account_id: int, amount: Any
) -> None:
    reserve(db, clock, account_id, "k", 1_000)
    with pytest.raises(ledger.InvalidAmount, match="whole number of milli-credits"):
        capture(db, clock, account_id, "k", amount)
    with pytest.raises(ledger.InvalidAmount, match="whole number of milli-credits"):
        reserve(db, clock, account_id, "other", amount)
    with (
        pytest.raises(ledger.InvalidAmount, match="whole number of milli-credits"),
        writing(db) as session,
    ):
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            amount=amount,
            scope=LotScope.web,
            source=LotSource.adjustment,
            key="g",
        )
    assert web_balance(db, clock, account_id).reserved == 1_000  # the hold is still open


def test_capturing_more_than_reserved_is_refused(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    reserve(db, clock, account_id, "k", 1_000)
    with pytest.raises(ledger.InvalidAmount):
        capture(db, clock, account_id, "k", 1_001)


def test_the_database_refuses_a_negative_remaining(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with pytest.raises(IntegrityError), writing(db) as session:
        session.execute(sa.text("UPDATE credit_lot SET remaining = -1"))


def test_entries_cannot_be_edited_or_deleted(db: Engine, account_id: int) -> None:
    for statement in ("UPDATE ledger_entry SET amount = 1", "DELETE FROM ledger_entry"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), writing(db) as s:
            s.execute(sa.text(statement))


def test_the_ledger_check_finds_a_tampered_cache(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        session.execute(sa.text("UPDATE credit_lot SET remaining = remaining - 1"))
    with writing(db) as session:
        problems = ledger.check_ledger(session=session)
    assert [(p.field, p.stored, p.recomputed) for p in problems] == [("remaining", 9_999, 10_000)]


def test_history_pages_newest_first(db: Engine, clock: FrozenClock, account_id: int) -> None:
    with writing(db) as session:
        for n in range(3):
            ledger.reserve_credits(
                session=session,
                clock=clock,
                account_id=account_id,
                wallet=Wallet.web,
                amount=100,
                key=f"r{n}",
            )
        first = ledger.history(session=session, account_id=account_id, page=1, per_page=2)
        last = ledger.history(session=session, account_id=account_id, page=2, per_page=2)
    assert first.total == 4  # one grant and three holds
    assert [e.kind for e in first.entries] == [EntryKind.hold, EntryKind.hold]
    assert [e.kind for e in last.entries] == [EntryKind.hold, EntryKind.grant]


# --- accounts and their one trial lot ---------------------------------------------------------


def test_a_new_account_gets_its_trial_lot_exactly_once(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        again = grant_trial(
            session=session, clock=clock, account_id=account_id, credits=10, valid_days=90
        )
        lots = session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).all()
    assert len(lots) == 1 and lots[0].id == again.id
    assert (lots[0].source, lots[0].scope, lots[0].amount) == (
        LotSource.trial,
        LotScope.both,
        10_000,
    )
    assert lots[0].expires_at - lots[0].issued_at == timedelta(days=90)


def test_emails_are_normalised_and_unique(db: Engine, clock: FrozenClock, account_id: int) -> None:
    with pytest.raises(EmailTaken, match="a@example.com"), writing(db) as session:
        new_account(session, clock, "  A@Example.COM ")


@pytest.mark.parametrize("email", ["", "no-at-sign", "two@@example.com", "a b@example.com", "x@y"])
def test_malformed_emails_are_refused(db: Engine, clock: FrozenClock, email: str) -> None:
    with pytest.raises(InvalidEmail), writing(db) as session:
        new_account(session, clock, email)


def test_passwords_are_hashed_with_argon2id(db: Engine, clock: FrozenClock) -> None:
    with writing(db) as session:
        account = new_account(session, clock, "p@example.com", "correct horse")
    assert account.password_hash is not None
    assert account.password_hash.startswith("$argon2id$")
    assert verify_password(account.password_hash, "correct horse")
    assert not verify_password(account.password_hash, "wrong horse")
    with pytest.raises(WeakPassword), writing(db) as session:
        new_account(session, clock, "q@example.com", "short")


def test_credits_handed_back_to_a_voided_lot_are_voided_too(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.web,
            amount=3_000,
            key="held",
        )
        lot = session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).one()
        ledger.void_lot(session=session, clock=clock, account_id=account_id, lot_id=lot.id, key="v")
    with writing(db) as session:
        ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key="held", amount=1_000
        )
        balances = ledger.balance(session=session, clock=clock, account_id=account_id)
        kinds = [e.kind for e in ledger.history(session=session, account_id=account_id).entries]
        problems = ledger.check_ledger(session=session)
    assert balances[Wallet.web].available == 0
    assert kinds[:3] == [EntryKind.void, EntryKind.release, EntryKind.capture]
    assert problems == []


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_every_refusal_replay_and_write_off_of_a_charge_reads_the_same_on_both_databases(
    engine_name: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    """On PostgreSQL the plain charge is one database function, which leaves every other case
    to the Python path: each such case, one after the other, on both databases."""
    db: Engine = request.getfixturevalue(engine_name)
    with writing(db) as session:
        account = new_account(session, clock, "edges@example.com")
    assert account.id is not None
    me = account.id

    first = reserve(db, clock, me, "a", 4_000)
    assert reserve(db, clock, me, "a", 4_000).id == first.id  # a replay is the same hold
    with pytest.raises(ledger.IdempotencyConflict):
        reserve(db, clock, me, "a", 5_000)
    with pytest.raises(ledger.InsufficientCredits) as short:
        reserve(db, clock, me, "big", 7_000)
    assert (short.value.available, short.value.needed) == (6_000, 7_000)
    with pytest.raises(ledger.AccountNotFound):
        reserve(db, clock, me + 1_000, "nobody", 1_000)

    with pytest.raises(ledger.InvalidAmount):
        capture(db, clock, me, "a", 5_000)
    captured = capture(db, clock, me, "a", 3_000)
    assert (captured.status, captured.captured, captured.resolved_at) == (
        ReservationStatus.captured,
        3_000,
        clock.now(),
    )
    assert capture(db, clock, me, "a", 3_000).captured == 3_000  # replayed
    with pytest.raises(ledger.IdempotencyConflict):
        capture(db, clock, me, "a", 2_000)
    with pytest.raises(ledger.ReservationClosed):
        release(db, clock, me, "a")
    with pytest.raises(ledger.ReservationNotFound):
        capture(db, clock, me, "nokey", 1_000)

    reserve(db, clock, me, "slow", 2_000)
    clock.advance(TIMEOUT)
    # 5,000 are free even while the lapsed hold is on the books; the reserve writes it off all
    # the same, and the 2,000 it held are free again at once.
    reserve(db, clock, me, "after", 5_000)
    with writing(db) as session:
        slow = ledger.find_reservation(session=session, account_id=me, key="slow")
    assert slow is not None and slow.status == ReservationStatus.timed_out
    reserve(db, clock, me, "rest", 2_000)
    with pytest.raises(ledger.ReservationTimedOut):
        capture(db, clock, me, "slow", 2_000)

    with writing(db) as session:
        lot = ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=me,
            amount=5_000,
            scope=LotScope.web,
            source=LotSource.adjustment,
            key="extra",
        )
    reserve(db, clock, me, "held", 3_000)  # from the new lot: the trial's rest is all held
    with writing(db) as session:
        ledger.void_lot(session=session, clock=clock, account_id=me, lot_id=lot.id, key="v")
    assert release(db, clock, me, "held").status == ReservationStatus.released
    with writing(db) as session:
        voided = session.exec(select(CreditLot).where(CreditLot.id == lot.id)).one()
        kinds = [e.kind for e in ledger.history(session=session, account_id=me).entries]
        problems = ledger.check_ledger(session=session)
    assert (voided.remaining, voided.reserved) == (0, 0)  # handed back, then voided at once
    assert kinds[:2] == [EntryKind.void, EntryKind.release]
    assert problems == []


def test_a_purchased_lot_records_the_payment_and_an_operator_grant_who_made_it(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        bought = ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            amount=250_000,
            scope=LotScope.web,
            source=LotSource.top_up,
            key="checkout:cs_1",
            payment=ledger.Payment(amount=1000, currency="usd", ref="cs_1"),
        )
        given = ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            amount=5_000,
            scope=LotScope.both,
            source=LotSource.adjustment,
            key="admin:1",
            note="apology for an outage",
            granted_by="ops@example.com",
        )
    with writing(db) as session:
        bought_row = session.get(CreditLot, bought.id)
        given_row = session.get(CreditLot, given.id)
    assert (bought_row.paid_amount, bought_row.paid_currency, bought_row.payment_ref) == (
        1000,
        "usd",
        "cs_1",
    )
    assert bought_row.granted_by is None
    assert (given_row.granted_by, given_row.note, given_row.paid_amount) == (
        "ops@example.com",
        "apology for an outage",
        None,
    )


# --- the auditor against tampering, and the database's own guards -----------------------------


def rich_books(engine: Engine, clock: FrozenClock) -> tuple[int, int]:
    """An account whose books hold every kind of entry and every reservation status."""
    with writing(engine) as session:
        account = new_account(session, clock, "books@example.com")
        other = new_account(session, clock, "other@example.com")
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account.id,
            amount=5_000,
            scope=LotScope.web,
            source=LotSource.top_up,
            key="short",
            valid_days=1,
            payment=ledger.Payment(amount=200, currency="usd", ref="pi_1"),
        )
    reserve(engine, clock, account.id, "captured", 1_500)
    capture(engine, clock, account.id, "captured", 1_000)
    reserve(engine, clock, account.id, "released", 1_000)
    release(engine, clock, account.id, "released")
    reserve(engine, clock, account.id, "timed out", 500, wallet=Wallet.api)
    clock.advance(timedelta(minutes=11))
    with writing(engine) as session:
        ledger.sweep_timed_out_reservations(session=session, clock=clock)
    clock.advance(timedelta(days=1))
    with writing(engine) as session:
        ledger.expire_lots(session=session, clock=clock)
    reserve(engine, clock, account.id, "open", 2_000)
    with writing(engine) as session:
        assert ledger.check_ledger(session=session) == []
        statuses = {r.status for r in session.exec(select(Reservation)).all()}
    assert statuses == set(ReservationStatus)
    return account.id, other.id


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
def test_the_ledger_check_reports_each_kind_of_tampering(
    engine_name: str, tamper: Tamper, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    account_id, other_id = rich_books(engine, clock)
    assert detected(engine, tamper, account_id, other_id) is True
    with writing(engine) as session:
        assert ledger.check_ledger(session=session) == []  # rolled back: the books are whole


def test_a_grant_entry_records_the_lot_as_issued(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        lot = session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).one()
        grant = session.exec(
            select(LedgerEntry).where(
                LedgerEntry.lot_id == lot.id, LedgerEntry.kind == EntryKind.grant
            )
        ).one()
    assert (grant.account_id, grant.amount, grant.created_at) == (
        lot.account_id,
        lot.amount,
        lot.issued_at,
    )
    assert (grant.lot_scope, grant.lot_expires_at) == ("both", lot.expires_at)


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE credit_lot SET amount = amount + 1",
        "UPDATE credit_lot SET scope = 'web'",
        "UPDATE credit_lot SET expires_at = issued_at + (expires_at - issued_at) * 2",
        "UPDATE credit_lot SET account_id = account_id",  # even naming it changes nothing
        "UPDATE credit_lot SET issued_at = expires_at",
        "UPDATE credit_lot SET payment_ref = 'forged'",
        "DELETE FROM credit_lot",
    ],
)
def test_the_database_guards_a_lots_issued_columns(
    engine_name: str, statement: str, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    with writing(engine) as session:
        new_account(session, clock, "guarded@example.com")
    if "expires_at - issued_at" in statement and engine.dialect.name == "sqlite":
        statement = "UPDATE credit_lot SET expires_at = '2999-01-01 00:00:00.000000'"
    if statement.endswith("account_id = account_id"):
        # Setting a column to itself is no change: the guard lets it through.
        with writing(engine) as session:
            session.execute(sa.text(statement))
        return
    guarded = pytest.raises(sa.exc.DatabaseError, match="never change|never deleted|CHECK|check")
    with guarded, writing(engine) as session:
        session.execute(sa.text(statement))


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_a_lot_is_closed_once_and_its_caches_still_move(
    engine_name: str, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    with writing(engine) as session:
        account = new_account(session, clock, "closing@example.com")
        lot = session.exec(select(CreditLot)).one()
        ledger.void_lot(
            session=session,
            clock=clock,
            account_id=account.id,
            lot_id=lot.id,
            key="v",
            reason="refund",
            voided_by="ops",
        )
    for statement in (
        "UPDATE credit_lot SET voided_at = NULL",
        "UPDATE credit_lot SET void_reason = 'something else'",
    ):
        closed = pytest.raises(sa.exc.DatabaseError, match="closed at most once")
        with closed, writing(engine) as session:
            session.execute(sa.text(statement))
    with writing(engine) as session:
        stored = session.get(CreditLot, lot.id)
        assert (stored.void_reason, stored.voided_by, stored.remaining) == ("refund", "ops", 0)


@pytest.mark.parametrize("engine_name", ["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def test_balances_beyond_32_bits_are_kept_exactly(
    engine_name: str, clock: FrozenClock, request: pytest.FixtureRequest
) -> None:
    """2,147,484 credits is more milli-credits than a 32-bit column holds."""
    engine: Engine = request.getfixturevalue(engine_name)
    big = 2_147_484 * 1_000
    with writing(engine) as session:
        account = new_account(session, clock, "big@example.com")
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account.id,
            amount=big,
            scope=LotScope.web,
            source=LotSource.subscription,
            key="big",
        )
    reserve(engine, clock, account.id, "big", big)
    capture(engine, clock, account.id, "big", big - 1)
    with writing(engine) as session:
        web = ledger.balance(session=session, clock=clock, account_id=account.id)[Wallet.web]
        assert ledger.check_ledger(session=session) == []
    assert web.available == 10_000 + 1


def test_lots_with_credits_left_are_flagged_a_week_before_they_expire(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            amount=3_000,
            scope=LotScope.api,
            source=LotSource.api_pack,
            key="pack",
            valid_days=10,
        )
        assert ledger.expiring_soon(session=session, clock=clock) == []
    clock.advance(timedelta(days=3))  # the pack now expires in 7 days; the trial in 87
    reserve(db, clock, account_id, "hold", 1_000, wallet=Wallet.api)
    with writing(db) as session:
        soon = ledger.expiring_soon(session=session, clock=clock)
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
    assert [(w.account_id, w.source, w.credits_left) for w in soon] == [
        (account_id, LotSource.api_pack, 2_000)  # held credits are not "left"
    ]
    assert ledger.expiry_warnings_in(wallets, account_id=account_id, now=clock.now()) == soon
    reserve(db, clock, account_id, "rest", 2_000, wallet=Wallet.api)
    with writing(db) as session:
        assert ledger.expiring_soon(session=session, clock=clock) == []  # nothing left to lose
