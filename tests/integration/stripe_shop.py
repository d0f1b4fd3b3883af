"""A shop for the billing tests: Cutout's Stripe routes served by uvicorn on 127.0.0.1, wired to
the fake Stripe (tests/stripe_fake.py), with a real SQLite database and a frozen clock.

A "browser" here is httpx following the same redirects a browser would: Cutout -> Checkout page
-> the return route -> back where the purchase started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import stripe
import uvicorn
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select
from starlette.applications import Starlette

from app.api.stripe import stripe_routes
from app.db import reading, writing
from app.models.accounts import Account
from app.models.billing import Product
from app.models.ledger import CreditLot, LedgerEntry, Wallet
from app.services.billing import ledger
from app.services.billing.stripe_billing import make_client
from app.services.clock import FrozenClock
from app.settings import Settings
from app.usecases import billing
from tests.conftest import STRIPE_WEBHOOK_SECRET, free_port, new_account
from tests.stripe_fake import FakeStripe


@dataclass
class Shop:
    url: str
    db: Engine
    clock: FrozenClock
    settings: Settings
    client: stripe.StripeClient
    fake: FakeStripe

    def new_account(self, email: str = "buyer@example.com") -> int:
        with writing(self.db) as session:
            account = new_account(session, self.clock, email)
            assert account.id is not None
            return account.id

    def checkout(self, account_id: int, product: Product, return_path: str = "/") -> str:
        return billing.start_checkout(
            db=self.db,
            clock=self.clock,
            settings=self.settings,
            client=self.client,
            account_id=account_id,
            product=product,
            return_path=return_path,
        )

    def pay(self, checkout_url: str, outcome: str = "card") -> httpx.Response:
        """Press a button on the test Checkout page: Stripe's answer (a 303 back to Cutout)."""
        return httpx.post(checkout_url, data={"outcome": outcome}, follow_redirects=False)

    def buy(self, account_id: int, product: Product, outcome: str = "card") -> str:
        """Checkout, pay, come back through the return route: where the browser lands."""
        paid = self.pay(self.checkout(account_id, product), outcome)
        assert paid.status_code == 303, paid.text
        back = httpx.get(paid.headers["location"], follow_redirects=False)
        assert back.status_code == 303, back.text
        return back.headers["location"]

    def available(self, account_id: int) -> dict[Wallet, int]:
        with reading(self.db) as session:
            wallets = ledger.balance(session=session, clock=self.clock, account_id=account_id)
        return {wallet: b.available for wallet, b in wallets.items()}

    def lots(self, account_id: int) -> list[CreditLot]:
        with reading(self.db) as session:
            lots = list(
                session.exec(
                    select(CreditLot)
                    .where(CreditLot.account_id == account_id)
                    .order_by(col(CreditLot.id))
                ).all()
            )
            session.expunge_all()  # keep what was read after the unit of work ends
            return lots

    def account(self, account_id: int) -> Account:
        with reading(self.db) as session:
            account = session.get(Account, account_id)
            assert account is not None
            session.expunge_all()
            return account

    def entry_count(self) -> int:
        with reading(self.db) as session:
            return len(session.exec(select(LedgerEntry.id)).all())

    def post_event(
        self,
        event: dict[str, Any],
        *,
        secret: str = STRIPE_WEBHOOK_SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """Deliver an event the way Stripe does: the raw body and its signature header."""
        import json

        body = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
        return httpx.post(
            self.url + "/stripe/webhook",
            content=body.encode(),
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll until `check()` is truthy: webhooks arrive about a second after the fact."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


def path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


@contextmanager
def serve(app: Any, port: int) -> Iterator[str]:
    """An ASGI app on 127.0.0.1:`port` (uvicorn, in a thread) for the length of the block."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="shop", daemon=True)
    thread.start()
    eventually(lambda: server.started, 30, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def shop_routes(db: Engine, settings: Settings, clock: FrozenClock, client: Any) -> Starlette:
    return Starlette(
        routes=stripe_routes(
            db=lambda: db, clock=lambda: clock, settings=lambda: settings, client=lambda: client
        )
    )


@contextmanager
def open_shop(
    db: Engine, settings: Settings, clock: FrozenClock, fake_stripe: FakeStripe
) -> Iterator[Shop]:
    """Serve the routes, sync the catalog into the fake, and point its events at the shop."""
    fake_stripe.reset()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(FakeStripe.SECRET_KEY),
            "stripe_webhook_secret": SecretStr(STRIPE_WEBHOOK_SECRET),
            "stripe_api_base": fake_stripe.url,
            "public_url": url,
        }
    )
    client = make_client(FakeStripe.SECRET_KEY, fake_stripe.url)
    with serve(shop_routes(db, settings, clock, client), port):
        billing.sync_stripe(settings=settings)
        fake_stripe.send_events_to(url + "/stripe/webhook", STRIPE_WEBHOOK_SECRET)
        yield Shop(url, db, clock, settings, client, fake_stripe)
