"""Buying with Stripe: Checkout for plans and packs, the portal, plan changes, and the webhook.

Stripe is never called inside a unit of work: each use case asks Stripe first (or after), and
writes what it learnt in a short writing unit. A webhook event is recorded in the same unit of
work as its effect, so a replayed event finds itself already applied and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import routes
from app.db import reading, writing
from app.models.accounts import Account, Plan
from app.models.billing import PaymentStatus, Product
from app.services.billing import stripe_billing as billing
from app.services.billing.entitlements import PlanCatalog
from app.services.billing.stripe_billing import (
    BillingError,
    BillingNotConfigured,
    ChargeFacts,
    CheckoutFacts,
    InvoiceFacts,
    PlanStatus,
    StripeConfig,
    SubscriptionFacts,
    WebhookEvent,
)
from app.services.clock import Clock
from app.settings import Settings

log = logging.getLogger("cutout.billing")

CHECKOUT_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.expired",
    }
)
SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)


class NoSuchAccount(BillingError):
    def __init__(self) -> None:
        super().__init__("This account no longer exists.")


def billing_enabled(*, settings: Settings) -> bool:
    return StripeConfig.from_settings(settings).enabled


def _config(settings: Settings) -> StripeConfig:
    config = StripeConfig.from_settings(settings)
    if not config.enabled:
        raise BillingNotConfigured()
    return config


@dataclass(frozen=True)
class _Buyer:
    id: int
    email: str
    customer: str | None


def _live_account(db: Engine, account_id: int) -> _Buyer:
    with reading(db) as session:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise NoSuchAccount()
        return _Buyer(account_id, account.email, account.stripe_customer_id)


def start_checkout(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient,
    account_id: int,
    product: Product,
    return_path: str,
) -> str:
    """The Stripe Checkout address where the person pays for `product`; afterwards Stripe sends
    them to the return route, which sends them back to `return_path`."""
    config = _config(settings)
    return_path = routes.safe_next(return_path, routes.PRICING)
    account = _live_account(db, account_id)
    if product.plan is not None:
        with reading(db) as session:
            live = billing.live_subscription(session=session, account_id=account_id)
            live_plan = Plan(live.plan) if live else None
        if live_plan is not None:
            raise BillingError(
                f"You are already on the {live_plan.value.capitalize()} plan: switch "
                "plans or cancel on your account page."
            )
    customer = account.customer or _new_customer(db, client, account)
    prices = billing.resolve_prices(client, config)
    link = billing.create_checkout(
        client,
        account_id=account_id,
        customer=customer,
        product=product,
        price=prices[product],
        success_url=routes.checkout_return_url(config.public_url),
        cancel_url=config.public_url + routes.with_purchase_outcome(return_path, "cancelled"),
    )
    with writing(db) as session:
        billing.start_payment(
            session=session,
            clock=clock,
            ref=link.id,
            account_id=account_id,
            product=product,
            return_path=return_path,
        )
    return link.url


def _new_customer(db: Engine, client: stripe.StripeClient, account: _Buyer) -> str:
    customer = billing.create_customer(client, account_id=account.id, email=account.email)
    with writing(db) as session:
        fresh = session.get(Account, account.id)
        assert fresh is not None
        billing.link_customer(session=session, account=fresh, customer_id=customer)
        # Two first purchases at once: the first link wins and both use it.
        return fresh.stripe_customer_id or customer


@dataclass(frozen=True)
class CheckoutReturn:
    path: str  # where the person was, with the outcome in its query
    outcome: str  # complete | pending | failed | unknown


def finish_checkout(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient,
    session_id: str,
) -> CheckoutReturn:
    """Back from Checkout: apply what Stripe says about the session now (the webhook may come
    later), so the page the person returns to already shows the credits."""
    with reading(db) as session:
        payment = billing.find_payment(session=session, ref=session_id)
        return_path = payment.return_path if payment else None
    if return_path is None:
        return CheckoutReturn(routes.with_purchase_outcome(routes.PRICING, "unknown"), "unknown")
    try:
        config = _config(settings)
        checkout = billing.fetch_checkout(client, session_id)
        subscription = _subscription_of(client, config, checkout.subscription)
        with writing(db) as session:
            billing.apply_checkout(
                session=session,
                clock=clock,
                catalog=PlanCatalog.from_settings(settings),
                checkout=checkout,
                subscription=subscription,
            )
            status = billing.find_payment(session=session, ref=session_id)
            outcome = _outcome(status.status if status else PaymentStatus.open)
    except (BillingError, stripe.StripeError):
        # The webhook will still deliver it; say it is on its way rather than fail the page.
        log.warning("checkout %s: could not confirm on return", session_id, exc_info=True)
        outcome = "pending"
    return CheckoutReturn(routes.with_purchase_outcome(return_path, outcome), outcome)


def _outcome(status: PaymentStatus) -> str:
    return {
        PaymentStatus.paid: "complete",
        PaymentStatus.failed: "failed",
        PaymentStatus.expired: "failed",
        PaymentStatus.refunded: "failed",
    }.get(status, "pending")


def _subscription_of(
    client: stripe.StripeClient, config: StripeConfig, subscription_id: str | None
) -> SubscriptionFacts | None:
    if not subscription_id:
        return None
    return billing.fetch_subscription(client, subscription_id, config.prices)


def customer_portal(
    *, db: Engine, settings: Settings, client: stripe.StripeClient, account_id: int
) -> str:
    """Stripe's customer portal (cards, invoices, cancellation), back to the account page."""
    config = _config(settings)
    account = _live_account(db, account_id)
    if account.customer is None:
        raise BillingError("Nothing to manage yet: buy a plan or credits first.")
    return billing.open_portal(
        client, customer=account.customer, return_url=config.public_url + routes.ACCOUNT
    )


