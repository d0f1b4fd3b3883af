"""Stripe billing: the catalog in Stripe, Checkout, the portal, and what each payment, refund and
subscription change does to plans and credit lots.

Two kinds of function live here and none is both: those that talk to Stripe take a
`StripeClient` and return plain facts; those that change the database take `session=` and
never touch the network, so no transaction ever waits on Stripe. Webhook payloads and API
objects are read as plain dicts, in both the current API's shape and the older one's (an
invoice's subscription moved under `parent`, a subscription's period onto its items).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import stripe
from sqlmodel import Session, col, select

from app.models.accounts import Account, Plan
from app.models.billing import (
    PaymentStatus,
    Product,
    StripeEvent,
    StripePayment,
    StripeSubscription,
)
from app.models.ledger import CreditLot, LotScope, LotSource
from app.services.billing import ledger
from app.services.billing.entitlements import PlanCatalog
from app.services.clock import Clock, as_utc

log = logging.getLogger("cutout.billing")

# How `cutout-admin stripe sync` names each price, and how a price seen in an event is known.
LOOKUP_KEYS: Mapping[Product, str] = MappingProxyType(
    {
        Product.basic: "cutout_basic_monthly",
        Product.standard: "cutout_standard_monthly",
        Product.top_up: "cutout_web_top_up",
        Product.api_pack: "cutout_api_pack",
    }
)
PRODUCT_NAMES: Mapping[Product, str] = MappingProxyType(
    {
        Product.basic: "Cutout Basic plan",
        Product.standard: "Cutout Standard plan",
        Product.top_up: "Cutout web top-up",
        Product.api_pack: "Cutout API credit pack",
    }
)
PLAN_PRODUCTS: Mapping[Plan, Product] = MappingProxyType(
    {Plan.basic: Product.basic, Plan.standard: Product.standard}
)
# Stripe statuses in which a subscription still gives its plan: past_due keeps it while
# Stripe retries the card (the account page says the payment failed).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
# Invoices that start a paid month; a proration invoice after a plan switch gives no lot.
MONTHLY_INVOICE_REASONS = frozenset({"subscription_create", "subscription_cycle"})
PLAN_RANK = {Plan.free: 0, Plan.basic: 1, Plan.standard: 2}
WEBHOOK_TOLERANCE_SECONDS = 300


class BillingError(Exception):
    """A purchase or plan change was refused; the message is safe to show the person."""


class BillingNotConfigured(BillingError):
    def __init__(self) -> None:
        super().__init__(
            "Billing is not configured on this server, so nothing can be bought here. "
            "The operator can add credits with cutout-admin."
        )


class StripeUnavailable(BillingError):
    def __init__(self) -> None:
        super().__init__("Stripe could not be reached. Nothing was charged; try again shortly.")


class BadSignature(Exception):
    """A webhook whose Stripe-Signature does not verify (wrong secret, altered, too old)."""


# ---------------------------------------------------------------------------------------------
# Configuration and the client


@dataclass(frozen=True)
class StripeConfig:
    secret_key: str
    webhook_secret: str
    api_base: str
    public_url: str
    # Price ids given as settings; a product missing here is found by its lookup key.
    prices: Mapping[Product, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any) -> StripeConfig:
        configured = {
            Product.basic: settings.stripe_price_basic,
            Product.standard: settings.stripe_price_standard,
            Product.top_up: settings.stripe_price_topup,
            Product.api_pack: settings.stripe_price_api_pack,
        }
        return cls(
            secret_key=settings.stripe_secret_key.get_secret_value(),
            webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
            api_base=settings.stripe_api_base.rstrip("/"),
            public_url=settings.public_url.rstrip("/"),
            prices=MappingProxyType({p: price for p, price in configured.items() if price}),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.secret_key and self.webhook_secret)


def make_client(secret_key: str, api_base: str) -> stripe.StripeClient:
    if not secret_key:
        raise BillingNotConfigured()
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base},
        # Retries reuse the idempotency key stripe-python adds to every POST.
        max_network_retries=2,
    )


# ---------------------------------------------------------------------------------------------
# Facts read from Stripe objects (plain dicts)


def _dict(obj: Any) -> dict[str, Any]:
    """A StripeObject (API response) or a dict (webhook payload) as a plain dict."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj or {})


