"""The credit ledger: grant, reserve, capture, release, expire, void, sweep, balances, check.

Every write locks the account first (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the engine's
``BEGIN IMMEDIATE`` already serialises writers), so two charges never both spend the same
credits. Functions flush but never commit: the caller owns the transaction (``app.db.writing``).
Each operation is idempotent on a caller-supplied key; a retry returns the first outcome.

A reservation lapses at its deadline for every purpose: its credits count as free again and it
can no longer be captured or released, whether or not the sweeper has written it off yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Session, col, select

from app.db import OneStatement, writing_connection
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
from app.services.billing.ledger_driver import Driver
from app.services.billing.pricing import format_credits
from app.services.clock import Clock

DEFAULT_LOT_VALID_DAYS = 90
MAX_LOT_VALID_DAYS = 3660  # ten years: far enough, and far from datetime's limits
DEFAULT_RESERVATION_TIMEOUT_SECONDS = 600
# The largest single amount (a billion credits): sums of many stay far inside 64 bits.
MAX_AMOUNT = 10**12

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
    subject: str  # "lot 12", "reservation 7", "entry 40"
    field: str
    stored: object
    recomputed: object
    source: str = "entries say"  # where the expected value comes from

    def __str__(self) -> str:
        return f"{self.subject}: {self.field} is {self.stored}, {self.source} {self.recomputed}"


@dataclass(frozen=True)
class ExpiryWarning:
    """Credits that will expire soon unless spent: what a banner or a mail tells the person."""

    account_id: int
    lot_id: int
    source: LotSource
    credits_left: int  # milli-credits neither spent nor held
    expires_at: datetime


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
    (`granted_by`) and why (`note`). The grant entry records the lot as issued.
    """
    _require_positive(amount, "grant")
    if isinstance(valid_days, bool) or not isinstance(valid_days, int):
        raise InvalidAmount(f"a lot's validity is a whole number of days, not {valid_days!r}")
    if not 1 <= valid_days <= MAX_LOT_VALID_DAYS:
        raise InvalidAmount(
            f"a lot must be valid for 1 to {MAX_LOT_VALID_DAYS} days, not {valid_days}"
        )
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
    sources: Sequence[LotSource] | None = None,
) -> Reservation:
    """Hold ``amount`` from the wallet's active lots, soonest-expiring first, or refuse.

    Repeating a key returns its reservation only while it is a live hold; once it was resolved
    or has lapsed, the retry says so (ReservationClosed, ReservationTimedOut). A refused
    reservation leaves no trace, so retrying its key later may succeed. ``sources`` narrows the
    lots it may draw from (a tool above the account's plan is paid from the trial alone).
    """
    _require_positive(amount, "reservation")
    db = Driver(writing_connection(session))
    scopes = tuple(scope.value for scope in SCOPES_OF_WALLET[wallet])
    # PostgreSQL reads the clock as the request leaves, before the account's lock is granted:
    # the plain case is then one call of ledger_reserve. Otherwise (it declined) the general
    # path below runs in the same transaction, with the same time.
    now = clock.now()
    expires_at = now + timedelta(seconds=timeout_seconds)
    at, until, wallet_name = db.db_time(now), db.db_time(expires_at), Wallet(wallet).value
    lots: list[tuple[Any, ...]] | None = None
    if db.postgres:
        if sources is None:
            made = _reserve_plainly(db, account_id, wallet, key, amount, at, until)
            if made is not None:
                return made
        # Lock, lookup and lots in one round trip.
        locked, found, lots = db.pipelined(
            (db.sql.lock_account, (account_id,)),
            (db.sql.find_reservation, (account_id, key)),
            (db.sql.free_lots, (account_id, *scopes, at, at)),
        )
        if not locked:
            raise AccountNotFound(account_id)
    else:
        found = db.rows(db.sql.find_reservation, (account_id, key))
    if found:
        existing = _reservation(db, found[0])
        if (existing.wallet, existing.amount) != (wallet, amount):
            raise IdempotencyConflict(
                key, f"a reservation of {existing.amount} from {existing.wallet.value}"
            )
        _require_live(existing, now)
        return existing
    if lots is None:
        lots = _free_lots(db, account_id, scopes, now)
    # Holds past their deadline are free again now, not when the sweeper next runs. With
    # nothing held there is nothing to lapse, and the hot path skips the query.
    if any(lot[3] for lot in lots) and _lapse_overdue(db, account_id, now):
        lots = _free_lots(db, account_id, scopes, now)
    if sources is not None:
        lots = [lot for lot in lots if lot[1] in sources]
    available = sum(remaining - reserved for _, _, remaining, reserved in lots)
    if available < amount:
        if not lots and not db.postgres:  # PostgreSQL's lock has already found the account
            _require_account(db, account_id)  # an unknown account says so, not "0 available"
        raise InsufficientCredits(wallet=wallet, available=available, needed=amount)
    holds: list[tuple[int, int]] = []  # (lot, amount held), in draw order
    left = amount
    for lot_id, _, remaining, reserved in lots:
        take = min(left, remaining - reserved)
        if take <= 0:
            continue
        holds.append((lot_id, take))
        left -= take
        if not left:
            break
    reservation_id = db.rows(
        db.sql.insert_reservation, (account_id, wallet_name, key, amount, at, until)
    )[0][0]
    db.many(db.sql.move, [(take, 0, lot_id) for lot_id, take in holds])
    db.many(
        db.sql.insert_entry,
        [
            (account_id, lot_id, reservation_id, EntryKind.hold.value, take, key, at)
            for lot_id, take in holds
        ],
    )
    return _detached(
        id=reservation_id,
        account_id=account_id,
        wallet=Wallet(wallet),
        key=key,
        amount=amount,
        captured=0,
        status=ReservationStatus.open,
        created_at=now,
        expires_at=expires_at,
        resolved_at=None,
    )