def _current_subscription(
    db: Engine, client: stripe.StripeClient, config: StripeConfig, account_id: int
) -> SubscriptionFacts:
    with reading(db) as session:
        row = billing.live_subscription(session=session, account_id=account_id)
        subscription_id = row.id if row else None
    if subscription_id is None:
        raise BillingError("You have no plan to change: subscribe on the pricing page.")
    return billing.fetch_subscription(client, subscription_id, config.prices)


def _store(db: Engine, clock: Clock, facts: SubscriptionFacts, account_id: int) -> PlanStatus:
    with writing(db) as session:
        billing.apply_subscription(
            session=session, clock=clock, subscription=facts, account_id=account_id
        )
        account = session.get(Account, account_id)
        assert account is not None
        return billing.plan_status(session=session, account=account)


def switch_plan(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient,
    account_id: int,
    plan: Plan,
) -> PlanStatus:
    """Move the subscription to `plan` now (prorated on the next invoice); tools follow at once."""
    config = _config(settings)
    _live_account(db, account_id)
    product = billing.PLAN_PRODUCTS.get(plan)
    if product is None:
        raise BillingError("To leave your plan, cancel it: it ends at the end of the month.")
    current = _current_subscription(db, client, config, account_id)
    if current.plan == plan:
        raise BillingError(f"You are already on the {plan.value.capitalize()} plan.")
    prices = billing.resolve_prices(client, config)
    updated = billing.update_subscription(client, current, config.prices, price=prices[product])
    return _store(db, clock, updated, account_id)


def cancel_plan(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient,
    account_id: int,
    cancel: bool = True,
) -> PlanStatus:
    """Cancel at the period's end (or take the cancellation back); credits already issued keep
    their own expiry either way."""
    config = _config(settings)
    _live_account(db, account_id)
    current = _current_subscription(db, client, config, account_id)
    updated = billing.update_subscription(
        client, current, config.prices, cancel_at_period_end=cancel
    )
    return _store(db, clock, updated, account_id)


def end_subscriptions_now(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient | None,
    account_id: int,
) -> None:
    """Before an account is deleted: stop charging it. Nothing to do without Stripe."""
    config = StripeConfig.from_settings(settings)
    with reading(db) as session:
        row = billing.live_subscription(session=session, account_id=account_id)
        subscription_id = row.id if row else None
    if subscription_id is None or client is None or not config.enabled:
        return
    billing.cancel_subscription_now(client, subscription_id)
    facts = billing.fetch_subscription(client, subscription_id, config.prices)
    _store(db, clock, facts, account_id)


@dataclass(frozen=True)
class BillingOverview:
    enabled: bool
    status: PlanStatus


def overview(*, db: Engine, settings: Settings, account_id: int) -> BillingOverview:
    with reading(db) as session:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise NoSuchAccount()
        status = billing.plan_status(session=session, account=account)
    return BillingOverview(enabled=billing_enabled(settings=settings), status=status)


# ---------------------------------------------------------------------------------------------
# The webhook


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    type: str
    outcome: str
    duplicate: bool = False


@dataclass(frozen=True)
class _Prepared:
    """What Stripe said beyond the event itself, fetched before the unit of work opens."""

    subscription: SubscriptionFacts | None = None
    refund_ref: str | None = None
    refund_account: int | None = None
    refund_product: Product | None = None


def handle_webhook(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    client: stripe.StripeClient,
    payload: bytes,
    signature: str | None,
) -> WebhookResult:
    """Verify, then apply an event once. Raises BadSignature (nothing changes) or, when Stripe
    cannot be asked something the event needs, StripeUnavailable (Stripe retries later)."""
    config = _config(settings)
    event = billing.verify_event(payload, signature, config.webhook_secret)
    with reading(db) as session:
        if billing.event_seen(session=session, event_id=event.id):
            return WebhookResult(event.id, event.type, "already applied", duplicate=True)
    prepared = _prepare(db, client, config, event)
    catalog = PlanCatalog.from_settings(settings)
    try:
        with writing(db) as session:
            if billing.event_seen(session=session, event_id=event.id):
                return WebhookResult(event.id, event.type, "already applied", duplicate=True)
            outcome = _apply(session, clock, catalog, config, event, prepared)
            billing.record_event(session=session, clock=clock, event=event, outcome=outcome)
    except IntegrityError:
        with reading(db) as session:
            if not billing.event_seen(session=session, event_id=event.id):
                raise
        # The same event delivered twice at once: the other delivery applied it.
        return WebhookResult(event.id, event.type, "already applied", duplicate=True)
    log.info("stripe event %s %s: %s", event.id, event.type, outcome)
    return WebhookResult(event.id, event.type, outcome)


