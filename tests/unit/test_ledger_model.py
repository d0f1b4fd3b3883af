"""The ledger against a plain-Python reference model, step by step, plus its sharpest edges."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
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
from sqlmodel import select

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
from tests.conftest import new_account

SCOPES = {Wallet.web: {LotScope.web, LotScope.both}, Wallet.api: {LotScope.api, LotScope.both}}
TIMEOUT = timedelta(seconds=ledger.DEFAULT_RESERVATION_TIMEOUT_SECONDS)
ACCOUNT_NUMBERS = itertools.count()  # one fresh account per generated run


# --- the reference model: plain Python, no database -------------------------------------------


@dataclass
class ModelLot:
    id: int
    scope: LotScope
    amount: int
    issued: datetime
    expires: datetime
    remaining: int = 0
    reserved: int = 0
    closed: str | None = None  # "expired" or "voided" once written off

    def active(self, now: datetime) -> bool:
        return self.issued <= now < self.expires and self.closed != "voided"


@dataclass
class ModelReservation:
    key: str
    wallet: Wallet
    amount: int
    deadline: datetime
    holds: list[tuple[int, int]]  # (lot id, amount) in draw order
    status: ReservationStatus = ReservationStatus.open
    captured: int = 0


@dataclass
class Model:
    lots: dict[int, ModelLot] = field(default_factory=dict)
    reservations: dict[str, ModelReservation] = field(default_factory=dict)

    def draw_order(self, wallet: Wallet, now: datetime) -> list[ModelLot]:
        lots = [lot for lot in self.lots.values() if lot.scope in SCOPES[wallet]]
        lots = [lot for lot in lots if lot.active(now)]
        return sorted(lots, key=lambda lot: (lot.expires, lot.issued, lot.id))

    def available(self, wallet: Wallet, now: datetime) -> int:
        return sum(lot.remaining - lot.reserved for lot in self.draw_order(wallet, now))

    def reserve(self, key: str, wallet: Wallet, amount: int, now: datetime) -> None:
        holds, left = [], amount
        for lot in self.draw_order(wallet, now):
            take = min(left, lot.remaining - lot.reserved)
            if take > 0:
                lot.reserved += take
                holds.append((lot.id, take))
                left -= take
        assert left == 0
        self.reservations[key] = ModelReservation(key, wallet, amount, now + TIMEOUT, holds)

    def resolve(self, key: str, captured: int, status: ReservationStatus) -> None:
        reservation = self.reservations[key]
        to_capture = captured
        for lot_id, held in reservation.holds:
            lot = self.lots[lot_id]
            take = min(to_capture, held)
            to_capture -= take
            lot.reserved -= held
            lot.remaining -= take
            if lot.closed:  # handed back to a closed lot: written off at once
                lot.remaining -= held - take
        reservation.status, reservation.captured = status, captured

    def expire(self, now: datetime) -> None:
        for lot in self.lots.values():
            if lot.expires <= now and lot.closed is None:
                lot.remaining = lot.reserved
                lot.closed = "expired"

    def void(self, lot_id: int) -> None:
        lot = self.lots[lot_id]
        if lot.closed != "voided":
            lot.remaining = lot.reserved
            lot.closed = "voided"


# --- the state machine ------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")
    grants = Bundle("grants")

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.clock = FrozenClock()
        self.model = Model()
        self.counter = 0
        # Operations that succeeded, to replay: replaying any key must equal doing it once.
        self.done: list[tuple[str, Callable[[], Any], Any]] = []

    def new_key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        with writing(self.engine) as session:
            return operation(
                session=session, clock=self.clock, account_id=self.account_id, **kwargs
            )

    @initialize()
    def open_account(self) -> None:
        with writing(self.engine) as session:
            account = new_account(session, self.clock, f"model-{next(ACCOUNT_NUMBERS)}@example.com")
            trial = session.exec(select(CreditLot).where(CreditLot.account_id == account.id)).one()
        assert account.id is not None and trial.id is not None
        self.account_id = account.id
        self.model.lots[trial.id] = ModelLot(
            trial.id, LotScope.both, 10_000, trial.issued_at, trial.expires_at, remaining=10_000
        )

    @rule(
        target=grants,
        scope=st.sampled_from(list(LotScope)),
        amount=st.integers(1, 20_000),
        valid_days=st.sampled_from([1, 30, 90]),
    )
    def grant(self, scope: LotScope, amount: int, valid_days: int) -> str:
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
        now = self.clock.now()
        self.model.lots[lot_id] = ModelLot(
            lot_id, scope, amount, now, now + timedelta(days=valid_days), remaining=amount
        )
        self.done.append(("grant", again, lot_id))
        return key

    @rule(target=reservations, wallet=st.sampled_from(list(Wallet)), amount=st.integers(1, 8_000))
    def reserve(self, wallet: Wallet, amount: int) -> Any:
        key = self.new_key("reserve")
        now = self.clock.now()
        available = self.model.available(wallet, now)

        def again() -> tuple[int, ReservationStatus]:
            reservation = self.call(ledger.reserve_credits, wallet=wallet, amount=amount, key=key)
            return reservation.id, reservation.status

        if available < amount:
            with pytest.raises(ledger.InsufficientCredits) as refused:
                again()
            assert (refused.value.available, refused.value.needed) == (available, amount)
            return multiple()  # nothing to capture or release later
        outcome = again()
        self.model.reserve(key, wallet, amount, now)
        self.assert_holds_match(key, outcome[0])
        self.done.append(("reserve", again, outcome[0]))
        return key

    @rule(
        wallet=st.sampled_from(list(Wallet)),
        amount=st.integers(1, 8_000),
        spend=st.integers(0, 100),
    )
    def charge(self, wallet: Wallet, amount: int, spend: int) -> None:
        """Reserve, then capture part of it at once: the normal life of one cut-out."""
        if self.model.available(wallet, self.clock.now()) < amount:
            return
        key = self.reserve(wallet, amount)
        self.capture(key, spend)

    # Few rules, each doing a whole step of life: Hypothesis switches rules off at random per run
    # (swarm testing), and sequences like reserve -> travel -> capture need all of them on.
    @rule(
        key=reservations,
        action=st.sampled_from(["capture", "release"]),
        spend=st.integers(0, 100),
    )
    def resolve(self, key: str, action: str, spend: int) -> None:
        """Resolve a reservation, perhaps again: it resolves exactly once."""
        if action == "capture":
            self.capture(key, spend)
        else:
            self.release(key)

    @rule(
        step=st.sampled_from([60, 5 * 60, 11 * 60, 86_400, 29 * 86_400, 61 * 86_400]),
        housekeeping=st.sampled_from(["none", "expire", "sweep", "both"]),
    )
    def travel(self, step: int, housekeeping: str) -> None:
        self.clock.advance(timedelta(seconds=step))
        if housekeeping in ("expire", "both"):
            self.expire()
        if housekeeping in ("sweep", "both"):
            self.sweep()

    def capture(self, key: str, spend: int) -> None:
        expected = self.model.reservations.get(key)
        amount_to_capture = (expected.amount if expected else 0) * spend // 100

        def again() -> tuple[ReservationStatus, int]:
            reservation = self.call(ledger.capture_reservation, key=key, amount=amount_to_capture)
            return reservation.status, reservation.captured

        if expected is None:
            with pytest.raises(ledger.ReservationNotFound):
                again()
        elif expected.status == ReservationStatus.captured:
            assert again() == (ReservationStatus.captured, expected.captured)
        elif expected.status != ReservationStatus.open:
            with pytest.raises(ledger.ReservationClosed):
                again()
        elif self.clock.now() >= expected.deadline:
            with pytest.raises(ledger.ReservationTimedOut):
                again()
        else:
            outcome = again()
            self.model.resolve(key, amount_to_capture, ReservationStatus.captured)
            assert outcome == (ReservationStatus.captured, amount_to_capture)
            self.done.append(("capture", again, outcome))

    def release(self, key: str) -> None:
        expected = self.model.reservations.get(key)

        def again() -> ReservationStatus:
            return self.call(ledger.release_reservation, key=key).status

        if expected is None:
            with pytest.raises(ledger.ReservationNotFound):
                again()
        elif expected.status in (ReservationStatus.open, ReservationStatus.released):
            assert again() == ReservationStatus.released
            if expected.status == ReservationStatus.open:
                self.model.resolve(key, 0, ReservationStatus.released)
                self.done.append(("release", again, ReservationStatus.released))
        else:
            with pytest.raises(ledger.ReservationClosed):
                again()

    def expire(self) -> None:
        with writing(self.engine) as session:
            ledger.expire_lots(session=session, clock=self.clock, account_id=self.account_id)
        self.model.expire(self.clock.now())

    def sweep(self) -> None:
        now = self.clock.now()
        with writing(self.engine) as session:
            swept = ledger.sweep_timed_out_reservations(session=session, clock=self.clock)
            mine = {r.key for r in swept if r.account_id == self.account_id}
        due = {
            key
            for key, r in self.model.reservations.items()
            if r.status == ReservationStatus.open and r.deadline <= now
        }
        assert mine == due
        for key in sorted(due):
            self.model.resolve(key, 0, ReservationStatus.timed_out)

    @rule(data=st.data(), roll=st.integers(0, 3))
    def void(self, data: st.DataObject, roll: int) -> None:
        if roll:  # voids are rare in life; voiding on every pick would empty most runs early
            return
        lot_id = data.draw(st.sampled_from(sorted(self.model.lots)))
        key = self.new_key("void")

        def again() -> int:
            return self.call(ledger.void_lot, lot_id=lot_id, key=key).remaining

        remaining = again()
        self.model.void(lot_id)
        assert remaining == self.model.lots[lot_id].remaining
        self.done.append(("void", again, remaining))

    @rule(data=st.data(), times=st.integers(1, 3))
    def replay(self, data: st.DataObject, times: int) -> None:
        if not self.done:
            return
        name, again, first = data.draw(st.sampled_from(self.done))
        before = self.snapshot()
        for _ in range(times):
            outcome = again()
            if name in ("grant", "reserve"):
                outcome = outcome if name == "grant" else outcome[0]
            if name in ("grant", "reserve", "release"):
                assert outcome == first, name
            elif name == "capture":
                assert outcome == first
        assert self.snapshot() == before, f"replaying {name} changed the ledger"

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
        # The model draws soonest-expiring first; the ledger must have drawn the same lots.
        assert [tuple(hold) for hold in holds] == self.model.reservations[key].holds

    @invariant()
    def lots_match_the_model_and_their_entries(self) -> None:
        if not hasattr(self, "account_id"):
            return
        with writing(self.engine) as session:
            lots = session.exec(
                select(CreditLot).where(CreditLot.account_id == self.account_id)
            ).all()
            sums: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
            for lot_id, kind, total in session.exec(
                select(LedgerEntry.lot_id, LedgerEntry.kind, sa.func.sum(LedgerEntry.amount))
                .where(LedgerEntry.account_id == self.account_id)
                .group_by(LedgerEntry.lot_id, LedgerEntry.kind)
            ).all():
                sums[lot_id][EntryKind(kind)] = int(total)
        assert {lot.id for lot in lots} == set(self.model.lots)
        for lot in lots:
            expected = self.model.lots[lot.id]
            assert (lot.remaining, lot.reserved) == (expected.remaining, expected.reserved)
            assert 0 <= lot.reserved <= lot.remaining <= lot.amount
            s = sums[lot.id]
            consumed, expired, voided = s[EntryKind.capture], s[EntryKind.expire], s[EntryKind.void]
            assert s[EntryKind.grant] == lot.amount == lot.remaining + consumed + expired + voided

    @invariant()
    def balances_match_the_model(self) -> None:
        if not hasattr(self, "account_id"):
            return
        now = self.clock.now()
        with writing(self.engine) as session:
            balances = ledger.balance(session=session, clock=self.clock, account_id=self.account_id)
        for wallet in Wallet:
            assert balances[wallet].available == self.model.available(wallet, now)
            assert balances[wallet].available >= 0
            open_amounts = [
                r.amount
                for r in self.model.reservations.values()
                if r.wallet == wallet and r.status == ReservationStatus.open
            ]
            assert balances[wallet].reserved == sum(open_amounts)
            expiries = [(lot.expires_at, lot.issued_at, lot.id) for lot in balances[wallet].lots]
            assert expiries == sorted(expiries)

    @invariant()
    def reservations_resolve_exactly_and_the_ledger_check_passes(self) -> None:
        if not hasattr(self, "account_id"):
            return
        with writing(self.engine) as session:
            rows = session.exec(
                select(Reservation).where(Reservation.account_id == self.account_id)
            ).all()
            problems = ledger.check_ledger(session=session, account_id=self.account_id)
        assert {r.key: (r.status, r.captured) for r in rows} == {
            key: (r.status, r.captured) for key, r in self.model.reservations.items()
        }
        # The check recomputes captured + released = reserved and holds within validity.
        assert problems == []


@pytest.mark.parametrize("engine_name", ["db", "pg_db"])
def test_ledger_matches_reference_model(engine_name: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    examples = 100 if engine_name == "db" else 25
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


def test_a_lot_that_expires_while_reserved_still_honours_the_reservation(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.web,
            amount=4_000,
            key="job-1",
        )
    clock.advance(timedelta(days=90) - timedelta(seconds=1))
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.web,
            amount=1_000,
            key="job-2",
        )
    clock.advance(timedelta(seconds=2))  # the trial lot is now past its 90 days
    with writing(db) as session:
        expired = ledger.expire_lots(session=session, clock=clock)
        ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key="job-2", amount=600
        )
        ledger.release_reservation(session=session, clock=clock, account_id=account_id, key="job-1")
        balances = ledger.balance(session=session, clock=clock, account_id=account_id)
        lot = session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).one()
        problems = ledger.check_ledger(session=session)
    assert [e.id for e in expired] == [lot.id]
    assert (lot.remaining, lot.reserved) == (0, 0)  # 600 spent, the rest written off as expired
    assert balances[Wallet.web].available == 0
    assert problems == []


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
    with pytest.raises(ledger.InsufficientCredits) as refused, writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.web,
            amount=10_500,
            key="big",
        )
    assert (refused.value.available, refused.value.needed) == (10_000, 10_500)
    assert "10 available, 10.5 needed" in str(refused.value)


def test_reusing_a_key_for_a_different_reservation_is_refused(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    kwargs = {"clock": clock, "account_id": account_id, "wallet": Wallet.web, "key": "k"}
    with writing(db) as session:
        ledger.reserve_credits(session=session, amount=1_000, **kwargs)
    with pytest.raises(ledger.IdempotencyConflict), writing(db) as session:
        ledger.reserve_credits(session=session, amount=2_000, **kwargs)


def test_capturing_more_than_reserved_is_refused(
    db: Engine, clock: FrozenClock, account_id: int
) -> None:
    kwargs = {"clock": clock, "account_id": account_id, "key": "k"}
    with writing(db) as session:
        ledger.reserve_credits(session=session, wallet=Wallet.web, amount=1_000, **kwargs)
    with pytest.raises(ledger.InvalidAmount), writing(db) as session:
        ledger.capture_reservation(session=session, amount=1_001, **kwargs)


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