def _id_of(value: Any) -> str | None:
    """An expandable field: either the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def product_of_price(
    price: Mapping[str, Any] | None, configured: Mapping[Product, str]
) -> Product | None:
    """Which of Cutout's products a Stripe price is: by lookup key, configured id, or metadata."""
    if not price:
        return None
    by_key = {key: product for product, key in LOOKUP_KEYS.items()}
    if price.get("lookup_key") in by_key:
        return by_key[price["lookup_key"]]
    by_id = {price_id: product for product, price_id in configured.items()}
    if price.get("id") in by_id:
        return by_id[price["id"]]
    named = (price.get("metadata") or {}).get("cutout_product")
    return Product(named) if named in Product.__members__ else None


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    customer: str | None
    status: str
    product: Product | None
    item_id: str | None
    latest_invoice: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    account_hint: int | None  # metadata cutout_account_id, set when Checkout created it

    @property
    def plan(self) -> Plan | None:
        return self.product.plan if self.product else None

    @classmethod
    def parse(cls, raw: Any, configured: Mapping[Product, str]) -> SubscriptionFacts:
        sub = _dict(raw)
        items = (sub.get("items") or {}).get("data") or []
        item = items[0] if items else {}
        price = item.get("price") or item.get("plan")
        period_end = sub.get("current_period_end") or item.get("current_period_end")
        # cancel_at is how newer API versions report a scheduled end as well.
        scheduled = bool(sub.get("cancel_at_period_end")) or bool(sub.get("cancel_at"))
        return cls(
            id=sub["id"],
            customer=_id_of(sub.get("customer")),
            status=str(sub.get("status") or "incomplete"),
            product=product_of_price(price, configured),
            item_id=item.get("id"),
            latest_invoice=_id_of(sub.get("latest_invoice")),
            cancel_at_period_end=scheduled,
            current_period_end=_time(sub.get("cancel_at") or period_end),
            account_hint=_account_hint(sub.get("metadata")),
        )


@dataclass(frozen=True)
class CheckoutFacts:
    id: str
    mode: str  # payment | subscription
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    customer: str | None
    payment_intent: str | None
    subscription: str | None
    invoice: str | None
    amount_total: int
    currency: str
    product: Product | None
    account_hint: int | None

    @property
    def paid(self) -> bool:
        return self.status == "complete" and self.payment_status in ("paid", "no_payment_required")

    @classmethod
    def parse(cls, raw: Any) -> CheckoutFacts:
        cs = _dict(raw)
        metadata = cs.get("metadata") or {}
        named = metadata.get("cutout_product")
        hint = _account_hint(metadata)
        if hint is None and str(cs.get("client_reference_id") or "").isdigit():
            hint = int(cs["client_reference_id"])
        return cls(
            id=cs["id"],
            mode=str(cs.get("mode") or "payment"),
            status=str(cs.get("status") or "open"),
            payment_status=str(cs.get("payment_status") or "unpaid"),
            customer=_id_of(cs.get("customer")),
            payment_intent=_id_of(cs.get("payment_intent")),
            subscription=_id_of(cs.get("subscription")),
            invoice=_id_of(cs.get("invoice")),
            amount_total=int(cs.get("amount_total") or 0),
            currency=str(cs.get("currency") or ""),
            product=Product(named) if named in Product.__members__ else None,
            account_hint=hint,
        )


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    customer: str | None
    subscription: str | None
    billing_reason: str | None
    amount_paid: int
    currency: str
    product: Product | None  # of its first subscription line, when the price is Cutout's

    @property
    def starts_a_month(self) -> bool:
        return self.billing_reason in MONTHLY_INVOICE_REASONS

    @classmethod
    def parse(cls, raw: Any, configured: Mapping[Product, str]) -> InvoiceFacts:
        inv = _dict(raw)
        parent = (inv.get("parent") or {}).get("subscription_details") or {}
        subscription = _id_of(inv.get("subscription")) or _id_of(parent.get("subscription"))
        product = None
        for line in (inv.get("lines") or {}).get("data") or []:
            details = (line.get("pricing") or {}).get("price_details") or {}
            price = line.get("price") or line.get("plan") or details.get("price")
            if isinstance(price, str):
                price = {"id": price}
            product = product_of_price(price, configured)
            if product is not None and not line.get("proration"):
                break
        return cls(
            id=inv["id"],
            customer=_id_of(inv.get("customer")),
            subscription=subscription,
            billing_reason=inv.get("billing_reason"),
            amount_paid=int(inv.get("amount_paid") or 0),
            currency=str(inv.get("currency") or ""),
            product=product,
        )


