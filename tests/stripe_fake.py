"""localstripe on 127.0.0.1, extended with what Cutout uses and localstripe lacks.

localstripe (a stateful fake of Stripe's API, GPL, test-only) has customers, products, legacy
plans, subscriptions, invoices, payment intents, charges and refunds, and delivers events signed
exactly like Stripe's (HMAC-SHA256 of "<t>.<body>" in a Stripe-Signature header). This module adds,
as routes on its own aiohttp app:

- Prices (a recurring price is also a localstripe plan with the same id, so its subscriptions
  invoice and charge through localstripe's own machinery), with lookup keys;
- Checkout Sessions, and a test-only payment page where the browser pays (a working card, a
  declined card, a bank debit that settles or fails a moment later) or goes back;
- billing portal sessions with a test-only portal page; invoice payments (which invoice a payment
  intent paid); subscription renewal on demand (`POST /_test/subscriptions/<id>/renew`);
- the events invoice.paid, customer.subscription.updated, checkout.session.completed,
  checkout.session.async_payment_succeeded/_failed and charge.refunded, sent through localstripe's
  own signed delivery.

It also stops localstripe from pickling its state to /tmp/localstripe.pickle on every change:
parallel test runs on one machine would share that file.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from typing import Any

import httpx
from aiohttp import web
from localstripe import resources as ls
from localstripe import webhooks
from localstripe.errors import UserError
from localstripe.server import app as localstripe_app
from localstripe.server import get_post_data, json_response, unflatten_data

BASE_URL = ""  # set when the server starts: pages link back to it
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then every charge is declined
GOOD_IBAN = "DE89370400440532013000"
FAILING_IBAN = "DE62370400440532013001"  # the debit fails half a second later

_intent_sessions: dict[str, str] = {}  # payment intent id -> Checkout session id


_deliveries: set[asyncio.Future[None]] = set()


def _track_delivery(event: ls.Event) -> None:
    """localstripe's schedule_webhook, remembering the delivery so a reset can cancel it: an
    event of one test must not reach the next test's webhook."""
    delivery = asyncio.ensure_future(webhooks._send_webhook(event))
    _deliveries.add(delivery)
    delivery.add_done_callback(_deliveries.discard)


def _schedule(kind: str, obj: ls.StripeObject) -> None:
    _track_delivery(ls.Event(kind, obj))


def _bool(value: Any) -> bool | None:
    return None if value is None else str(value).lower() == "true"


# ---------------------------------------------------------------------------------------------
# Prices