def capture_reservation(
    *, session: Session, clock: Clock, account_id: int, key: str, amount: int
) -> Reservation:
    """Spend ``amount`` (at most what was reserved) and hand the rest back.

    Replaying a capture with the same amount returns it; with another amount it is an
    IdempotencyConflict. Nothing to spend is a release, not a capture of 0.
    """
    _require_positive(amount, "capture")
    db = Driver(writing_connection(session))
    if db.postgres:
        resolved = _resolve_plainly(db, clock, account_id, key, amount, ReservationStatus.captured)
        if resolved is not None:
            return resolved
    reservation, holds = _reservation_and_holds(db, account_id, key)
    if reservation.status == ReservationStatus.captured:
        if reservation.captured != amount:
            raise IdempotencyConflict(
                key, f"a capture of {format_credits(reservation.captured)} credits"
            )
        return reservation
    now = clock.now()
    # The deadline is the contract: whether a late capture succeeds must not depend on when
    # the sweeper last ran.
    _require_live(reservation, now)
    if amount > reservation.amount:
        raise InvalidAmount(
            f"cannot capture {format_credits(amount)} credits of a reservation of "
            f"{format_credits(reservation.amount)}"
        )
    _resolve(db, reservation, amount, ReservationStatus.captured, now, holds)
    return reservation


def release_reservation(
    *, session: Session, clock: Clock, account_id: int, key: str
) -> Reservation:
    """Hand everything back, e.g. when processing failed. A lapsed hold is already free."""
    db = Driver(writing_connection(session))
    if db.postgres:
        resolved = _resolve_plainly(db, clock, account_id, key, 0, ReservationStatus.released)
        if resolved is not None:
            return resolved
    reservation, holds = _reservation_and_holds(db, account_id, key)
    if reservation.status == ReservationStatus.released:
        return reservation
    now = clock.now()
    _require_live(reservation, now)
    _resolve(db, reservation, 0, ReservationStatus.released, now, holds)
    return reservation


def reserve_in_one_call(
    *,
    unit: OneStatement,
    clock: Clock,
    account_id: int,
    wallet: Wallet,
    amount: int,
    key: str,
    timeout_seconds: int = DEFAULT_RESERVATION_TIMEOUT_SECONDS,
) -> Reservation | None:
    """The plain reserve as a unit of work of one statement (PostgreSQL's ledger_reserve), or
    None, having written nothing, when the case is not plain: a known key, an overdue hold, too
    few credits or an unknown account. The caller then runs reserve_credits in a writing unit,
    which says why or does the rest."""
    _require_positive(amount, "reservation")
    db = Driver.alone(unit)
    now = clock.now()
    at, until = db.db_time(now), db.db_time(now + timedelta(seconds=timeout_seconds))
    return _reserve_plainly(db, account_id, wallet, key, amount, at, until)


def capture_in_one_call(
    *, unit: OneStatement, clock: Clock, account_id: int, key: str, amount: int
) -> Reservation | None:
    """The plain capture of a live reservation as a unit of work of one statement, or None,
    having written nothing: the caller then runs capture_reservation in a writing unit."""
    _require_positive(amount, "capture")
    db = Driver.alone(unit)
    return _resolve_plainly(db, clock, account_id, key, amount, ReservationStatus.captured)