@dataclass(frozen=True)
class ChargeFacts:
    id: str
    customer: str | None
    payment_intent: str | None
    invoice: str | None  # only in older API versions
    refunded: bool
    amount_refunded: int

    @classmethod
    def parse(cls, raw: Any) -> ChargeFacts:
        ch = _dict(raw)
        return cls(
            id=ch["id"],
            customer=_id_of(ch.get("customer")),
            payment_intent=_id_of(ch.get("payment_intent")),
            invoice=_id_of(ch.get("invoice")),
            refunded=bool(ch.get("refunded")),
            amount_refunded=int(ch.get("amount_refunded") or 0),
        )


def _account_hint(metadata: Mapping[str, Any] | None) -> int | None:
    raw = str((metadata or {}).get("cutout_account_id") or "")
    return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object: dict[str, Any]


def verify_event(payload: bytes, signature: str | None, secret: str) -> WebhookEvent:
    """Check the Stripe-Signature header on the raw body (HMAC-SHA256, 300 s tolerance)."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, WEBHOOK_TOLERANCE_SECONDS)
        event = json.loads(payload)
        return WebhookEvent(
            id=str(event["id"]), type=str(event["type"]), object=dict(event["data"]["object"])
        )
    except stripe.SignatureVerificationError as refused:
        raise BadSignature(str(refused).splitlines()[0]) from None
    except (ValueError, KeyError, TypeError):
        raise BadSignature("the body is not a Stripe event") from None


# ---------------------------------------------------------------------------------------------
# Talking to Stripe (no database)


def _call(request: Any, *args: Any, **kwargs: Any) -> Any:
    """One Stripe call; network trouble becomes StripeUnavailable, other refusals stay."""
    try:
        return request(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as trouble:
        log.warning("stripe call failed: %s", type(trouble).__name__)
        raise StripeUnavailable() from trouble


def resolve_prices(client: stripe.StripeClient, config: StripeConfig) -> dict[Product, str]:
    """Every product's price id: from settings, or Stripe's price with the product's lookup key."""
    prices = dict(config.prices)
    missing = [LOOKUP_KEYS[p] for p in Product if p not in prices]
    if missing:
        found = _call(client.v1.prices.list, {"lookup_keys": missing, "active": True, "limit": 10})
        for price in found.data:
            product = product_of_price(_dict(price), {})
            if product is not None:
                prices.setdefault(product, price.id)
    absent = [p.value for p in Product if p not in prices]
    if absent:
        raise BillingError(
            f"Stripe has no price for {', '.join(absent)} yet: the operator needs to run "
            "cutout-admin stripe sync."
        )
    return prices


def create_customer(client: stripe.StripeClient, *, account_id: int, email: str) -> str:
    """A Stripe customer for the account. The idempotency key makes a retry (or two clicks)
    get the same customer for a day, so one account does not end up with two."""
    customer = _call(
        client.v1.customers.create,
        {"email": email, "metadata": {"cutout_account_id": str(account_id)}},
        {"idempotency_key": f"cutout-customer-{account_id}"},
    )
    return str(customer.id)


@dataclass(frozen=True)
class CheckoutLink:
    id: str
    url: str


