"""The credit ledger: grant, reserve, capture, release, expire, void, sweep, balances, check.

Every write locks the account first (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the engine's
``BEGIN IMMEDIATE`` already serialises writers), so two charges never both spend the same
credits. Functions flush but never commit: the caller owns the transaction (``app.db.writing``).
Each operation is idempotent on a caller-supplied key; a retry returns the first outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert
from sqlmodel import Session, col, select

from app.db import require_writing
from app.models.accounts import Account
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
from app.services.billing.pricing import format_credits
from app.services.clock import Clock

DEFAULT_LOT_VALID_DAYS = 90
DEFAULT_RESERVATION_TIMEOUT_SECONDS = 600

SCOPES_OF_WALLET: dict[Wallet, tuple[LotScope, ...]] = {
    Wallet.web: (LotScope.web, LotScope.both),
    Wallet.api: (LotScope.api, LotScope.both),
}


class LedgerError(Exception):
    """A ledger operation was refused; nothing was written."""


class AccountNotFound(LedgerError):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"no account with id {account_id}")
        self.account_id = account_id


class InvalidAmount(LedgerError):
    pass


class InsufficientCredits(LedgerError):
    def __init__(self, *, wallet: Wallet, available: int, needed: int) -> None:
        super().__init__(
            f"not enough {wallet.value} credits: {format_credits(available)} available, "
            f"{format_credits(needed)} needed"
        )
        self.wallet = wallet
        self.available = available
        self.needed = needed


class IdempotencyConflict(LedgerError):
    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for {detail}")
        self.key = key


class ReservationNotFound(LedgerError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no reservation with key {key!r}")
        self.key = key


class ReservationClosed(LedgerError):
    """The reservation was already resolved another way; it resolves exactly once."""

    def __init__(self, key: str, status: ReservationStatus) -> None:
        super().__init__(f"reservation {key!r} is already {status.value}")
        self.key = key
        self.status = status


class ReservationTimedOut(ReservationClosed):
    """Past its deadline: the sweeper will release it, so it can no longer be captured."""

    def __init__(self, key: str) -> None:
        LedgerError.__init__(self, f"reservation {key!r} timed out before it was captured")
        self.key = key
        self.status = ReservationStatus.timed_out


class LotNotFound(LedgerError):
    def __init__(self, lot_id: int) -> None:
        super().__init__(f"no credit lot with id {lot_id} on this account")
        self.lot_id = lot_id


@dataclass(frozen=True)
class LotView:
    id: int
    source: LotSource
    scope: LotScope
    amount: int
    remaining: int
    reserved: int
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class WalletBalance:
    wallet: Wallet
    available: int  # what a new reservation may take now
    reserved: int  # held by this wallet's open reservations
    lots: tuple[LotView, ...]  # active lots serving this wallet, soonest-expiring first


@dataclass(frozen=True)
class EntryView:
    id: int
    kind: EntryKind
    amount: int
    lot_id: int
    lot_source: LotSource
    reservation_id: int | None
    op_key: str
    created_at: datetime


@dataclass(frozen=True)
class HistoryPage:
    entries: tuple[EntryView, ...]  # newest first
    page: int
    per_page: int
    total: int


@dataclass(frozen=True)
class Payment:
    """The money behind a purchased lot."""

    amount: int  # in the currency's minor unit (cents)
    currency: str
    ref: str  # the payment it came from: a Stripe invoice, Checkout session or payment intent


@dataclass(frozen=True)
class Discrepancy:
    subject: str  # "lot 12", "reservation 7"
    field: str
    stored: int
    recomputed: int

    def __str__(self) -> str:
        return f"{self.subject}: {self.field} is {self.stored}, entries say {self.recomputed}"


def grant_credits(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    amount: int,
    scope: LotScope,
    source: LotSource,
    key: str,
    valid_days: int = DEFAULT_LOT_VALID_DAYS,
    note: str | None = None,
    payment: Payment | None = None,
    granted_by: str | None = None,
) -> CreditLot:
    """Issue a lot of ``amount`` milli-credits valid for ``valid_days`` from now.

    A purchased lot records the `payment` behind it; an operator's grant who made it
    (`granted_by`) and why (`note`).
    """
    _require_positive(amount, "grant")
    if valid_days < 1:
        raise InvalidAmount(f"a lot must be valid for at least one day, not {valid_days}")
    _lock_account(session, account_id)
    existing = session.exec(
        select(CreditLot).where(CreditLot.account_id == account_id, CreditLot.grant_key == key)
    ).first()
    if existing is not None:
        if (existing.amount, existing.scope, existing.source) != (amount, scope, source):
            raise IdempotencyConflict(key, f"a {existing.source.value} lot of {existing.amount}")
        return existing
    now = clock.now()
    lot = CreditLot(
        account_id=account_id,
        source=source,
        scope=scope,
        amount=amount,
        remaining=amount,
        issued_at=now,
        expires_at=now + timedelta(days=valid_days),
        grant_key=key,
        note=note,
        paid_amount=payment.amount if payment else None,
        paid_currency=payment.currency if payment else None,
        payment_ref=payment.ref if payment else None,
        granted_by=granted_by,
    )
    session.add(lot)
    session.flush()
    _write(session, [_entry(lot, EntryKind.grant, amount, key, now)])
    return lot


def reserve_credits(
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    wallet: Wallet,
    amount: int,
    key: str,
    timeout_seconds: int = DEFAULT_RESERVATION_TIMEOUT_SECONDS,
) -> Reservation:
    """Hold ``amount`` from the wallet's active lots, soonest-expiring first, or refuse.

    A refused reservation leaves no trace, so retrying its key later may succeed.
    """
    _require_positive(amount, "reservation")
    _lock_for_charge(session, account_id)
    existing = _find_reservation(session, account_id, key)
    if existing is not None:
        if (existing.wallet, existing.amount) != (wallet, amount):
            raise IdempotencyConflict(
                key, f"a reservation of {existing.amount} from {existing.wallet.value}"
            )
        return existing
    now = clock.now()
    lots = _active_lots(session, account_id, wallet, now)
    available = sum(lot.remaining - lot.reserved for lot in lots)
    if available < amount:
        if not lots:
            _lock_account(session, account_id)  # an unknown account says so, not "0 available"
        raise InsufficientCredits(wallet=wallet, available=available, needed=amount)
    reservation = Reservation(
        account_id=account_id,
        wallet=wallet,
        key=key,
        amount=amount,
        created_at=now,
        expires_at=now + timedelta(seconds=timeout_seconds),
    )
    session.add(reservation)
    holds: list[tuple[CreditLot, int]] = []
    left = amount
    for lot in lots:
        take = min(left, lot.remaining - lot.reserved)
        if take <= 0:
            continue
        lot.reserved += take
        holds.append((lot, take))
        left -= take
        if not left:
            break
    # One flush writes the reservation (giving it its id) and the lots' holds together.
    session.flush()
    _write(
        session, [_entry(lot, EntryKind.hold, take, key, now, reservation) for lot, take in holds]
    )
    return reservation


def capture_reservation(
    *, session: Session, clock: Clock, account_id: int, key: str, amount: int
) -> Reservation:
    """Spend ``amount`` (at most what was reserved) and hand the rest back."""
    _lock_for_charge(session, account_id)
    reservation = _get_reservation(session, account_id, key)
    if reservation.status == ReservationStatus.captured:
        return reservation
    if reservation.status != ReservationStatus.open:
        raise ReservationClosed(key, reservation.status)
    if not 0 <= amount <= reservation.amount:
        raise InvalidAmount(
            f"cannot capture {format_credits(amount)} credits of a reservation of "
            f"{format_credits(reservation.amount)}"
        )
    now = clock.now()
    # The deadline is the contract: whether a late capture succeeded must not depend on when
    # the sweeper last ran.
    if now >= reservation.expires_at:
        raise ReservationTimedOut(key)
    _resolve(session, reservation, amount, ReservationStatus.captured, now)
    return reservation


def release_reservation(
    *, session: Session, clock: Clock, account_id: int, key: str
) -> Reservation:
    """Hand everything back, e.g. when processing failed."""
    _lock_for_charge(session, account_id)
    reservation = _get_reservation(session, account_id, key)
    if reservation.status == ReservationStatus.released:
        return reservation
    if reservation.status != ReservationStatus.open:
        raise ReservationClosed(key, reservation.status)
    _resolve(session, reservation, 0, ReservationStatus.released, clock.now())
    return reservation


def sweep_timed_out_reservations(
    *, session: Session, clock: Clock, limit: int = 1000
) -> list[Reservation]:
    """Release reservations nobody resolved before their deadline."""
    now = clock.now()
    due = (
        Reservation.status == ReservationStatus.open,
        col(Reservation.expires_at) <= now,
    )
    account_ids = session.exec(
        select(Reservation.account_id).where(*due).distinct().limit(limit)
    ).all()
    swept: list[Reservation] = []
    for account_id in sorted(account_ids):  # one lock order for every sweeper: no deadlocks
        _lock_account(session, account_id)
        rows = session.exec(
            select(Reservation)
            .where(Reservation.account_id == account_id, *due)
            .order_by(col(Reservation.id))
            .execution_options(populate_existing=True)
        ).all()
        for reservation in rows:
            _resolve(session, reservation, 0, ReservationStatus.timed_out, now)
            swept.append(reservation)
    return swept


def expire_lots(
    *, session: Session, clock: Clock, account_id: int | None = None, limit: int = 1000
) -> list[CreditLot]:
    """Write off the unspent, unreserved rest of every lot past its expiry, once."""
    now = clock.now()
    due = [
        col(CreditLot.expires_at) <= now,
        col(CreditLot.expired_at).is_(None),
        col(CreditLot.voided_at).is_(None),
    ]
    if account_id is not None:
        due.append(CreditLot.account_id == account_id)
    account_ids = session.exec(select(CreditLot.account_id).where(*due).distinct().limit(limit))
    expired: list[CreditLot] = []
    entries: list[dict[str, Any]] = []
    for owner in sorted(account_ids.all()):
        _lock_account(session, owner)
        lots = session.exec(
            select(CreditLot)
            .where(CreditLot.account_id == owner, *due)
            .order_by(col(CreditLot.id))
            .execution_options(populate_existing=True)
        ).all()
        for lot in lots:
            rest = lot.remaining - lot.reserved
            if rest:
                lot.remaining -= rest
                entries.append(_entry(lot, EntryKind.expire, rest, f"expire:{lot.id}", now))
            # Credits still held honour their reservation; what comes back later expires then.
            lot.expired_at = now
            expired.append(lot)
    _write(session, entries)
    return expired


def void_lot(
    *, session: Session, clock: Clock, account_id: int, lot_id: int, key: str
) -> CreditLot:
    """Cancel a lot's unspent rest (a refund, a mistaken grant). Held credits stay honoured."""
    _lock_account(session, account_id)
    lot = session.exec(
        select(CreditLot)
        .where(CreditLot.id == lot_id, CreditLot.account_id == account_id)
        .execution_options(populate_existing=True)
    ).first()
    if lot is None:
        raise LotNotFound(lot_id)
    if lot.voided_at is not None:
        return lot
    now = clock.now()
    entries = []
    rest = lot.remaining - lot.reserved
    if rest:
        lot.remaining -= rest
        entries.append(_entry(lot, EntryKind.void, rest, key, now))
    lot.voided_at = now
    _write(session, entries)
    return lot