def is_live(reservation: Reservation, now: datetime) -> bool:
    """An open reservation before its deadline: the only kind that can still be resolved."""
    return reservation.status == ReservationStatus.open and now < reservation.expires_at


def sweep_timed_out_reservations(
    *, session: Session, clock: Clock, limit: int = 1000
) -> list[Reservation]:
    """Write off, as timed out, the reservations nobody resolved before their deadline."""
    now = clock.now()
    account_ids = session.exec(
        select(Reservation.account_id)
        .where(Reservation.status == ReservationStatus.open, col(Reservation.expires_at) <= now)
        .distinct()
        .limit(limit)
    ).all()
    swept: list[Reservation] = []
    for account_id in sorted(account_ids):  # one lock order for every sweeper: no deadlocks
        _lock_account(session, account_id)
        swept.extend(_lapse_overdue(Driver(session.connection()), account_id, now))
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
    for owner in sorted(account_ids.all()):
        _lock_account(session, owner)
        # What lapsed holds kept is written off too.
        _lapse_overdue(Driver(session.connection()), owner, now)
        lots = session.exec(
            select(CreditLot)
            .where(CreditLot.account_id == owner, *due)
            .order_by(col(CreditLot.id))
            .execution_options(populate_existing=True)
        ).all()
        entries: list[dict[str, Any]] = []
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
    *,
    session: Session,
    clock: Clock,
    account_id: int,
    lot_id: int,
    key: str,
    reason: str | None = None,
    voided_by: str | None = None,
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
    # Lapsed holds go back first, so what they held is voided too.
    if _lapse_overdue(Driver(session.connection()), account_id, now):
        session.refresh(lot)
    entries = []
    rest = lot.remaining - lot.reserved
    if rest:
        lot.remaining -= rest
        entries.append(_entry(lot, EntryKind.void, rest, key, now))
    lot.voided_at = now
    lot.void_reason = reason
    lot.voided_by = voided_by
    _write(session, entries)
    return lot


def voided_credits(*, session: Session, lot_id: int) -> int:
    """Milli-credits of the lot voided so far (held credits are voided as they come back)."""
    total = session.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.lot_id == lot_id, LedgerEntry.kind == EntryKind.void
        )
    ).one()
    return int(total)


def find_lot(*, session: Session, lot_id: int) -> CreditLot | None:
    """Any account's lot by id: for operators, who name lots by number."""
    return session.get(CreditLot, lot_id)


def balance(*, session: Session, clock: Clock, account_id: int) -> dict[Wallet, WalletBalance]:
    """Per wallet: what can be reserved now, what is held, and the lots behind it."""
    now = clock.now()
    live_by_wallet: dict[Wallet, int] = defaultdict(int)
    for wallet, amount in session.exec(
        select(Reservation.wallet, func.sum(Reservation.amount))
        .where(
            Reservation.account_id == account_id,
            Reservation.status == ReservationStatus.open,
            col(Reservation.expires_at) > now,
        )
        .group_by(Reservation.wallet)
    ).all():
        live_by_wallet[Wallet(wallet)] = int(amount)
    by_wallet = {
        wallet: [lot for lot in _active_lots(session, account_id, wallet, now) if lot.remaining]
        for wallet in Wallet
    }
    lapsed: dict[int, int] = {}
    if any(lot.reserved for lots in by_wallet.values() for lot in lots):
        lapsed = _lapsed_holds(session, account_id, now)
    result: dict[Wallet, WalletBalance] = {}
    for wallet, lots in by_wallet.items():
        views = tuple(_lot_view(lot, lapsed.get(_id(lot.id), 0)) for lot in lots)
        result[wallet] = WalletBalance(
            wallet=wallet,
            available=sum(view.remaining - view.reserved for view in views),
            reserved=live_by_wallet[wallet],
            lots=views,
        )
    return result


EXPIRY_WARNING = timedelta(days=7)


def expiry_warnings_in(
    wallets: dict[Wallet, WalletBalance], *, account_id: int, now: datetime
) -> list[ExpiryWarning]:
    """From balances already read: lots with credits left that expire within a week."""
    seen: dict[int, ExpiryWarning] = {}
    for wallet_balance in wallets.values():
        for lot in wallet_balance.lots:
            left = lot.remaining - lot.reserved
            if left > 0 and lot.expires_at - now <= EXPIRY_WARNING:
                seen[lot.id] = ExpiryWarning(account_id, lot.id, lot.source, left, lot.expires_at)
    return sorted(seen.values(), key=lambda w: (w.expires_at, w.lot_id))