def create_checkout(
    client: stripe.StripeClient,
    *,
    account_id: int,
    customer: str,
    product: Product,
    price: str,
    success_url: str,
    cancel_url: str,
) -> CheckoutLink:
    metadata = {"cutout_account_id": str(account_id), "cutout_product": product.value}
    params: dict[str, Any] = {
        "mode": "subscription" if product.plan else "payment",
        "customer": customer,
        "client_reference_id": str(account_id),
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if product.plan:
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    created = _call(client.v1.checkout.sessions.create, params)
    return CheckoutLink(id=str(created.id), url=str(created.url))


def fetch_checkout(client: stripe.StripeClient, session_id: str) -> CheckoutFacts:
    return CheckoutFacts.parse(_call(client.v1.checkout.sessions.retrieve, session_id))


def fetch_subscription(
    client: stripe.StripeClient, subscription_id: str, configured: Mapping[Product, str]
) -> SubscriptionFacts:
    return SubscriptionFacts.parse(
        _call(client.v1.subscriptions.retrieve, subscription_id), configured
    )


def fetch_invoice(
    client: stripe.StripeClient, invoice_id: str, configured: Mapping[Product, str]
) -> InvoiceFacts:
    return InvoiceFacts.parse(_call(client.v1.invoices.retrieve, invoice_id), configured)


def account_hint_of_customer(client: stripe.StripeClient, customer_id: str) -> int | None:
    """The account a customer was created for (its metadata), for events that beat the link."""
    try:
        customer = _call(client.v1.customers.retrieve, customer_id)
    except stripe.InvalidRequestError:
        return None
    return _account_hint(_dict(customer).get("metadata"))


def payment_of_intent(client: stripe.StripeClient, payment_intent: str) -> str | None:
    """The Checkout session or invoice a payment intent paid: what a refund refers to."""
    sessions = _call(client.v1.checkout.sessions.list, {"payment_intent": payment_intent})
    if sessions.data:
        return str(sessions.data[0].id)
    payments = _call(
        client.v1.invoice_payments.list,
        {"payment": {"type": "payment_intent", "payment_intent": payment_intent}},
    )
    if payments.data:
        return _id_of(_dict(payments.data[0]).get("invoice"))
    return None


def update_subscription(
    client: stripe.StripeClient,
    subscription: SubscriptionFacts,
    configured: Mapping[Product, str],
    *,
    price: str | None = None,
    cancel_at_period_end: bool | None = None,
) -> SubscriptionFacts:
    params: dict[str, Any] = {}
    if price is not None:
        params["items"] = [{"id": subscription.item_id, "price": price}]
        # The difference is charged on the next invoice; switching gives no extra credits.
        params["proration_behavior"] = "create_prorations"
    if cancel_at_period_end is not None:
        params["cancel_at_period_end"] = cancel_at_period_end
    updated = _call(client.v1.subscriptions.update, subscription.id, params)
    return SubscriptionFacts.parse(updated, configured)


def cancel_subscription_now(client: stripe.StripeClient, subscription_id: str) -> None:
    try:
        _call(client.v1.subscriptions.cancel, subscription_id)
    except stripe.InvalidRequestError:
        log.info("subscription %s was already gone at Stripe", subscription_id)


def open_portal(client: stripe.StripeClient, *, customer: str, return_url: str) -> str:
    portal = _call(
        client.v1.billing_portal.sessions.create, {"customer": customer, "return_url": return_url}
    )
    return str(portal.url)


@dataclass(frozen=True)
class SyncedPrice:
    product: Product
    price_id: str
    action: str  # "unchanged", "created"


def sync_catalog(
    client: stripe.StripeClient, catalog: PlanCatalog, *, currency: str
) -> list[SyncedPrice]:
    """Make Stripe sell what the catalog says, found again by lookup keys: running it twice
    changes nothing; a changed price gets a new Stripe price that takes over the lookup key
    (Stripe prices cannot change amount), and the old one is archived."""
    amounts = {
        Product.basic: catalog.basic_price_cents,
        Product.standard: catalog.standard_price_cents,
        Product.top_up: catalog.topup_price_cents,
        Product.api_pack: catalog.api_pack_price_cents,
    }
    existing = {
        str(price.lookup_key): _dict(price)
        for price in _call(
            client.v1.prices.list,
            {"lookup_keys": list(LOOKUP_KEYS.values()), "active": True, "limit": 10},
        ).data
    }
    synced: list[SyncedPrice] = []
    for product in Product:
        key = LOOKUP_KEYS[product]
        recurring = {"interval": "month"} if product.plan else None
        current = existing.get(key)
        if current is not None and _price_matches(current, amounts[product], currency, recurring):
            synced.append(SyncedPrice(product, str(current["id"]), "unchanged"))
            continue
        product_id = _ensure_product(client, product)
        params: dict[str, Any] = {
            "product": product_id,
            "unit_amount": amounts[product],
            "currency": currency,
            "lookup_key": key,
            "transfer_lookup_key": True,
            "metadata": {"cutout_product": product.value},
        }
        if recurring:
            params["recurring"] = recurring
        created = _call(client.v1.prices.create, params)
        if current is not None:
            _call(client.v1.prices.update, str(current["id"]), {"active": False})
        synced.append(SyncedPrice(product, str(created.id), "created"))
    return synced


def _price_matches(
    price: Mapping[str, Any], amount: int, currency: str, recurring: Mapping[str, str] | None
) -> bool:
    interval = (price.get("recurring") or {}).get("interval")
    return (
        price.get("unit_amount") == amount
        and str(price.get("currency", "")).lower() == currency.lower()
        and interval == (recurring or {}).get("interval")
    )


def _ensure_product(client: stripe.StripeClient, product: Product) -> str:
    product_id = f"cutout_{product.value}"
    try:
        _call(client.v1.products.retrieve, product_id)
    except stripe.InvalidRequestError:
        _call(
            client.v1.products.create,
            {
                "id": product_id,
                "name": PRODUCT_NAMES[product],
                "metadata": {"cutout_product": product.value},
            },
        )
    return product_id


# ---------------------------------------------------------------------------------------------
# The database side (no network)


def event_seen(*, session: Session, event_id: str) -> bool:
    return session.get(StripeEvent, event_id) is not None


def record_event(*, session: Session, clock: Clock, event: WebhookEvent, outcome: str) -> None:
    session.add(
        StripeEvent(id=event.id, type=event.type, outcome=outcome[:200], received_at=clock.now())
    )
    session.flush()


def account_for_customer(*, session: Session, customer_id: str | None) -> Account | None:
    if not customer_id:
        return None
    return session.exec(select(Account).where(Account.stripe_customer_id == customer_id)).first()


def resolve_account(
    *, session: Session, customer_id: str | None, hint: int | None
) -> Account | None:
    """The account behind a Stripe object: by its linked customer, else by the account id Cutout
    put in the object's metadata (then the customer is linked now)."""
    account = account_for_customer(session=session, customer_id=customer_id)
    if account is None and hint is not None:
        account = session.get(Account, hint)
        if account is not None and customer_id:
            link_customer(session=session, account=account, customer_id=customer_id)
    return account


def _lock_account(session: Session, account_id: int) -> None:
    """Serialise an account's billing writes (PostgreSQL; SQLite's writer lock already does):
    two deliveries about one payment must not both create its row or both grant."""
    session.exec(select(Account.id).where(Account.id == account_id).with_for_update()).first()


def link_customer(*, session: Session, account: Account, customer_id: str) -> None:
    if account.stripe_customer_id is None:
        account.stripe_customer_id = customer_id
        session.add(account)
        session.flush()
    elif account.stripe_customer_id != customer_id:
        log.warning(
            "account %s already has customer %s; not relinking to %s",
            account.id,
            account.stripe_customer_id,
            customer_id,
        )


def start_payment(
    *,
    session: Session,
    clock: Clock,
    ref: str,
    account_id: int,
    product: Product,
    return_path: str,
) -> StripePayment:
    now = clock.now()
    payment = StripePayment(
        ref=ref,
        account_id=account_id,
        product=product,
        status=PaymentStatus.open,
        return_path=return_path,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    return payment


def find_payment(*, session: Session, ref: str) -> StripePayment | None:
    return session.get(StripePayment, ref)


def find_payment_by_intent(*, session: Session, payment_intent: str) -> StripePayment | None:
    return session.exec(
        select(StripePayment).where(StripePayment.payment_intent == payment_intent)
    ).first()


def _payment_row(
    session: Session, clock: Clock, *, ref: str, account_id: int, product: Product
) -> StripePayment:
    payment = session.get(StripePayment, ref)
    if payment is None:
        payment = start_payment(
            session=session,
            clock=clock,
            ref=ref,
            account_id=account_id,
            product=product,
            return_path="/",
        )
    return payment


def _set_status(
    session: Session, clock: Clock, payment: StripePayment, status: PaymentStatus
) -> None:
    payment.status = status
    payment.updated_at = clock.now()
    session.add(payment)
    session.flush()


LOT_SHAPE: Mapping[Product, tuple[LotSource, LotScope]] = MappingProxyType(
    {
        Product.basic: (LotSource.subscription, LotScope.web),
        Product.standard: (LotSource.subscription, LotScope.web),
        Product.top_up: (LotSource.top_up, LotScope.web),
        Product.api_pack: (LotSource.api_pack, LotScope.api),
    }
)


def credits_of(catalog: PlanCatalog, product: Product) -> int:
    return {
        Product.basic: catalog.basic_credits,
        Product.standard: catalog.standard_credits,
        Product.top_up: catalog.topup_credits,
        Product.api_pack: catalog.api_pack_credits,
    }[product]


def grant_for_payment(
    *,
    session: Session,
    clock: Clock,
    catalog: PlanCatalog,
    payment: StripePayment,
    amount_paid: int,
    currency: str,
) -> CreditLot | None:
    """The lot a settled payment buys, once: keyed on the payment (Checkout session or invoice),
    so every event and the return page that see the same payment grant it together once.
    A payment already refunded buys nothing."""
    if payment.status == PaymentStatus.refunded:
        return None
    if payment.status == PaymentStatus.paid and payment.lot_id is not None:
        return session.get(CreditLot, payment.lot_id)
    source, scope = LOT_SHAPE[payment.product]
    lot = ledger.grant_credits(
        session=session,
        clock=clock,
        account_id=payment.account_id,
        amount=credits_of(catalog, payment.product),
        scope=scope,
        source=source,
        key=f"stripe:{payment.ref}",
        valid_days=catalog.lot_valid_days,
        note=PRODUCT_NAMES[payment.product],
        payment=ledger.Payment(amount=amount_paid, currency=currency.lower(), ref=payment.ref),
    )
    payment.lot_id = lot.id
    _set_status(session, clock, payment, PaymentStatus.paid)
    return lot


def apply_checkout(
    *,
    session: Session,
    clock: Clock,
    catalog: PlanCatalog,
    checkout: CheckoutFacts,
    subscription: SubscriptionFacts | None = None,
) -> str:
    """A Checkout session's news (completed, settled, failed, expired), idempotently."""
    payment = session.get(StripePayment, checkout.id)
    account = resolve_account(
        session=session,
        customer_id=checkout.customer,
        hint=payment.account_id if payment else checkout.account_hint,
    )
    if account is None or account.id is None:
        return f"ignored: no account for checkout {checkout.id}"
    _lock_account(session, account.id)
    payment = session.get(StripePayment, checkout.id, populate_existing=True)
    product = payment.product if payment else checkout.product
    if product is None:
        return f"ignored: checkout {checkout.id} is not for a Cutout product"
    if payment is None:
        payment = _payment_row(
            session, clock, ref=checkout.id, account_id=account.id, product=product
        )
    if checkout.payment_intent and payment.payment_intent is None:
        payment.payment_intent = checkout.payment_intent
    if subscription is not None:
        apply_subscription(
            session=session, clock=clock, subscription=subscription, account_id=account.id
        )
    if payment.status in (PaymentStatus.paid, PaymentStatus.refunded):
        return f"checkout {checkout.id} already {payment.status.value}"
    # A plan's first month is its first invoice: the lot is keyed on the invoice, like
    # invoice.paid's. Checkout names it in some API versions; the subscription always does.
    first_invoice = checkout.invoice or (subscription.latest_invoice if subscription else None)
    if checkout.paid:
        if product.plan and first_invoice:
            invoice = _payment_row(
                session, clock, ref=first_invoice, account_id=account.id, product=product
            )
            grant_for_payment(
                session=session,
                clock=clock,
                catalog=catalog,
                payment=invoice,
                amount_paid=checkout.amount_total,
                currency=checkout.currency,
            )
            _set_status(session, clock, payment, PaymentStatus.paid)
            return f"plan {product.value} started by checkout {checkout.id}"
        if product.plan:
            _set_status(session, clock, payment, PaymentStatus.paid)
            return f"plan {product.value} started by checkout {checkout.id}; credits on invoice"
        grant_for_payment(
            session=session,
            clock=clock,
            catalog=catalog,
            payment=payment,
            amount_paid=checkout.amount_total,
            currency=checkout.currency,
        )
        return f"{product.value} paid by checkout {checkout.id}"
    if checkout.status == "complete":
        _set_status(session, clock, payment, PaymentStatus.pending)
        return f"checkout {checkout.id} complete, payment pending"
    if checkout.status == "expired":
        _set_status(session, clock, payment, PaymentStatus.expired)
        return f"checkout {checkout.id} expired"
    return f"checkout {checkout.id} still open"


def fail_checkout(*, session: Session, clock: Clock, checkout: CheckoutFacts) -> str:
    """A delayed payment (a bank debit) failed after Checkout: no credits."""
    payment = session.get(StripePayment, checkout.id)
    if payment is None:
        return f"ignored: unknown checkout {checkout.id}"
    if payment.status in (PaymentStatus.paid, PaymentStatus.refunded):
        return f"checkout {checkout.id} already {payment.status.value}"
    _set_status(session, clock, payment, PaymentStatus.failed)
    return f"checkout {checkout.id} payment failed"


def apply_subscription(
    *,
    session: Session,
    clock: Clock,
    subscription: SubscriptionFacts,
    account_id: int | None = None,
) -> str:
    """Store Stripe's current view of a subscription and set the account's plan from it."""
    row = session.get(StripeSubscription, subscription.id)
    if account_id is None:
        account = resolve_account(
            session=session,
            customer_id=subscription.customer,
            hint=row.account_id if row else subscription.account_hint,
        )
        account_id = account.id if account else None
    if account_id is None:
        return f"ignored: no account for subscription {subscription.id}"
    _lock_account(session, account_id)
    row = session.get(StripeSubscription, subscription.id, populate_existing=True)
    plan = subscription.plan or (row.plan if row else None)
    if plan is None:
        return f"ignored: subscription {subscription.id} is not for a Cutout plan"
    now = clock.now()
    if row is None:
        row = StripeSubscription(
            id=subscription.id, account_id=account_id, plan=plan, status="", updated_at=now
        )
    row.plan = plan
    row.status = subscription.status
    row.cancel_at_period_end = subscription.cancel_at_period_end
    row.current_period_end = subscription.current_period_end
    if subscription.status not in LIVE_STATUSES:
        row.payment_failed = False
    row.updated_at = now
    session.add(row)
    session.flush()
    new_plan = refresh_plan(session=session, account_id=account_id)
    return f"subscription {subscription.id} {subscription.status}; plan {new_plan.value}"


def refresh_plan(*, session: Session, account_id: int) -> Plan:
    """The account's plan is that of its live subscription (the higher one, should there be
    two); none left means the free plan. Entitlements read it, so tools switch with it."""
    rows = session.exec(
        select(StripeSubscription).where(
            StripeSubscription.account_id == account_id,
            col(StripeSubscription.status).in_(LIVE_STATUSES),
        )
    ).all()
    plan = max((Plan(row.plan) for row in rows), key=PLAN_RANK.__getitem__, default=Plan.free)
    account = session.get(Account, account_id)
    if account is not None and account.plan != plan:
        account.plan = plan
        session.add(account)
        session.flush()
    return plan


def apply_paid_invoice(
    *,
    session: Session,
    clock: Clock,
    catalog: PlanCatalog,
    invoice: InvoiceFacts,
    subscription: SubscriptionFacts | None,
) -> str:
    """One subscription lot per paid monthly invoice (first month or renewal)."""
    if subscription is not None:
        apply_subscription(session=session, clock=clock, subscription=subscription)
    row = session.get(StripeSubscription, invoice.subscription) if invoice.subscription else None
    if row is None:
        return f"ignored: invoice {invoice.id} is not for a known subscription"
    _lock_account(session, row.account_id)
    if row.payment_failed:
        row.payment_failed = False
        row.updated_at = clock.now()
        session.add(row)
    if not invoice.starts_a_month:
        return f"invoice {invoice.id} ({invoice.billing_reason}) gives no credits"
    product = invoice.product or PLAN_PRODUCTS[Plan(row.plan)]
    payment = _payment_row(
        session, clock, ref=invoice.id, account_id=row.account_id, product=product
    )
    if payment.status == PaymentStatus.refunded:
        return f"invoice {invoice.id} was refunded before it was seen paid"
    lot = grant_for_payment(
        session=session,
        clock=clock,
        catalog=catalog,
        payment=payment,
        amount_paid=invoice.amount_paid,
        currency=invoice.currency,
    )
    return f"invoice {invoice.id} paid: lot {lot.id if lot else '-'}"


def apply_failed_invoice(
    *,
    session: Session,
    clock: Clock,
    invoice: InvoiceFacts,
    subscription: SubscriptionFacts | None,
) -> str:
    if subscription is not None:
        apply_subscription(session=session, clock=clock, subscription=subscription)
    row = session.get(StripeSubscription, invoice.subscription) if invoice.subscription else None
    if row is None:
        return f"ignored: invoice {invoice.id} is not for a known subscription"
    row.payment_failed = True
    row.updated_at = clock.now()
    session.add(row)
    session.flush()
    return f"invoice {invoice.id} payment failed"


def apply_refund(
    *,
    session: Session,
    clock: Clock,
    ref: str,
    account_id: int | None,
    product: Product | None,
) -> str:
    """Void the unspent rest of the lot that payment bought; credits already spent or held by
    running work stay spent. A refund seen before its payment marks it so it never grants."""
    payment = session.get(StripePayment, ref)
    owner = payment.account_id if payment else account_id
    if owner is not None:
        _lock_account(session, owner)
        payment = session.get(StripePayment, ref, populate_existing=True)
    if payment is None:
        if account_id is None or product is None:
            return f"ignored: refund of unknown payment {ref}"
        payment = _payment_row(session, clock, ref=ref, account_id=account_id, product=product)
    if payment.status == PaymentStatus.refunded:
        return f"payment {ref} already refunded"
    lot_id = payment.lot_id
    _set_status(session, clock, payment, PaymentStatus.refunded)
    if lot_id is None:
        return f"payment {ref} refunded before any credits were granted"
    lot = ledger.void_lot(
        session=session,
        clock=clock,
        account_id=payment.account_id,
        lot_id=lot_id,
        key=f"stripe-refund:{ref}",
    )
    return f"payment {ref} refunded: lot {lot.id} voided"


def live_subscription(*, session: Session, account_id: int) -> StripeSubscription | None:
    return session.exec(
        select(StripeSubscription)
        .where(
            StripeSubscription.account_id == account_id,
            col(StripeSubscription.status).in_(LIVE_STATUSES),
        )
        .order_by(col(StripeSubscription.updated_at).desc())
    ).first()


@dataclass(frozen=True)
class PlanStatus:
    """What the account page says about the plan."""

    plan: Plan
    subscription_id: str | None = None
    status: str = ""  # Stripe's status of the live subscription
    ends_on: datetime | None = None  # cancelled: the plan ends then
    renews_on: datetime | None = None
    payment_failed: bool = False
    has_customer: bool = False


def plan_status(*, session: Session, account: Account) -> PlanStatus:
    assert account.id is not None
    row = live_subscription(session=session, account_id=account.id)
    has_customer = account.stripe_customer_id is not None
    if row is None:
        return PlanStatus(plan=account.plan, has_customer=has_customer)
    period_end = as_utc(row.current_period_end) if row.current_period_end else None
    return PlanStatus(
        plan=Plan(row.plan),
        subscription_id=row.id,
        status=row.status,
        ends_on=period_end if row.cancel_at_period_end else None,
        renews_on=None if row.cancel_at_period_end else period_end,
        payment_failed=row.payment_failed or row.status == "past_due",
        has_customer=has_customer,
    )