def _prepare(
    db: Engine, client: stripe.StripeClient, config: StripeConfig, event: WebhookEvent
) -> _Prepared:
    """Ask Stripe for the current state of what the event is about, so events applied in any
    order end in the state Stripe is in (an invoice.paid before its Checkout session, an old
    subscription update after a newer one)."""
    kind, obj = event.type, event.object
    if kind in CHECKOUT_EVENTS:
        return _Prepared(
            subscription=_subscription_of(client, config, CheckoutFacts.parse(obj).subscription)
        )
    if kind in ("invoice.paid", "invoice.payment_failed"):
        invoice = InvoiceFacts.parse(obj, config.prices)
        return _Prepared(subscription=_subscription_of(client, config, invoice.subscription))
    if kind in SUBSCRIPTION_EVENTS:
        return _Prepared(subscription=_subscription_of(client, config, str(obj["id"])))
    if kind == "charge.refunded":
        return _prepare_refund(db, client, config, ChargeFacts.parse(obj))
    return _Prepared()


def _prepare_refund(
    db: Engine, client: stripe.StripeClient, config: StripeConfig, charge: ChargeFacts
) -> _Prepared:
    """Which payment (Checkout session or invoice) the refunded charge paid for."""
    ref = charge.invoice
    if ref is None and charge.payment_intent:
        with reading(db) as session:
            known = billing.find_payment_by_intent(
                session=session, payment_intent=charge.payment_intent
            )
            ref = known.ref if known else None
        ref = ref or billing.payment_of_intent(client, charge.payment_intent)
    if ref is None:
        return _Prepared()
    with reading(db) as session:
        is_known = billing.find_payment(session=session, ref=ref) is not None
        account = billing.account_for_customer(session=session, customer_id=charge.customer)
        account_id = account.id if account else None
    if is_known:
        return _Prepared(refund_ref=ref)
    # Refunded before Cutout saw it paid: remember it, so the payment never grants.
    product: Product | None = None
    if ref.startswith("cs_"):
        checkout = billing.fetch_checkout(client, ref)
        product = checkout.product
    elif ref.startswith("in_"):
        invoice = billing.fetch_invoice(client, ref, config.prices)
        product = invoice.product
    return _Prepared(
        refund_ref=ref,
        refund_account=account_id,
        refund_product=product,
    )


def _apply(
    session: Session,
    clock: Clock,
    catalog: PlanCatalog,
    config: StripeConfig,
    event: WebhookEvent,
    prepared: _Prepared,
) -> str:
    kind, obj = event.type, event.object
    if kind in CHECKOUT_EVENTS:
        return billing.apply_checkout(
            session=session,
            clock=clock,
            catalog=catalog,
            checkout=CheckoutFacts.parse(obj),
            subscription=prepared.subscription,
        )
    if kind == "checkout.session.async_payment_failed":
        return billing.fail_checkout(
            session=session, clock=clock, checkout=CheckoutFacts.parse(obj)
        )
    if kind == "invoice.paid":
        return billing.apply_paid_invoice(
            session=session,
            clock=clock,
            catalog=catalog,
            invoice=InvoiceFacts.parse(obj, config.prices),
            subscription=prepared.subscription,
        )
    if kind == "invoice.payment_failed":
        return billing.apply_failed_invoice(
            session=session,
            clock=clock,
            invoice=InvoiceFacts.parse(obj, config.prices),
            subscription=prepared.subscription,
        )
    if kind in SUBSCRIPTION_EVENTS:
        assert prepared.subscription is not None
        return billing.apply_subscription(
            session=session, clock=clock, subscription=prepared.subscription
        )
    if kind == "charge.refunded":
        if prepared.refund_ref is None:
            return "ignored: refund of a payment Cutout did not sell"
        return billing.apply_refund(
            session=session,
            clock=clock,
            ref=prepared.refund_ref,
            account_id=prepared.refund_account,
            product=prepared.refund_product,
        )
    return "ignored: not an event Cutout uses"


# ---------------------------------------------------------------------------------------------
# The operator


def sync_stripe(*, settings: Settings) -> list[billing.SyncedPrice]:
    """`cutout-admin stripe sync`: products and prices in Stripe, found by lookup keys."""
    config = StripeConfig.from_settings(settings)
    client = billing.make_client(config.secret_key, config.api_base)
    return billing.sync_catalog(
        client, PlanCatalog.from_settings(settings), currency=settings.currency
    )