def expiring_soon(
    *, session: Session, clock: Clock, within: timedelta = EXPIRY_WARNING
) -> list[ExpiryWarning]:
    """Every account's lots with credits left that expire within `within`, soonest first.

    For a mailer to warn people ahead of time (it keeps its own record of whom it told).
    """
    now = clock.now()
    rows = session.exec(
        select(CreditLot)
        .join(Account, col(Account.id) == col(CreditLot.account_id))
        .where(
            col(Account.deleted_at).is_(None),
            col(CreditLot.issued_at) <= now,
            col(CreditLot.expires_at) > now,
            col(CreditLot.expires_at) <= now + within,
            col(CreditLot.voided_at).is_(None),
            col(CreditLot.remaining) > col(CreditLot.reserved),
        )
        .order_by(col(CreditLot.expires_at), col(CreditLot.id))
    ).all()
    return [
        ExpiryWarning(
            lot.account_id, _id(lot.id), lot.source, lot.remaining - lot.reserved, lot.expires_at
        )
        for lot in rows
    ]


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


# --- the auditor ----------------------------------------------------------------------------


def check_ledger(*, session: Session, account_id: int | None = None) -> list[Discrepancy]:
    """Everything the entries and grant records say, against what is stored; [] when all agree.

    Lots' caches are recomputed from their entries, each lot is compared with what its grant
    entry recorded, every entry must belong to its lot's (and reservation's) account, each
    reservation's status and amounts must follow from its entries, and credits are only ever
    held from a lot while it is active.
    """
    return [
        *_check_lot_caches(session, account_id),
        *_check_grant_records(session, account_id),
        *_check_entry_accounts(session, account_id),
        *_check_reservations(session, account_id),
        *_check_hold_validity(session, account_id),
    ]


def _lots_of(account_id: int | None) -> Any:
    query = select(CreditLot).order_by(col(CreditLot.id))
    if account_id is not None:
        query = query.where(CreditLot.account_id == account_id)
    return query.execution_options(populate_existing=True)


