"""The credit ledger: lots of credits, append-only entries against them, and reservations.

Amounts are integer milli-credits (1 credit = 1,000). A lot's ``remaining`` and ``reserved`` are
caches of its entries that the ledger check recomputes; the database refuses values that would
make a balance negative or a lot hold more than it was issued.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _credits(*default: int) -> Any:
    """An amount of milli-credits: 64-bit, as real balances need on PostgreSQL."""
    return Field(*default, sa_type=BigInteger)


class LotSource(StrEnum):
    trial = "trial"
    subscription = "subscription"
    top_up = "top_up"
    api_pack = "api_pack"
    adjustment = "adjustment"


class Wallet(StrEnum):
    """Where a charge comes from: the web app (home, editor, bulk) or the HTTP API."""

    web = "web"
    api = "api"


class LotScope(StrEnum):
    """Which wallets a lot serves; the trial lot (and some operator grants) serve both."""

    web = "web"
    api = "api"
    both = "both"


class EntryKind(StrEnum):
    grant = "grant"  # credits enter a lot: remaining += amount
    hold = "hold"  # a reservation holds part of a lot: reserved += amount
    capture = "capture"  # held credits are spent: remaining -= amount, reserved -= amount
    release = "release"  # held credits are handed back: reserved -= amount
    expire = "expire"  # the unspent rest of an expired lot: remaining -= amount
    void = "void"  # an operator or refund cancels the unspent rest: remaining -= amount


class ReservationStatus(StrEnum):
    open = "open"
    captured = "captured"
    released = "released"
    timed_out = "timed_out"


class CreditLot(SQLModel, table=True):
    __tablename__ = "credit_lot"
    __table_args__ = (
        CheckConstraint("amount > 0", name="lot_amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="lot_remaining_in_range"),
        CheckConstraint("reserved >= 0 AND reserved <= remaining", name="lot_reserved_in_range"),
        CheckConstraint("expires_at > issued_at", name="lot_expires_after_issue"),
        UniqueConstraint("account_id", "grant_key", name="uq_credit_lot_grant_key"),
        # The draw order of rule 2, so picking lots for a charge is one index range scan.
        Index("ix_credit_lot_draw_order", "account_id", "expires_at", "issued_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    source: LotSource = Field(max_length=16)
    scope: LotScope = Field(max_length=8)
    amount: int = _credits()
    remaining: int = _credits()
    reserved: int = _credits(0)
    issued_at: datetime
    expires_at: datetime
    grant_key: str = Field(max_length=200)
    # Set once the unspent rest has been written off, so the expiry sweep skips the lot.
    expired_at: datetime | None = None
    voided_at: datetime | None = None
    note: str | None = Field(default=None, max_length=500)
    # What was paid for a purchased lot (in the currency's minor unit, e.g. cents), and the
    # payment it came from (a Stripe invoice, Checkout session or payment intent id).
    paid_amount: int | None = None
    paid_currency: str | None = Field(default=None, max_length=3)
    payment_ref: str | None = Field(default=None, max_length=255)
    # Who granted an operator lot (e.g. "cutout-admin" or an operator's name); None otherwise.
    granted_by: str | None = Field(default=None, max_length=200)
    # Why and by whom the unspent rest was voided (a refund, a mistaken grant).
    void_reason: str | None = Field(default=None, max_length=500)
    voided_by: str | None = Field(default=None, max_length=200)


class Reservation(SQLModel, table=True):
    __tablename__ = "credit_reservation"
    __table_args__ = (
        CheckConstraint("amount > 0", name="reservation_amount_positive"),
        CheckConstraint(
            "captured >= 0 AND captured <= amount", name="reservation_captured_in_range"
        ),
        UniqueConstraint("account_id", "key", name="uq_credit_reservation_key"),
        # The sweeper's question: which open reservations are past their deadline?
        Index("ix_credit_reservation_open_deadline", "status", "expires_at"),
        # The same question for one account, asked before its credits are counted.
        Index("ix_credit_reservation_account_open", "account_id", "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    wallet: Wallet = Field(max_length=8)
    key: str = Field(max_length=200)
    amount: int = _credits()
    captured: int = _credits(0)
    status: ReservationStatus = Field(default=ReservationStatus.open, max_length=16)
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None = None


class LedgerEntry(SQLModel, table=True):
    """One movement of credits on one lot. Never updated or deleted (a trigger refuses it)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint("amount > 0", name="entry_amount_positive"),
        Index("ix_ledger_entry_account_op", "account_id", "op_key"),
        Index("ix_ledger_entry_account_id", "account_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    lot_id: int = Field(foreign_key="credit_lot.id", index=True)
    reservation_id: int | None = Field(
        default=None, foreign_key="credit_reservation.id", index=True
    )
    kind: EntryKind = Field(max_length=16)
    amount: int = _credits()
    # The caller's idempotency key of the operation that wrote the entry.
    op_key: str = Field(max_length=200)
    created_at: datetime
    # A grant entry records the lot as issued (its amount, account and issue time are the
    # entry's own), so the ledger check can tell when a lot's fixed columns were altered.
    lot_scope: str | None = Field(default=None, max_length=8)
    lot_expires_at: datetime | None = None


class FeatureFlag(SQLModel, table=True):
    """An operator switch for an upcoming feature; a missing row means off."""

    __tablename__ = "feature_flag"

    name: str = Field(primary_key=True, max_length=64)
    enabled: bool = False
    updated_at: datetime