def balance(*, session: Session, clock: Clock, account_id: int) -> dict[Wallet, WalletBalance]:
    """Per wallet: what can be reserved now, what is held, and the lots behind it."""
    now = clock.now()
    open_by_wallet: dict[Wallet, int] = defaultdict(int)
    for wallet, amount in session.exec(
        select(Reservation.wallet, func.sum(Reservation.amount))
        .where(
            Reservation.account_id == account_id,
            Reservation.status == ReservationStatus.open,
        )
        .group_by(Reservation.wallet)
    ).all():
        open_by_wallet[Wallet(wallet)] = int(amount)
    result: dict[Wallet, WalletBalance] = {}
    for wallet in Wallet:
        lots = [lot for lot in _active_lots(session, account_id, wallet, now) if lot.remaining]
        result[wallet] = WalletBalance(
            wallet=wallet,
            available=sum(lot.remaining - lot.reserved for lot in lots),
            reserved=open_by_wallet[wallet],
            lots=tuple(_lot_view(lot) for lot in lots),
        )
    return result


def history(*, session: Session, account_id: int, page: int = 1, per_page: int = 50) -> HistoryPage:
    page = max(page, 1)
    per_page = min(max(per_page, 1), 500)
    total = session.exec(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
    ).one()
    rows = session.exec(
        select(LedgerEntry, CreditLot.source)
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .where(LedgerEntry.account_id == account_id)
        .order_by(col(LedgerEntry.id).desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    entries = tuple(
        EntryView(
            id=_id(entry.id),
            kind=entry.kind,
            amount=entry.amount,
            lot_id=entry.lot_id,
            lot_source=LotSource(source),
            reservation_id=entry.reservation_id,
            op_key=entry.op_key,
            created_at=entry.created_at,
        )
        for entry, source in rows
    )
    return HistoryPage(entries=entries, page=page, per_page=per_page, total=int(total))


def check_ledger(*, session: Session, account_id: int | None = None) -> list[Discrepancy]:
    """Recompute every lot and reservation from the entries; an empty list means all agree."""
    sums: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
    by_lot = select(LedgerEntry.lot_id, LedgerEntry.kind, func.sum(LedgerEntry.amount)).group_by(
        LedgerEntry.lot_id, LedgerEntry.kind
    )
    lots_query = select(CreditLot).order_by(col(CreditLot.id))
    if account_id is not None:
        by_lot = by_lot.where(LedgerEntry.account_id == account_id)
        lots_query = lots_query.where(CreditLot.account_id == account_id)
    for lot_id, kind, total in session.exec(by_lot).all():
        sums[lot_id][EntryKind(kind)] = int(total)
    found: list[Discrepancy] = []

    def compare(subject: str, field: str, stored: int, recomputed: int) -> None:
        if stored != recomputed:
            found.append(Discrepancy(subject, field, stored, recomputed))

    for lot in session.exec(lots_query.execution_options(populate_existing=True)).all():
        s = sums[_id(lot.id)]
        subject = f"lot {lot.id}"
        compare(subject, "amount", lot.amount, s[EntryKind.grant])
        spent = s[EntryKind.capture] + s[EntryKind.expire] + s[EntryKind.void]
        compare(subject, "remaining", lot.remaining, s[EntryKind.grant] - spent)
        held = s[EntryKind.hold] - s[EntryKind.capture] - s[EntryKind.release]
        compare(subject, "reserved", lot.reserved, held)
        if lot.expired_at is not None or lot.voided_at is not None:
            # A closed lot keeps only what open reservations still hold.
            unreserved = lot.remaining - lot.reserved
            compare(subject, "unreserved remaining of a closed lot", unreserved, 0)

    found.extend(_check_reservations(session, account_id))
    found.extend(_check_hold_validity(session, account_id))
    return found


def _check_reservations(session: Session, account_id: int | None) -> list[Discrepancy]:
    sums: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
    by_reservation = (
        select(LedgerEntry.reservation_id, LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(col(LedgerEntry.reservation_id).is_not(None))
        .group_by(LedgerEntry.reservation_id, LedgerEntry.kind)
    )
    reservations = select(Reservation).order_by(col(Reservation.id))
    if account_id is not None:
        by_reservation = by_reservation.where(LedgerEntry.account_id == account_id)
        reservations = reservations.where(Reservation.account_id == account_id)
    for reservation_id, kind, total in session.exec(by_reservation).all():
        sums[reservation_id][EntryKind(kind)] = int(total)
    found: list[Discrepancy] = []
    for reservation in session.exec(reservations).all():
        s = sums[_id(reservation.id)]
        subject = f"reservation {reservation.id}"
        resolved = reservation.status != ReservationStatus.open
        captured = reservation.captured if resolved else 0
        released = reservation.amount - captured if resolved else 0
        for field, stored, recomputed in (
            ("held", reservation.amount, s[EntryKind.hold]),
            ("captured", captured, s[EntryKind.capture]),
            ("released", released, s[EntryKind.release]),
        ):
            if stored != recomputed:
                found.append(Discrepancy(subject, field, stored, recomputed))
    return found


def _check_hold_validity(session: Session, account_id: int | None) -> list[Discrepancy]:
    """Credits are only ever held from a lot while it is active."""
    outside = (
        select(LedgerEntry.id, LedgerEntry.lot_id, LedgerEntry.amount)
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .where(
            LedgerEntry.kind == EntryKind.hold,
            (col(LedgerEntry.created_at) < col(CreditLot.issued_at))
            | (col(LedgerEntry.created_at) >= col(CreditLot.expires_at)),
        )
    )
    if account_id is not None:
        outside = outside.where(LedgerEntry.account_id == account_id)
    return [
        Discrepancy(f"lot {lot_id}", f"held outside its validity by entry {entry_id}", amount, 0)
        for entry_id, lot_id, amount in session.exec(outside).all()
    ]


_HOLDS = (
    select(LedgerEntry.amount, CreditLot)
    .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
    .where(
        LedgerEntry.reservation_id == bindparam("reservation_id"),
        LedgerEntry.kind == EntryKind.hold,
    )
    .order_by(col(LedgerEntry.id))
    .execution_options(populate_existing=True)
)


def _resolve(
    session: Session,
    reservation: Reservation,
    captured: int,
    status: ReservationStatus,
    now: datetime,
) -> None:
    """Capture ``captured`` from the holds in the order they were taken; release the rest."""
    holds = session.exec(_HOLDS, params={"reservation_id": reservation.id}).all()
    entries: list[dict[str, Any]] = []
    to_capture = captured
    for held, lot in holds:
        take = min(to_capture, held)
        give_back = held - take
        to_capture -= take
        if take:
            lot.reserved -= take
            lot.remaining -= take
            entries.append(_entry(lot, EntryKind.capture, take, reservation.key, now, reservation))
        if give_back:
            lot.reserved -= give_back
            entries.append(
                _entry(lot, EntryKind.release, give_back, reservation.key, now, reservation)
            )
            # Handed back to a lot that is already closed: write it off at once, as its
            # expiry or void would have done had the credits not been held.
            if lot.voided_at is not None:
                lot.remaining -= give_back
                entries.append(_entry(lot, EntryKind.void, give_back, f"void:{lot.id}", now))
            elif lot.expired_at is not None:
                lot.remaining -= give_back
                entries.append(_entry(lot, EntryKind.expire, give_back, f"expire:{lot.id}", now))
    reservation.status = status
    reservation.captured = captured
    reservation.resolved_at = now
    session.add(reservation)
    _write(session, entries)


# FOR UPDATE is a no-op on SQLite, where BEGIN IMMEDIATE has already taken the write lock.
# Built once: these run on every charge, and building statements is a large part of the cost.
_LOCK_ACCOUNT = select(Account.id).where(Account.id == bindparam("account_id")).with_for_update()
_INSERT_ENTRY = insert(LedgerEntry)


def _lock_for_charge(session: Session, account_id: int) -> None:
    """Serialise a charge with the account's other writes.

    On SQLite the transaction's BEGIN IMMEDIATE already holds the only write lock, and the
    reservation and lot queries that follow are scoped to the account, so the extra round trip
    is skipped on this hot path (a fifth of a reserve+capture pair's statements).
    """
    require_writing(session)
    if session.get_bind().dialect.name != "sqlite":
        _lock_account(session, account_id)


def _lock_account(session: Session, account_id: int) -> None:
    require_writing(session)
    found = session.connection().execute(_LOCK_ACCOUNT, {"account_id": account_id}).first()
    if found is None:
        raise AccountNotFound(account_id)


_ACTIVE_LOTS = (
    select(CreditLot)
    .where(
        CreditLot.account_id == bindparam("account_id"),
        col(CreditLot.scope).in_(bindparam("scopes", expanding=True)),
        col(CreditLot.issued_at) <= bindparam("now"),
        col(CreditLot.expires_at) > bindparam("now"),
        col(CreditLot.voided_at).is_(None),
    )
    .order_by(col(CreditLot.expires_at), col(CreditLot.issued_at), col(CreditLot.id))
    # Fresh values after the lock, whatever this session read before it.
    .execution_options(populate_existing=True)
)
_FIND_RESERVATION = (
    select(Reservation)
    .where(Reservation.account_id == bindparam("account_id"), Reservation.key == bindparam("key"))
    .execution_options(populate_existing=True)
)


def _active_lots(
    session: Session, account_id: int, wallet: Wallet, now: datetime
) -> Sequence[CreditLot]:
    params = {"account_id": account_id, "scopes": list(SCOPES_OF_WALLET[wallet]), "now": now}
    return session.exec(_ACTIVE_LOTS, params=params).all()


def find_reservation(*, session: Session, account_id: int, key: str) -> Reservation | None:
    """The account's reservation under `key`, in whatever state it is; None if there is none."""
    return _find_reservation(session, account_id, key)


def _find_reservation(session: Session, account_id: int, key: str) -> Reservation | None:
    return session.exec(_FIND_RESERVATION, params={"account_id": account_id, "key": key}).first()


def _get_reservation(session: Session, account_id: int, key: str) -> Reservation:
    reservation = _find_reservation(session, account_id, key)
    if reservation is None:
        raise ReservationNotFound(key)
    return reservation


def _entry(
    lot: CreditLot,
    kind: EntryKind,
    amount: int,
    op_key: str,
    now: datetime,
    reservation: Reservation | None = None,
) -> dict[str, Any]:
    return {
        "account_id": lot.account_id,
        "lot_id": _id(lot.id),
        "reservation_id": reservation.id if reservation else None,
        "kind": kind,
        "amount": amount,
        "op_key": op_key,
        "created_at": now,
    }


def _write(session: Session, entries: list[dict[str, Any]]) -> None:
    """Flush the lots' cached columns, then append the entries in one statement."""
    session.flush()
    if entries:
        # Core, not the ORM: entries are never read back by the operation that writes them,
        # and the ORM's per-object bookkeeping was most of the cost of every charge.
        session.connection().execute(_INSERT_ENTRY, entries)


def _lot_view(lot: CreditLot) -> LotView:
    return LotView(
        id=_id(lot.id),
        source=lot.source,
        scope=lot.scope,
        amount=lot.amount,
        remaining=lot.remaining,
        reserved=lot.reserved,
        issued_at=lot.issued_at,
        expires_at=lot.expires_at,
    )


def _id(value: int | None) -> int:
    # Rows read from or flushed to the database always have their primary key.
    assert value is not None
    return value


def _require_positive(amount: int, what: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount(f"a {what} must be a positive whole number of milli-credits")
