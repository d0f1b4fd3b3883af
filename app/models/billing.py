"""Stripe billing: what was bought through Checkout or an invoice, subscriptions, events seen."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.accounts import Plan


class Product(StrEnum):
    """What can be bought: a monthly plan, a web top-up or an API credit pack."""

    basic = "basic"
    standard = "standard"
    top_up = "top_up"
    api_pack = "api_pack"

    @property
    def plan(self) -> Plan | None:
        return {Product.basic: Plan.basic, Product.standard: Plan.standard}.get(self)


class PaymentStatus(StrEnum):
    open = "open"  # a Checkout session was started and not finished
    pending = "pending"  # finished, the money has not settled yet (bank debits)
    paid = "paid"
    failed = "failed"
    expired = "expired"  # Checkout abandoned
    refunded = "refunded"


def _text_enum(enum: type[StrEnum]) -> sa.Enum:
    """An enum kept as plain text (VARCHAR(16)) and read back as the enum."""
    return sa.Enum(
        enum,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class StripePayment(SQLModel, table=True):
    """One payment: a Checkout session (``cs_…``) or a subscription invoice (``in_…``).

    It remembers who pays for what and where to send them back, and its status makes the
    order events arrive in irrelevant: a refund seen before the payment blocks the grant.
    """

    __tablename__ = "stripe_payment"

    ref: str = Field(primary_key=True, max_length=255)
    account_id: int = Field(foreign_key="account.id", index=True)
    product: Product = Field(sa_type=_text_enum(Product))
    status: PaymentStatus = Field(sa_type=_text_enum(PaymentStatus))
    payment_intent: str | None = Field(default=None, max_length=255, index=True)
    lot_id: int | None = Field(default=None, foreign_key="credit_lot.id")
    # Where the person was when they started buying; a same-site path (routes.safe_next).
    return_path: str = Field(default="/", max_length=500)
    created_at: datetime
    updated_at: datetime


class StripeSubscription(SQLModel, table=True):
    """Stripe's view of a subscription, as last fetched; the account's plan follows it."""

    __tablename__ = "stripe_subscription"

    id: str = Field(primary_key=True, max_length=255)
    account_id: int = Field(foreign_key="account.id", index=True)
    plan: Plan = Field(sa_type=_text_enum(Plan))
    status: str = Field(max_length=32)  # Stripe's: active, past_due, canceled, …
    cancel_at_period_end: bool = False
    current_period_end: datetime | None = None
    # The latest invoice failed and no later one was paid: the account page says so.
    payment_failed: bool = False
    updated_at: datetime


class StripeEvent(SQLModel, table=True):
    """A webhook event already applied, recorded with its effect so a replay changes nothing."""

    __tablename__ = "stripe_event"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    outcome: str = Field(max_length=200)
    received_at: datetime
