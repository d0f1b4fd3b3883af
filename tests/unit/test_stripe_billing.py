"""Reading Stripe's objects in both API shapes, verifying signatures, and the billing rules that
do not need Stripe: a refund seen first blocks the grant, the plan follows live subscriptions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from app import routes
from app.db import reading, writing
from app.models.accounts import Account, Plan
from app.models.billing import PaymentStatus, Product, StripePayment
from app.models.ledger import CreditLot, LotSource
from app.services.billing import ledger
from app.services.billing.entitlements import PlanCatalog
from app.services.billing.stripe_billing import (
    BadSignature,
    CheckoutFacts,
    InvoiceFacts,
    StripeConfig,
    SubscriptionFacts,
    apply_checkout,
    apply_paid_invoice,
    apply_refund,
    apply_subscription,
    product_of_price,
    verify_event,
)
from app.services.clock import FrozenClock
from app.settings import Settings
from tests.conftest import new_account

PERIOD_END = 1_800_000_000


def test_a_price_is_known_by_lookup_key_then_configured_id_then_metadata() -> None:
    configured = {Product.top_up: "price_configured"}
    assert product_of_price({"id": "p", "lookup_key": "cutout_basic_monthly"}, {}) == Product.basic
    assert product_of_price({"id": "price_configured"}, configured) == Product.top_up
    assert product_of_price({"id": "p", "metadata": {"cutout_product": "api_pack"}}, {}) == (
        Product.api_pack
    )
    assert product_of_price({"id": "someone_elses", "lookup_key": "other"}, configured) is None
    assert product_of_price(None, configured) is None


def test_a_subscription_reads_the_same_in_the_current_and_the_older_api() -> None:
    current = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "active",
        "cancel_at_period_end": False,
        "cancel_at": None,
        "items": {
            "data": [
                {
                    "id": "si_1",
                    "price": {"id": "price_s", "lookup_key": "cutout_standard_monthly"},
                    "current_period_end": PERIOD_END,
                }
            ]
        },
    }
    older = {
        **current,
        "current_period_end": PERIOD_END,
        "items": {"data": [{"id": "si_1", "plan": {"id": "price_s"}}]},
    }
    for raw in (current, older):
        facts = SubscriptionFacts.parse(raw, {Product.standard: "price_s"})
        assert facts.plan == Plan.standard
        assert facts.current_period_end == datetime.fromtimestamp(PERIOD_END, UTC)
        assert (facts.item_id, facts.customer, facts.cancel_at_period_end) == (
            "si_1",
            "cus_1",
            False,
        )
    # Newer API versions schedule the end with cancel_at instead of cancel_at_period_end.
    ending = SubscriptionFacts.parse({**current, "cancel_at": PERIOD_END}, {})
    assert ending.cancel_at_period_end
    assert ending.current_period_end == datetime.fromtimestamp(PERIOD_END, UTC)


def test_an_invoice_finds_its_subscription_and_price_in_either_shape() -> None:
    current = {
        "id": "in_1",
        "customer": "cus_1",
        "billing_reason": "subscription_cycle",
        "amount_paid": 3000,
        "currency": "usd",
        "parent": {"subscription_details": {"subscription": "sub_1"}},
        "lines": {"data": [{"pricing": {"price_details": {"price": "price_b"}}}]},
    }
    older = {
        **current,
        "parent": None,
        "subscription": "sub_1",
        "lines": {"data": [{"price": {"id": "price_b"}, "proration": False}]},
    }
    for raw in (current, older):
        facts = InvoiceFacts.parse(raw, {Product.basic: "price_b"})
        assert (facts.subscription, facts.product, facts.starts_a_month) == (
            "sub_1",
            Product.basic,
            True,
        )
    proration = InvoiceFacts.parse({**current, "billing_reason": "subscription_update"}, {})
    assert not proration.starts_a_month, "a plan switch's invoice gives no new month of credits"


def test_only_a_correctly_signed_recent_body_is_an_event() -> None:
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}})
    secret = "whsec_unit"
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    event = verify_event(body.encode(), header, secret)
    assert (event.id, event.type, event.object["id"]) == ("evt_1", "invoice.paid", "in_1")

    stale = stripe.WebhookSignature.generate_signature_header(body, secret, int(time.time()) - 301)
    for payload, signature in (
        (body.encode(), stale),
        (body.replace("in_1", "in_2").encode(), header),
        (body.encode(), None),
        (b"not json", stripe.WebhookSignature.generate_signature_header("not json", secret)),
    ):
        with pytest.raises(BadSignature):
            verify_event(payload, signature, secret)


def test_billing_needs_both_stripe_secrets(settings: Settings) -> None:
    assert not settings.billing_enabled
    only_key = settings.model_copy(update={"stripe_secret_key": SecretStr("sk_test_x")})
    assert not only_key.billing_enabled and not StripeConfig.from_settings(only_key).enabled
    both = only_key.model_copy(update={"stripe_webhook_secret": SecretStr("whsec_x")})
    assert both.billing_enabled and StripeConfig.from_settings(both).enabled


def test_return_paths_stay_on_site_and_carry_the_outcome() -> None:
    assert routes.with_purchase_outcome("/pricing", "complete") == "/pricing?purchase=complete"
    assert (
        routes.with_purchase_outcome("/?x=1&purchase=failed", "complete")
        == "/?x=1&purchase=complete"
    )
    assert routes.safe_next("/stripe/checkout/return", "/pricing") == "/pricing"
    assert routes.safe_next("https://evil.example/", "/pricing") == "/pricing"


def _buyer(db: Engine, clock: FrozenClock) -> int:
    with writing(db) as session:
        account = new_account(session, clock, "buyer@example.com")
        account.stripe_customer_id = "cus_1"
        session.add(account)
        session.flush()
        assert account.id is not None
        return account.id


def _paid_checkout(ref: str, account_id: int) -> CheckoutFacts:
    return CheckoutFacts.parse(
        {
            "id": ref,
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "customer": "cus_1",
            "payment_intent": "pi_1",
            "amount_total": 1000,
            "currency": "usd",
            "metadata": {"cutout_account_id": str(account_id), "cutout_product": "top_up"},
        }
    )


def test_a_refund_seen_before_its_payment_means_the_payment_never_grants(
    db: Engine, clock: FrozenClock
) -> None:
    buyer = _buyer(db, clock)
    with writing(db) as session:
        apply_refund(
            session=session, clock=clock, ref="cs_1", account_id=buyer, product=Product.top_up
        )
    with writing(db) as session:
        outcome = apply_checkout(
            session=session,
            clock=clock,
            catalog=PlanCatalog(),
            checkout=_paid_checkout("cs_1", buyer),
        )
    assert "refunded" in outcome
    with reading(db) as session:
        payment = session.get(StripePayment, "cs_1")
        assert payment is not None and payment.status == PaymentStatus.refunded
        wallets = ledger.balance(session=session, clock=clock, account_id=buyer)
    assert [lot.source.value for lot in wallets[next(iter(wallets))].lots] == ["trial"]


def test_a_checkout_seen_twice_grants_once_and_a_late_refund_voids_it(
    db: Engine, clock: FrozenClock
) -> None:
    buyer = _buyer(db, clock)
    for _ in range(2):
        with writing(db) as session:
            apply_checkout(
                session=session,
                clock=clock,
                catalog=PlanCatalog(),
                checkout=_paid_checkout("cs_2", buyer),
            )
    with writing(db) as session:
        apply_refund(session=session, clock=clock, ref="cs_2", account_id=None, product=None)
        apply_refund(session=session, clock=clock, ref="cs_2", account_id=None, product=None)
    with reading(db) as session:
        payment = session.get(StripePayment, "cs_2")
        assert payment is not None and payment.lot_id is not None
        lots = ledger.balance(session=session, clock=clock, account_id=buyer)
        assert ledger.check_ledger(session=session) == []
    web = [lot for balance in lots.values() for lot in balance.lots]
    assert {lot.source.value for lot in web} == {"trial"}, "the refunded top-up is void"


def test_the_plan_is_the_highest_live_subscription_and_free_without_one(
    db: Engine, clock: FrozenClock
) -> None:
    buyer = _buyer(db, clock)

    def sub(sub_id: str, lookup: str, status: str) -> SubscriptionFacts:
        return SubscriptionFacts.parse(
            {
                "id": sub_id,
                "customer": "cus_1",
                "status": status,
                "items": {"data": [{"id": "si", "price": {"id": "p", "lookup_key": lookup}}]},
            },
            {},
        )

    def plan_after(*subs: SubscriptionFacts) -> Plan:
        with writing(db) as session:
            for facts in subs:
                apply_subscription(session=session, clock=clock, subscription=facts)
            account = session.get(Account, buyer)
            assert account is not None
            return account.plan

    assert plan_after(sub("sub_a", "cutout_basic_monthly", "active")) == Plan.basic
    assert plan_after(sub("sub_b", "cutout_standard_monthly", "past_due")) == Plan.standard
    assert plan_after(sub("sub_b", "cutout_standard_monthly", "canceled")) == Plan.basic
    assert plan_after(sub("sub_a", "cutout_basic_monthly", "unpaid")) == Plan.free


def test_a_plans_first_invoice_grants_once_whether_checkout_or_invoice_paid_says_so(
    db: Engine, clock: FrozenClock
) -> None:
    buyer = _buyer(db, clock)
    subscription = SubscriptionFacts.parse(
        {
            "id": "sub_9",
            "customer": "cus_1",
            "status": "active",
            "latest_invoice": "in_9",
            "items": {
                "data": [{"id": "si", "price": {"id": "p", "lookup_key": "cutout_basic_monthly"}}]
            },
        },
        {},
    )
    # This API version's Checkout session does not name the invoice; the subscription does.
    checkout = CheckoutFacts.parse(
        {
            "id": "cs_9",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "customer": "cus_1",
            "subscription": "sub_9",
            "amount_total": 3000,
            "currency": "usd",
            "metadata": {"cutout_account_id": str(buyer), "cutout_product": "basic"},
        }
    )
    invoice = InvoiceFacts.parse(
        {
            "id": "in_9",
            "customer": "cus_1",
            "subscription": "sub_9",
            "billing_reason": "subscription_create",
            "amount_paid": 3000,
            "currency": "usd",
        },
        {},
    )
    with writing(db) as session:
        apply_checkout(
            session=session,
            clock=clock,
            catalog=PlanCatalog(),
            checkout=checkout,
            subscription=subscription,
        )
    with writing(db) as session:
        apply_paid_invoice(
            session=session,
            clock=clock,
            catalog=PlanCatalog(),
            invoice=invoice,
            subscription=subscription,
        )
    with reading(db) as session:
        lots = session.exec(select(CreditLot).where(CreditLot.account_id == buyer)).all()
        account = session.get(Account, buyer)
        assert account is not None and account.plan == Plan.basic
        subscription_lots = [lot for lot in lots if lot.source == LotSource.subscription]
        assert [(lot.amount, lot.payment_ref, lot.paid_amount) for lot in subscription_lots] == [
            (1_000_000, "in_9", 3000)
        ]