class Price(ls.StripeObject):
    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        product: str | None = None,
        unit_amount: Any = None,
        currency: str | None = None,
        recurring: dict[str, Any] | None = None,
        lookup_key: str | None = None,
        transfer_lookup_key: Any = None,
        metadata: dict[str, Any] | None = None,
        nickname: str | None = None,
        active: Any = True,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        amount = ls.try_convert_to_int(unit_amount)
        if not isinstance(amount, int) or amount < 0 or not currency or not product:
            raise UserError(400, "Bad request")
        ls.Product._api_retrieve(product)  # 404 if not existent
        taken = lookup_key and any(p.lookup_key == lookup_key for p in _all(Price))
        if taken and not _bool(transfer_lookup_key):
            raise UserError(400, f"A price with lookup key {lookup_key} already exists.")
        super().__init__()
        for other in _all(Price):
            if lookup_key and other is not self and other.lookup_key == lookup_key:
                other.lookup_key = None
        self.product = product
        self.unit_amount = amount
        self.currency = currency
        self.recurring = {"interval": recurring["interval"]} if recurring else None
        self.type = "recurring" if recurring else "one_time"
        self.lookup_key = lookup_key
        self.metadata = metadata or {}
        self.nickname = nickname
        self.active = _bool(active) is not False
        if recurring:
            # localstripe subscribes to plans: give the price a twin plan with the same id.
            ls.Plan(
                id=self.id,
                product=product,
                amount=amount,
                currency=currency,
                interval=recurring["interval"],
            )

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Price:
        price = cls._api_retrieve(id)
        if "active" in data:
            price.active = _bool(data.pop("active")) is not False
        if "metadata" in data:
            price.metadata.update(data.pop("metadata") or {})
        if "lookup_key" in data:
            price.lookup_key = data.pop("lookup_key") or None
        if data:
            raise UserError(400, "Unexpected " + ", ".join(data))
        return price

    @classmethod
    def _api_list_all(cls, url: str, limit: Any = None, starting_after: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        keys = kw.pop("lookup_keys", None)
        active = _bool(kw.pop("active", None))
        kw.pop("expand", None)
        if kw:
            raise UserError(400, "Unexpected " + ", ".join(kw))
        listed = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        if keys is not None:
            wanted = keys if isinstance(keys, list) else [keys]
            listed._list = [p for p in listed._list if p.lookup_key in wanted]
        if active is not None:
            listed._list = [p for p in listed._list if p.active == active]
        return listed


def _all(cls: type) -> list[Any]:
    return [v for k, v in ls.store.items() if k.startswith(cls.object + ":")]


def _price_of_plan(plan: ls.Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    price = ls.store.get("price:" + plan.id)
    return price._export() if price else None


# A subscription item and an invoice line show their price like Stripe's current API does.
ls.SubscriptionItem.price = property(lambda self: _price_of_plan(self.plan))  # type: ignore[attr-defined]
ls.SubscriptionItem.current_period_end = property(  # type: ignore[attr-defined]
    lambda self: self._current_period()["end"]
)
ls.SubscriptionItem.current_period_start = property(  # type: ignore[attr-defined]
    lambda self: self._current_period()["start"]
)
ls.InvoiceLineItem.price = property(lambda self: _price_of_plan(self.plan))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Subscriptions, invoices, refunds: the events localstripe does not send


def _subscription_items(items: Any) -> Any:
    """Stripe's `price` is localstripe's `plan` (the twin plan has the price's id)."""
    if not isinstance(items, list):
        return items
    for item in items:
        if isinstance(item, dict) and "price" in item:
            item["plan"] = item.pop("price")
    return items


_original_subscription_update = ls.Subscription._api_update.__func__  # type: ignore[attr-defined]


def _subscription_update(cls: type, id: str, **data: Any) -> ls.Subscription:
    data.pop("proration_behavior", None)  # localstripe always prorates
    if "items" in data:
        data["items"] = _subscription_items(data["items"])
    sub = _original_subscription_update(cls, id, **data)
    _schedule("customer.subscription.updated", sub)
    return sub


ls.Subscription._api_update = classmethod(_subscription_update)  # type: ignore[method-assign,assignment]

_original_invoice_init = ls.Invoice.__init__


def _invoice_init(self: ls.Invoice, *args: Any, **kwargs: Any) -> None:
    _original_invoice_init(self, *args, **kwargs)
    if self.subscription is None:
        self.billing_reason = "manual"
    else:
        earlier = [
            i for i in _all(ls.Invoice) if i is not self and i.subscription == self.subscription
        ]
        self.billing_reason = "subscription_cycle" if earlier else "subscription_create"


ls.Invoice.__init__ = _invoice_init  # type: ignore[method-assign]

_original_invoice_paid = ls.Invoice._on_payment_success


def _invoice_paid(self: ls.Invoice) -> None:
    _original_invoice_paid(self)
    _schedule("invoice.paid", self)


ls.Invoice._on_payment_success = _invoice_paid  # type: ignore[method-assign]

_original_refund_init = ls.Refund.__init__


def _refund_init(self: ls.Refund, *args: Any, **kwargs: Any) -> None:
    _original_refund_init(self, *args, **kwargs)
    _schedule("charge.refunded", ls.Charge._api_retrieve(self.charge))


ls.Refund.__init__ = _refund_init  # type: ignore[method-assign]

_original_intent_success = ls.PaymentIntent._on_success
_original_intent_async_failure = ls.PaymentIntent._report_async_failure


def _intent_success(self: ls.PaymentIntent) -> None:
    _original_intent_success(self)
    session = _session_of_intent(self.id)
    if session is not None and session.payment_status != "paid":
        session.payment_status = "paid"
        if session.status == "complete":  # a bank debit that settled after Checkout
            _schedule("checkout.session.async_payment_succeeded", session)


def _intent_async_failure(self: ls.PaymentIntent) -> None:
    _original_intent_async_failure(self)
    session = _session_of_intent(self.id)
    if session is not None:
        _schedule("checkout.session.async_payment_failed", session)


ls.PaymentIntent._on_success = _intent_success  # type: ignore[method-assign]
ls.PaymentIntent._report_async_failure = _intent_async_failure  # type: ignore[method-assign]


def _session_of_intent(intent_id: str) -> CheckoutSession | None:
    session_id = _intent_sessions.get(intent_id)
    return ls.store.get("checkout.session:" + session_id) if session_id else None


# ---------------------------------------------------------------------------------------------
# Checkout Sessions and the test-only payment page


class CheckoutSession(ls.StripeObject):
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode: str | None = None,
        customer: str | None = None,
        line_items: list[dict[str, Any]] | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        client_reference_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        subscription_data: dict[str, Any] | None = None,
        payment_intent_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if mode not in ("payment", "subscription") or not success_url or not line_items:
            raise UserError(400, "Bad request")
        if len(line_items) != 1:
            raise UserError(500, "Not implemented: one line item")
        price = Price._api_retrieve(line_items[0]["price"])
        if (mode == "subscription") != (price.type == "recurring"):
            raise UserError(400, f"A {price.type} price cannot be used in {mode} mode.")
        if customer:
            ls.Customer._api_retrieve(customer)
        super().__init__()
        self.mode = mode
        self.customer = customer
        self.client_reference_id = client_reference_id
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.metadata = metadata or {}
        self.status = "open"
        self.payment_status = "unpaid"
        self.payment_intent = None
        self.subscription = None
        self.invoice = None
        self.amount_total = price.unit_amount * int(line_items[0].get("quantity") or 1)
        self.currency = price.currency
        self.url = f"{BASE_URL}/_test/checkout/{self.id}"
        self._price = price
        self._subscription_metadata = (subscription_data or {}).get("metadata") or {}
        self._intent_metadata = (payment_intent_data or {}).get("metadata") or {}

    @classmethod
    def _api_list_all(cls, url: str, limit: Any = None, starting_after: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        intent = kw.pop("payment_intent", None)
        if kw:
            raise UserError(400, "Unexpected " + ", ".join(kw))
        listed = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        if intent is not None:
            listed._list = [s for s in listed._list if s.payment_intent == intent]
        return listed


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:1.5rem auto;padding:0 1rem}}
button{{display:block;width:100%;margin:.5rem 0;padding:.8rem;font-size:1rem}}</style></head>
<body><p><small>Test payment page served by the localstripe extension in Cutout's tests.
Not Stripe.</small></p>{body}</body></html>"""
    return web.Response(text=text, content_type="text/html", status=status)


async def checkout_page(request: web.Request) -> web.Response:
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    if session.status != "open":
        return _page("Checkout closed", "<h1>This checkout is no longer open.</h1>", 410)
    price = session._price
    amount = f"{session.amount_total / 100:.2f} {session.currency.upper()}"
    every = " per month" if session.mode == "subscription" else ""
    product = html.escape(ls.Product._api_retrieve(price.product).name)
    error = request.query.get("error", "")
    return _page(
        "Pay · Test Checkout",
        f"""<h1>{product}</h1><p>{amount}{every}</p>
<p role="alert">{html.escape(error)}</p>
<form method="post">
<button name="outcome" value="card">Pay {amount} with card 4242</button>
<button name="outcome" value="declined_card">Pay with a card that is declined</button>
<button name="outcome" value="bank">Pay by bank debit (settles shortly)</button>
<button name="outcome" value="bank_fails">Pay by a bank debit that fails</button>
</form><p><a href="{html.escape(session.cancel_url or "")}">Back without paying</a></p>""",
    )


async def checkout_pay(request: web.Request) -> web.Response:
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    if session.status != "open":
        return _page("Checkout closed", "<h1>This checkout is no longer open.</h1>", 410)
    outcome = (await request.post()).get("outcome", "card")
    if outcome == "declined_card":
        # Real Checkout keeps the session open after a decline: the person may try another card.
        raise web.HTTPSeeOther(f"/_test/checkout/{session.id}?error=Your+card+was+declined.")
    if session.customer is None:
        session.customer = ls.Customer().id
    if outcome in ("bank", "bank_fails"):
        iban = GOOD_IBAN if outcome == "bank" else FAILING_IBAN
        method = ls.PaymentMethod(type="sepa_debit", sepa_debit={"iban": iban})
    else:
        method = _card(GOOD_CARD)
    ls.PaymentMethod._api_attach(method.id, customer=session.customer)
    customer = ls.Customer._api_retrieve(session.customer)
    customer.invoice_settings["default_payment_method"] = method.id
    if session.mode == "payment":
        intent = ls.PaymentIntent(
            amount=session.amount_total,
            currency=session.currency,
            customer=session.customer,
            payment_method=method.id,
            metadata=dict(session._intent_metadata),
        )
        session.payment_intent = intent.id
        _intent_sessions[intent.id] = session.id
        intent._confirm(on_failure_now=intent._report_failure)
        # localstripe reports a debit's charge as succeeded at once and settles it half a second
        # later; Checkout calls it unpaid until it settles (then async_payment_succeeded).
        settled = intent.status == "succeeded" and method.type == "card"
        session.payment_status = "paid" if settled else "unpaid"
    else:
        subscription = ls.Subscription(
            customer=session.customer,
            items=[{"plan": session._price.id}],
            metadata=dict(session._subscription_metadata),
        )
        session.subscription = subscription.id
        session.invoice = subscription.latest_invoice
        session.payment_status = "paid" if subscription.status == "active" else "unpaid"
    session.status = "complete"
    _schedule("checkout.session.completed", session)
    raise web.HTTPSeeOther(session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id))


def _card(number: str) -> ls.PaymentMethod:
    return ls.PaymentMethod(
        type="card", card={"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    )


async def expire_session(request: web.Request) -> web.Response:
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    if session.status == "open":
        session.status = "expired"
        _schedule("checkout.session.expired", session)
    return json_response(session._export())


# ---------------------------------------------------------------------------------------------
# Billing portal, invoice payments, renewals


class PortalSession(ls.StripeObject):
    object = "billing_portal.session"
    _id_prefix = "bps_"

    def __init__(self, customer: str | None = None, return_url: str | None = None, **kw: Any):
        if kw:
            raise UserError(400, "Unexpected " + ", ".join(kw))
        ls.Customer._api_retrieve(customer)
        super().__init__()
        self.customer = customer
        self.return_url = return_url
        self.url = f"{BASE_URL}/_test/portal/{self.id}"


async def portal_page(request: web.Request) -> web.Response:
    portal = PortalSession._api_retrieve(request.match_info["id"])
    invoices = [i for i in _all(ls.Invoice) if i.customer == portal.customer]
    rows = "".join(
        f"<li>{html.escape(i.id)}: {i.total / 100:.2f} {i.currency.upper()}, {i.status}</li>"
        for i in invoices
    )
    return _page(
        "Billing portal · Test",
        f"""<h1>Billing portal</h1><p>Customer {html.escape(portal.customer)}</p>
<h2>Invoices</h2><ul>{rows or "<li>none</li>"}</ul>
<p><a href="{html.escape(portal.return_url or "")}">Return to Cutout</a></p>""",
    )


async def list_invoice_payments(request: web.Request) -> web.Response:
    query = unflatten_data(request.query)
    intent = (query.get("payment") or {}).get("payment_intent")
    found = [i for i in _all(ls.Invoice) if intent and i.payment_intent == intent]
    data = [
        {
            "object": "invoice_payment",
            "id": "inpay_" + i.id,
            "invoice": i.id,
            "payment": {"type": "payment_intent", "payment_intent": i.payment_intent},
            "status": "paid" if i.status == "paid" else "open",
        }
        for i in found
    ]
    return json_response({"object": "list", "data": data, "has_more": False})


async def renew_subscription(request: web.Request) -> web.Response:
    """The next billing period starts now: a paid (or declined) invoice, or the end of a
    subscription cancelled at period end."""
    sub = ls.Subscription._api_retrieve(request.match_info["id"])
    decline = request.query.get("outcome") == "declined_card"
    if sub.status == "canceled":
        raise UserError(400, "This subscription has ended.")
    if sub.cancel_at_period_end:
        return json_response(ls.Subscription._api_delete(sub.id)._export())
    sub.start_date = sub.current_period_end
    if decline:
        method = _card(DECLINED_CARD)
        ls.PaymentMethod._api_attach(method.id, customer=sub.customer)
        ls.Customer._api_retrieve(sub.customer).invoice_settings["default_payment_method"] = (
            method.id
        )
    sub._create_invoice()
    invoice = ls.Invoice._api_retrieve(sub.latest_invoice)
    if invoice.status != "paid":
        # localstripe marks the subscription past_due silently; Stripe says so.
        _schedule("invoice.payment_failed", invoice)
    _schedule("customer.subscription.updated", sub)
    return json_response(sub._export())


async def _create(request: web.Request, cls: type) -> web.Response:
    data = await get_post_data(request) or {}
    data.pop("expand", None)
    return json_response(cls(**data)._export())


async def _retrieve(request: web.Request, cls: type) -> web.Response:
    return json_response(cls._api_retrieve(request.match_info["id"])._export())


async def _list(request: web.Request, cls: type) -> web.Response:
    query = unflatten_data(request.query)
    return json_response(cls._api_list_all(str(request.path), **query)._export())


async def _update(request: web.Request, cls: type) -> web.Response:
    data = await get_post_data(request) or {}
    return json_response(cls._api_update(request.match_info["id"], **data)._export())


def _bind(handler: Any, cls: type) -> Any:
    async def route(request: web.Request) -> web.Response:
        return await handler(request, cls)

    return route


@web.middleware
async def _public_test_pages(request: web.Request, handler: Any) -> web.StreamResponse:
    """The payment and portal pages are for the browser, which has no API key: skip
    localstripe's key check for them, as Stripe's hosted pages need none."""
    if not request.path.startswith("/_test/"):
        return await handler(request)
    try:
        return await request.match_info.handler(request)
    except UserError as refused:
        return refused.to_response()


_installed = False


def install() -> None:
    """Add the routes to localstripe's app, once per process (before it starts serving)."""
    global _installed
    if _installed:
        return
    # State in memory only: never the shared /tmp/localstripe.pickle.
    ls.store.dump_to_disk = lambda: None  # type: ignore[method-assign]
    ls.schedule_webhook = _track_delivery
    webhooks.schedule_webhook = _track_delivery
    localstripe_app.middlewares.insert(0, _public_test_pages)
    router = localstripe_app.router
    router.add_post("/v1/prices", _bind(_create, Price))
    router.add_get("/v1/prices", _bind(_list, Price))
    router.add_get("/v1/prices/{id}", _bind(_retrieve, Price))
    router.add_post("/v1/prices/{id}", _bind(_update, Price))
    router.add_post("/v1/checkout/sessions", _bind(_create, CheckoutSession))
    router.add_get("/v1/checkout/sessions", _bind(_list, CheckoutSession))
    router.add_get("/v1/checkout/sessions/{id}", _bind(_retrieve, CheckoutSession))
    router.add_post("/v1/checkout/sessions/{id}/expire", expire_session)
    router.add_post("/v1/billing_portal/sessions", _bind(_create, PortalSession))
    router.add_get("/v1/invoice_payments", list_invoice_payments)
    router.add_get("/_test/checkout/{id}", checkout_page)
    router.add_post("/_test/checkout/{id}", checkout_pay)
    router.add_get("/_test/portal/{id}", portal_page)
    router.add_post("/_test/subscriptions/{id}/renew", renew_subscription)
    _installed = True


async def _cancel_deliveries() -> None:
    for delivery in list(_deliveries):
        delivery.cancel()
    await asyncio.gather(*_deliveries, return_exceptions=True)


class FakeStripe:
    """The extended localstripe serving on 127.0.0.1 from a thread of the test process."""

    SECRET_KEY = "sk_test_cutout"

    def __init__(self, port: int) -> None:
        global BASE_URL
        install()
        self.url = f"http://127.0.0.1:{port}"
        BASE_URL = self.url
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(localstripe_app)
        self._thread = threading.Thread(target=self._serve, name="localstripe", daemon=True)
        self._started = threading.Event()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def start(self) -> FakeStripe:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("localstripe did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        """Forget every object, event, endpoint and delivery still on its way."""
        webhooks._webhooks.clear()
        asyncio.run_coroutine_threadsafe(_cancel_deliveries(), self._loop).result(10)
        httpx.delete(self.url + "/_config/data").raise_for_status()
        _intent_sessions.clear()

    def send_events_to(self, url: str, secret: str) -> None:
        httpx.post(
            self.url + "/_config/webhooks/cutout", data={"url": url, "secret": secret}
        ).raise_for_status()

    def stop_sending(self) -> None:
        """Deliver no more events: a test then hands them to Cutout itself, in its own order."""
        webhooks._webhooks.clear()

    def api(self, method: str, path: str, **params: Any) -> Any:
        response = httpx.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {self.SECRET_KEY}"},
            data=params or None,
        )
        response.raise_for_status()
        return response.json()

    def events(self) -> list[dict[str, Any]]:
        """Every event so far, oldest first."""
        listed = self.api("GET", "/v1/events?limit=1000")["data"]
        return sorted(listed, key=lambda e: (e["created"], e["id"]))

    def wait_for_deliveries(self, seconds: float = 3.0) -> None:
        """localstripe waits a second before delivering each event; give it time."""
        time.sleep(seconds)