def _check_lot_caches(session: Session, account_id: int | None) -> list[Discrepancy]:
    sums: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
    by_lot = (
        select(LedgerEntry.lot_id, LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .group_by(LedgerEntry.lot_id, LedgerEntry.kind)
    )
    if account_id is not None:
        by_lot = by_lot.where(CreditLot.account_id == account_id)
    for lot_id, kind, total in session.exec(by_lot).all():
        sums[lot_id][EntryKind(kind)] = int(total)
    found: list[Discrepancy] = []

    def compare(subject: str, field: str, stored: int, recomputed: int) -> None:
        if stored != recomputed:
            found.append(Discrepancy(subject, field, stored, recomputed))

    for lot in session.exec(_lots_of(account_id)).all():
        s = sums[_id(lot.id)]
        subject = f"lot {lot.id}"
        # The amount itself is checked against the lot's one grant entry (_check_grant_records).
        spent = s[EntryKind.capture] + s[EntryKind.expire] + s[EntryKind.void]
        compare(subject, "remaining", lot.remaining, s[EntryKind.grant] - spent)
        held = s[EntryKind.hold] - s[EntryKind.capture] - s[EntryKind.release]
        compare(subject, "reserved", lot.reserved, held)
        if lot.expired_at is not None or lot.voided_at is not None:
            # A closed lot keeps only what open reservations still hold.
            unreserved = lot.remaining - lot.reserved
            compare(subject, "unreserved remaining of a closed lot", unreserved, 0)
    return found


def _check_grant_records(session: Session, account_id: int | None) -> list[Discrepancy]:
    """Each lot has exactly one grant entry, and still is what that entry recorded."""
    grants = (
        select(LedgerEntry)
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .where(LedgerEntry.kind == EntryKind.grant)
        .order_by(col(LedgerEntry.id))
    )
    if account_id is not None:
        grants = grants.where(CreditLot.account_id == account_id)
    records: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in session.exec(grants).all():
        records[entry.lot_id].append(entry)
    found: list[Discrepancy] = []
    for lot in session.exec(_lots_of(account_id)).all():
        subject = f"lot {lot.id}"
        mine = records[_id(lot.id)]
        if len(mine) != 1:
            found.append(Discrepancy(subject, "grant entries", len(mine), 1, "a lot needs"))
            continue
        record = mine[0]
        for field, stored, recorded in (
            ("account_id", lot.account_id, record.account_id),
            ("amount", lot.amount, record.amount),
            ("issued_at", lot.issued_at, record.created_at),
            ("scope", lot.scope.value, record.lot_scope),
            ("expires_at", lot.expires_at, record.lot_expires_at),
        ):
            if stored != recorded:
                found.append(Discrepancy(subject, field, stored, recorded, "its grant entry says"))
    return found


def _check_entry_accounts(session: Session, account_id: int | None) -> list[Discrepancy]:
    """An entry belongs to the account of its lot, and of its reservation."""
    found: list[Discrepancy] = []
    for owner, owner_id in (
        (CreditLot, LedgerEntry.lot_id),
        (Reservation, LedgerEntry.reservation_id),
    ):
        query = (
            select(LedgerEntry.id, LedgerEntry.account_id, owner.id, owner.account_id)
            .join(owner, col(owner.id) == col(owner_id))
            .where(col(LedgerEntry.account_id) != col(owner.account_id))
            .order_by(col(LedgerEntry.id))
        )
        if account_id is not None:
            query = query.where(
                (LedgerEntry.account_id == account_id) | (owner.account_id == account_id)
            )
        name = "lot" if owner is CreditLot else "reservation"
        for entry_id, entry_account, owner_key, owner_account in session.exec(query).all():
            found.append(
                Discrepancy(
                    f"entry {entry_id}",
                    "account_id",
                    entry_account,
                    owner_account,
                    f"its {name} {owner_key} says",
                )
            )
    return found


def _check_reservations(session: Session, account_id: int | None) -> list[Discrepancy]:
    """Amounts and status follow from the entries: what was held, captured, handed back, when."""
    totals: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
    resolved_at: dict[int, datetime] = {}
    by_reservation = (
        select(
            LedgerEntry.reservation_id,
            LedgerEntry.kind,
            func.sum(LedgerEntry.amount),
            func.max(LedgerEntry.created_at),
        )
        .join(Reservation, col(Reservation.id) == col(LedgerEntry.reservation_id))
        .group_by(LedgerEntry.reservation_id, LedgerEntry.kind)
    )
    reservations = select(Reservation).order_by(col(Reservation.id))
    if account_id is not None:
        by_reservation = by_reservation.where(Reservation.account_id == account_id)
        reservations = reservations.where(Reservation.account_id == account_id)
    for reservation_id, kind, total, last in session.exec(by_reservation).all():
        totals[reservation_id][EntryKind(kind)] = int(total)
        if kind != EntryKind.hold:
            resolved_at[reservation_id] = max(last, resolved_at.get(reservation_id, last))
    found: list[Discrepancy] = []
    for reservation in session.exec(reservations).all():
        rid = _id(reservation.id)
        s = totals[rid]
        subject = f"reservation {rid}"
        resolved = reservation.status != ReservationStatus.open
        released = reservation.amount - reservation.captured if resolved else 0
        for field, stored, recomputed in (
            ("held", reservation.amount, s[EntryKind.hold]),
            ("captured", reservation.captured, s[EntryKind.capture]),
            ("released", released, s[EntryKind.release]),
            ("status", reservation.status.value, _status_of(reservation, s, resolved_at.get(rid))),
        ):
            if stored != recomputed:
                found.append(Discrepancy(subject, field, stored, recomputed))
    return found


def _status_of(
    reservation: Reservation, totals: dict[EntryKind, int], resolved_at: datetime | None
) -> str:
    """The status a reservation's entries imply: resolved by its deadline, or timed out."""
    if resolved_at is None:
        return ReservationStatus.open.value
    late = resolved_at >= reservation.expires_at
    if totals[EntryKind.capture]:
        return "captured after its deadline" if late else ReservationStatus.captured.value
    return (ReservationStatus.timed_out if late else ReservationStatus.released).value


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
        outside = outside.where(CreditLot.account_id == account_id)
    return [
        Discrepancy(f"lot {lot_id}", f"held outside its validity by entry {entry_id}", amount, 0)
        for entry_id, lot_id, amount in session.exec(outside).all()
    ]


# --- money ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrencyTotals:
    """The money behind purchased lots in one currency, in its minor unit (cents)."""

    currency: str
    received: int  # paid for lots issued in the period
    recognised: int  # earned in the period as their credits were spent or expired
    voided: int  # behind credits voided in the period (refunded or written off)
    deferred_at_start: int  # paid for credits not yet spent, expired or voided
    deferred_at_end: int


@dataclass(frozen=True)
class MoneyReport:
    start: datetime
    end: datetime  # exclusive
    issued: dict[LotSource, int]  # milli-credits granted in the period, by source
    spent: int
    expired: int
    voided: int
    money: tuple[CurrencyTotals, ...]


_MOVES = (EntryKind.capture, EntryKind.expire, EntryKind.void)


def money_report(*, session: Session, start: datetime, end: datetime) -> MoneyReport:
    """Credits issued, spent, expired and voided in [start, end), and the money behind them.

    A purchased lot's price is earned (recognised) in proportion as its credits are spent or
    expire; until then it is deferred. Amounts are integers throughout: a lot's share is
    computed on its running totals, so the shares of a fully used lot add up to its price.
    """
    if end <= start:
        raise ValueError("a report's period must end after it starts")
    issued: dict[LotSource, int] = defaultdict(int)
    moved: dict[EntryKind, int] = defaultdict(int)
    in_period = session.exec(
        select(LedgerEntry.kind, CreditLot.source, func.sum(LedgerEntry.amount))
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .where(
            col(LedgerEntry.created_at) >= start,
            col(LedgerEntry.created_at) < end,
            col(LedgerEntry.kind).in_([EntryKind.grant, *_MOVES]),
        )
        .group_by(LedgerEntry.kind, CreditLot.source)
    ).all()
    for kind, source, total in in_period:
        if EntryKind(kind) == EntryKind.grant:
            issued[LotSource(source)] += int(total)
        else:
            moved[EntryKind(kind)] += int(total)

    paid_lots = session.exec(
        select(CreditLot).where(
            col(CreditLot.paid_amount).is_not(None), col(CreditLot.issued_at) < end
        )
    ).all()
    before_start, before_end = (
        _moves_of_paid_lots(session, start),
        _moves_of_paid_lots(session, end),
    )
    money: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for lot in paid_lots:
        paid, lot_id = int(lot.paid_amount or 0), _id(lot.id)
        totals = money[(lot.paid_currency or "").lower()]
        if lot.issued_at >= start:
            totals["received"] += paid
            was = (0, 0, 0)
        else:
            was = _shares(paid, lot.amount, before_start[lot_id])
        now = _shares(paid, lot.amount, before_end[lot_id])
        totals["recognised"] += now[0] - was[0]
        totals["voided"] += now[1] - was[1]
        totals["deferred_at_start"] += was[2]
        totals["deferred_at_end"] += now[2]
    return MoneyReport(
        start=start,
        end=end,
        issued=dict(issued),
        spent=moved[EntryKind.capture],
        expired=moved[EntryKind.expire],
        voided=moved[EntryKind.void],
        money=tuple(
            CurrencyTotals(currency=currency, **{k: totals[k] for k in _MONEY_FIELDS})
            for currency, totals in sorted(money.items())
        ),
    )


_MONEY_FIELDS = ("received", "recognised", "voided", "deferred_at_start", "deferred_at_end")


def _moves_of_paid_lots(session: Session, before: datetime) -> dict[int, dict[EntryKind, int]]:
    moves: dict[int, dict[EntryKind, int]] = defaultdict(lambda: defaultdict(int))
    for lot_id, kind, total in session.exec(
        select(LedgerEntry.lot_id, LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .join(CreditLot, col(CreditLot.id) == col(LedgerEntry.lot_id))
        .where(
            col(CreditLot.paid_amount).is_not(None),
            col(LedgerEntry.created_at) < before,
            col(LedgerEntry.kind).in_(_MOVES),
        )
        .group_by(LedgerEntry.lot_id, LedgerEntry.kind)
    ).all():
        moves[lot_id][EntryKind(kind)] = int(total)
    return moves


def _shares(paid: int, amount: int, moves: dict[EntryKind, int]) -> tuple[int, int, int]:
    """(recognised, voided, deferred) money of a lot, given its credits moved so far."""
    used = moves[EntryKind.capture] + moves[EntryKind.expire]
    gone = used + moves[EntryKind.void]
    recognised = paid * used // amount
    settled = paid * gone // amount
    return recognised, settled - recognised, paid - settled


# --- inside the operations ------------------------------------------------------------------


# A charge's hot path works on plain rows through the driver (ledger_driver): loading lots as
# ORM objects, or even running Core statements, cost more than all of its SQL. Lots change only
# through these moves, inside the account's lock.


def _resolve(
    db: Driver,
    reservation: Reservation,
    captured: int,
    status: ReservationStatus,
    now: datetime,
    holds: list[tuple[Any, ...]] | None = None,
) -> None:
    """Capture ``captured`` from the holds in the order they were taken; release the rest.

    ``holds`` are the reservation's hold rows when already read, in the same lock.
    """
    rid, key = _id(reservation.id), reservation.key
    if holds is None:
        holds = db.rows(db.sql.holds, (rid,))
    # Entries as (account, lot, reservation, kind, amount, op_key); moves as (held, spent, lot).
    entries: list[tuple[int, int, int | None, str, int, str]] = []
    moves: list[tuple[int, int, int]] = []
    to_capture = captured
    for held, lot_id, account_id, expired_at, voided_at in holds:
        take = min(to_capture, held)
        give_back = held - take
        to_capture -= take
        spent = take
        if take:
            entries.append((account_id, lot_id, rid, EntryKind.capture.value, take, key))
        if give_back:
            entries.append((account_id, lot_id, rid, EntryKind.release.value, give_back, key))
            # Handed back to a lot that is already closed: write it off at once, as its
            # expiry or void would have done had the credits not been held.
            if voided_at is not None or expired_at is not None:
                kind = EntryKind.void if voided_at is not None else EntryKind.expire
                spent += give_back
                entries.append(
                    (account_id, lot_id, None, kind.value, give_back, f"{kind.value}:{lot_id}")
                )
        moves.append((-held, spent, lot_id))
    reservation.status = status
    reservation.captured = captured
    reservation.resolved_at = now
    at = db.db_time(now)
    db.run(db.sql.resolve_reservation, (status.value, captured, at, rid))
    if moves:
        db.many(db.sql.move, moves)
    if entries:
        db.many(db.sql.insert_entry, [(*entry, at) for entry in entries])


def _require_live(reservation: Reservation, now: datetime) -> None:
    """Refuse a reservation that is over; timed out reads the same, swept or not."""
    lapsed = reservation.status == ReservationStatus.open and now >= reservation.expires_at
    if lapsed or reservation.status == ReservationStatus.timed_out:
        raise ReservationTimedOut(reservation.key)
    if reservation.status != ReservationStatus.open:
        raise ReservationClosed(reservation.key, reservation.status)


def _reservation(db: Driver, row: tuple[Any, ...]) -> Reservation:
    """A detached Reservation from a row: callers get values, never an object the session tracks."""
    rid, account_id, wallet, key, amount, captured, status, created, expires, resolved = row
    return _detached(
        id=rid,
        account_id=account_id,
        wallet=Wallet(wallet),
        key=key,
        amount=amount,
        captured=captured,
        status=ReservationStatus(status),
        created_at=db.time(created),
        expires_at=db.time(expires),
        resolved_at=db.time(resolved),
    )


_RESERVATIONS = manager_of_class(Reservation)


def _detached(**values: Any) -> Reservation:
    """A Reservation of every column's value, built as the ORM builds the rows it loads.

    Reservation(**values) assigns each attribute through SQLModel's and SQLAlchemy's events,
    which cost more than a charge's SQL; the object is the same, and no session tracks it.
    """
    reservation: Reservation = _RESERVATIONS.new_instance()
    reservation.__dict__.update(values)
    object.__setattr__(reservation, "__pydantic_fields_set__", set(values))
    return reservation


def _lapse_overdue(db: Driver, account_id: int, now: datetime) -> list[Reservation]:
    """Write off the account's reservations past their deadline (the caller holds its lock)."""
    rows = db.rows(db.sql.overdue, (account_id, db.db_time(now)))
    overdue = [_reservation(db, row) for row in rows]
    for reservation in overdue:
        _resolve(db, reservation, 0, ReservationStatus.timed_out, now)
    return overdue


def _lapsed_holds(session: Session, account_id: int, now: datetime) -> dict[int, int]:
    """Per lot, what overdue (lapsed but not yet written off) reservations still hold."""
    rows = session.exec(
        select(LedgerEntry.lot_id, func.sum(LedgerEntry.amount))
        .join(Reservation, col(Reservation.id) == col(LedgerEntry.reservation_id))
        .where(
            Reservation.account_id == account_id,
            Reservation.status == ReservationStatus.open,
            col(Reservation.expires_at) <= now,
            LedgerEntry.kind == EntryKind.hold,
        )
        .group_by(LedgerEntry.lot_id)
    ).all()
    return {lot_id: int(total) for lot_id, total in rows}


# Built once: building statements is a large part of the cost of small operations.
_INSERT_ENTRY = insert(LedgerEntry)


def _lock_account(session: Session, account_id: int) -> None:
    _require_account(Driver(writing_connection(session)), account_id)


def _reserve_plainly(
    db: Driver, account_id: int, wallet: Wallet, key: str, amount: int, at: Any, until: Any
) -> Reservation | None:
    """PostgreSQL: the reservation made in one call of ledger_reserve, or None when the case is
    not plain (the general path then says why or does the rest)."""
    scopes = [scope.value for scope in SCOPES_OF_WALLET[wallet]]
    params = (account_id, Wallet(wallet).value, key, amount, scopes, at, until)
    made = db.rows(db.sql.reserve_plainly, params)
    return _reservation(db, made[0]) if made else None


def _resolve_plainly(
    db: Driver,
    clock: Clock,
    account_id: int,
    key: str,
    captured: int,
    status: ReservationStatus,
) -> Reservation | None:
    """PostgreSQL: a live reservation resolved in one call of ledger_resolve, or None when the
    case is not plain (unknown, closed, lapsed, too small): the general path then says why."""
    params = (account_id, key, captured, status.value, db.db_time(clock.now()))
    resolved = db.rows(db.sql.resolve_plainly, params)
    return _reservation(db, resolved[0]) if resolved else None


def _require_account(db: Driver, account_id: int) -> None:
    """Lock the account's row for this transaction (FOR UPDATE; on SQLite, BEGIN IMMEDIATE has
    already taken the only write lock), or say it does not exist."""
    if not db.rows(db.sql.lock_account, (account_id,)):
        raise AccountNotFound(account_id)


def _reservation_and_holds(
    db: Driver, account_id: int, key: str
) -> tuple[Reservation, list[tuple[Any, ...]] | None]:
    """Lock the account for a charge, then read its reservation under `key`.

    On PostgreSQL what the reservation holds is read in the same round trip (None: not read).
    On SQLite the transaction's BEGIN IMMEDIATE already holds the only write lock, and the
    queries that follow are scoped to the account, so the lock's statement is skipped.
    """
    holds = None
    if db.postgres:
        locked, found, holds = db.pipelined(
            (db.sql.lock_account, (account_id,)),
            (db.sql.find_reservation, (account_id, key)),
            (db.sql.holds_by_key, (account_id, key)),
        )
        if not locked:
            raise AccountNotFound(account_id)
    else:
        found = db.rows(db.sql.find_reservation, (account_id, key))
    if not found:
        raise ReservationNotFound(key)
    return _reservation(db, found[0]), holds


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


def _free_lots(
    db: Driver, account_id: int, scopes: tuple[str, ...], now: datetime
) -> list[tuple[Any, ...]]:
    """The wallet's active lots with credits in them, in draw order, as plain rows
    (id, source, remaining, reserved)."""
    at = db.db_time(now)
    return db.rows(db.sql.free_lots, (account_id, *scopes, at, at))


def _active_lots(
    session: Session, account_id: int, wallet: Wallet, now: datetime
) -> Sequence[CreditLot]:
    params = {"account_id": account_id, "scopes": list(SCOPES_OF_WALLET[wallet]), "now": now}
    return session.exec(_ACTIVE_LOTS, params=params).all()


def find_reservation(*, session: Session, account_id: int, key: str) -> Reservation | None:
    """The account's reservation under `key`, in whatever state it is; None if there is none."""
    return _find_reservation(session, account_id, key)


def _find_reservation(session: Session, account_id: int, key: str) -> Reservation | None:
    db = Driver(session.connection())
    found = db.rows(db.sql.find_reservation, (account_id, key))
    return _reservation(db, found[0]) if found else None


def _entry(
    lot: CreditLot,
    kind: EntryKind,
    amount: int,
    op_key: str,
    now: datetime,
    reservation: Reservation | None = None,
) -> dict[str, Any]:
    grant = kind == EntryKind.grant
    return {
        "account_id": lot.account_id,
        "lot_id": _id(lot.id),
        "reservation_id": reservation.id if reservation else None,
        "kind": kind,
        "amount": amount,
        "op_key": op_key,
        "created_at": now,
        # The grant records the lot as issued, for the ledger check.
        "lot_scope": lot.scope.value if grant else None,
        "lot_expires_at": lot.expires_at if grant else None,
    }


def _write(session: Session, entries: list[dict[str, Any]]) -> None:
    """Flush the lots' cached columns, then append the entries in one statement."""
    session.flush()
    if entries:
        # Core, not the ORM: entries are never read back by the operation that writes them,
        # and the ORM's per-object bookkeeping was most of the cost of every charge.
        session.connection().execute(_INSERT_ENTRY, entries)


def _lot_view(lot: CreditLot, lapsed: int = 0) -> LotView:
    return LotView(
        id=_id(lot.id),
        source=lot.source,
        scope=lot.scope,
        amount=lot.amount,
        remaining=lot.remaining,
        reserved=lot.reserved - lapsed,  # held by live reservations only
        issued_at=lot.issued_at,
        expires_at=lot.expires_at,
    )


def _id(value: int | None) -> int:
    # Rows read from or flushed to the database always have their primary key.
    assert value is not None
    return value


def _require_positive(amount: int, what: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise InvalidAmount(
            f"a {what} must be a whole number of milli-credits from 1 to {MAX_AMOUNT:,}, "
            f"not {amount!r}"
        )
