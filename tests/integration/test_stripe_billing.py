"""Money becomes credits, over real HTTP: Cutout's Stripe routes (uvicorn) and localstripe with
Cutout's extensions (tests/stripe_fake.py), which serves Checkout's payment page and delivers
events signed with the webhook secret. Nothing in Cutout's billing code is patched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading, writing
from app.models.accounts import Plan
from app.models.billing import PaymentStatus, Product, StripeEvent, StripePayment
from app.models.ledger import FeatureFlag, LotScope, LotSource, Wallet
from app.services.billing import entitlements, ledger
from app.services.billing.pricing import MILLI, Feature
from app.services.billing.stripe_billing import BillingError, BillingNotConfigured, make_client
from app.services.clock import FrozenClock, as_utc
from app.settings import Settings
from app.usecases import billing
from tests.conftest import STRIPE_WEBHOOK_SECRET, free_port, new_account, stripe_env
from tests.integration.stripe_shop import (
    Shop,
    eventually,
    open_shop,
    path_of,
    serve,
    shop_routes,
)
from tests.stripe_fake import FakeStripe

CREDITS = MILLI
ADMIN = Path(sys.executable).parent / "cutout-admin"
TRIAL = 10 * CREDITS


@pytest.fixture
def shop(
    db: Engine, settings: Settings, clock: FrozenClock, fake_stripe: FakeStripe
) -> Iterator[Shop]:
    with open_shop(db, settings, clock, fake_stripe) as opened:
        yield opened


@pytest.fixture
def pg_shop(
    pg_db: Engine, settings: Settings, clock: FrozenClock, fake_stripe: FakeStripe
) -> Iterator[Shop]:
    """The same shop on PostgreSQL, where concurrent deliveries are not serialised by SQLite's
    single writer: the billing code's own account lock must keep them apart."""
    with open_shop(pg_db, settings, clock, fake_stripe) as opened:
        yield opened


def events_applied(shop: Shop) -> dict[str, str]:
    with reading(shop.db) as session:
        return {e.id: e.outcome for e in session.exec(select(StripeEvent)).all()}


def payment(shop: Shop, ref: str) -> tuple[PaymentStatus, int | None]:
    with reading(shop.db) as session:
        row = session.get(StripePayment, ref)
        assert row is not None
        return row.status, row.lot_id


def delivered(shop: Shop, event_type: str, count: int = 1) -> None:
    """Wait until Cutout has applied `count` events of this type from the fake Stripe."""

    def seen() -> bool:
        ids = {e["id"] for e in shop.fake.events() if e["type"] == event_type}
        return len(ids & events_applied(shop).keys()) >= count

    eventually(seen, what=f"{count} {event_type} event(s) applied")


def test_a_top_up_and_an_api_pack_each_grow_their_own_wallet_once(shop: Shop) -> None:
    buyer = shop.new_account()

    landed = shop.buy(buyer, Product.top_up)

    assert path_of(landed) == "/?purchase=complete", "back where the purchase started"
    assert shop.available(buyer) == {Wallet.web: TRIAL + 250 * CREDITS, Wallet.api: TRIAL}
    top_up = shop.lots(buyer)[-1]
    assert (top_up.source, top_up.scope, top_up.amount) == (
        LotSource.top_up,
        LotScope.web,
        250 * CREDITS,
    )
    assert (top_up.paid_amount, top_up.paid_currency) == (1000, "usd")
    assert top_up.payment_ref is not None and top_up.payment_ref.startswith("cs_")
    assert as_utc(top_up.expires_at) - as_utc(top_up.issued_at) == timedelta(days=90)

    shop.buy(buyer, Product.api_pack)
    delivered(shop, "checkout.session.completed", 2)

    # The return page and the webhook both saw each payment: still one lot each.
    assert shop.available(buyer) == {
        Wallet.web: TRIAL + 250 * CREDITS,
        Wallet.api: TRIAL + 1000 * CREDITS,
    }
    sources = [lot.source for lot in shop.lots(buyer)]
    assert sources == [LotSource.trial, LotSource.top_up, LotSource.api_pack]
    with reading(shop.db) as session:
        assert ledger.check_ledger(session=session) == []


def test_basic_plan_renews_switches_to_standard_and_cancels(shop: Shop) -> None:
    buyer = shop.new_account()
    with writing(shop.db) as session:
        # No Standard-only tool has a price yet, so the operator's command refuses to switch
        # one on; the row is written directly to see the plan, not the flag, decide.
        session.add(FeatureFlag(name="object_removal", enabled=True, updated_at=shop.clock.now()))

    def may_remove_objects() -> bool:
        with reading(shop.db) as session:
            account = shop.account(buyer)
            return entitlements.entitlement(
                session=session, account=account, feature=Feature.object_removal
            ).allowed

    shop.buy(buyer, Product.basic)
    delivered(shop, "invoice.paid")
    assert shop.account(buyer).plan == Plan.basic
    first = [lot for lot in shop.lots(buyer) if lot.source == LotSource.subscription]
    assert [(lot.amount, lot.scope) for lot in first] == [(1000 * CREDITS, LotScope.web)]
    assert as_utc(first[0].expires_at) - as_utc(first[0].issued_at) == timedelta(days=90)
    assert not may_remove_objects(), "object removal is a Standard tool"

    # A month later Stripe bills again: a second lot, the first one untouched.
    shop.clock.advance(timedelta(days=31))
    subscription = billing.overview(db=shop.db, settings=shop.settings, account_id=buyer)
    sub_id = subscription.status.subscription_id
    assert sub_id is not None and subscription.status.renews_on is not None
    shop.fake.api("POST", f"/_test/subscriptions/{sub_id}/renew")
    delivered(shop, "invoice.paid", 2)
    monthly = [lot for lot in shop.lots(buyer) if lot.source == LotSource.subscription]
    assert [lot.amount for lot in monthly] == [1000 * CREDITS, 1000 * CREDITS]
    assert monthly[1].issued_at > monthly[0].issued_at
    assert shop.available(buyer)[Wallet.web] == TRIAL + 2000 * CREDITS

    status = billing.switch_plan(
        db=shop.db,
        clock=shop.clock,
        settings=shop.settings,
        client=shop.client,
        account_id=buyer,
        plan=Plan.standard,
    )
    assert status.plan == Plan.standard
    assert shop.account(buyer).plan == Plan.standard
    assert may_remove_objects(), "switching to Standard switches its tools on at once"
    delivered(shop, "customer.subscription.updated", 2)
    assert shop.account(buyer).plan == Plan.standard, "the webhook agrees with the switch"

    status = billing.cancel_plan(
        db=shop.db, clock=shop.clock, settings=shop.settings, client=shop.client, account_id=buyer
    )
    assert status.ends_on is not None and status.plan == Plan.standard, "it runs to period end"

    # The period ends: Stripe ends the subscription instead of billing again.
    shop.fake.api("POST", f"/_test/subscriptions/{sub_id}/renew")
    delivered(shop, "customer.subscription.deleted")
    assert shop.account(buyer).plan == Plan.free
    assert not may_remove_objects()
    monthly = [lot for lot in shop.lots(buyer) if lot.source == LotSource.subscription]
    assert len(monthly) == 2, "no new lot after cancelling"
    assert shop.available(buyer)[Wallet.web] == TRIAL + 2000 * CREDITS, "old lots intact"
    with reading(shop.db) as session:
        assert ledger.check_ledger(session=session) == []


@pytest.mark.postgres
def test_on_postgresql_payments_seen_by_racing_deliveries_grant_once(pg_shop: Shop) -> None:
    test_a_top_up_and_an_api_pack_each_grow_their_own_wallet_once(pg_shop)
    test_every_event_replayed_five_times_changes_nothing(pg_shop, buyer_email="second@example.com")


def test_every_event_replayed_five_times_changes_nothing(
    shop: Shop, buyer_email: str = "buyer@example.com"
) -> None:
    buyer = shop.new_account(buyer_email)
    shop.buy(buyer, Product.top_up)
    shop.buy(buyer, Product.basic)
    delivered(shop, "invoice.paid")
    delivered(shop, "checkout.session.completed", 2)
    shop.fake.wait_for_deliveries()

    def state() -> Any:
        lots = [(lot.id, lot.amount, lot.remaining, lot.voided_at) for lot in shop.lots(buyer)]
        return lots, shop.entry_count(), shop.account(buyer).plan, shop.available(buyer)

    before = state()
    events = shop.fake.events()
    assert {"checkout.session.completed", "invoice.paid", "customer.subscription.created"} <= {
        e["type"] for e in events
    }
    for event in events:
        for _ in range(5):
            response = shop.post_event(event)
            assert response.status_code == 200, response.text
    replies = [shop.post_event(event).json() for event in events]
    assert all(reply["duplicate"] for reply in replies)
    assert state() == before
    assert {e["id"] for e in events} <= events_applied(shop).keys()


def test_bad_or_expired_signatures_are_refused_and_change_nothing(shop: Shop) -> None:
    buyer = shop.new_account()
    cs_id = shop.checkout(buyer, Product.top_up).rsplit("/", 1)[-1]
    # What an attacker would like Cutout to believe: that this checkout was paid.
    forged = {
        "id": "evt_forged",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": cs_id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid",
                "amount_total": 1000,
                "currency": "usd",
            }
        },
    }
    body = json.dumps(forged)
    good_header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_WEBHOOK_SECRET)
    refusals = {
        "wrong secret": shop.post_event(forged, secret="whsec_not_the_one"),
        "older than 300 s": shop.post_event(forged, timestamp=int(time.time()) - 301),
        "no signature": httpx.post(shop.url + "/stripe/webhook", content=body.encode()),
        "altered body": httpx.post(
            shop.url + "/stripe/webhook",
            content=body.replace('"amount_total": 1000', '"amount_total": 1').encode(),
            headers={"Stripe-Signature": good_header},
        ),
    }
    for why, refused in refusals.items():
        assert refused.status_code == 400, f"{why}: {refused.text}"
        assert "signature" in refused.json()["error"].lower(), why
    assert "evt_forged" not in events_applied(shop)
    assert payment(shop, cs_id) == (PaymentStatus.open, None)
    assert shop.available(buyer) == {Wallet.web: TRIAL, Wallet.api: TRIAL}


def test_a_refund_voids_only_the_unspent_rest_of_that_purchase(shop: Shop) -> None:
    buyer = shop.new_account()
    shop.buy(buyer, Product.top_up)
    shop.buy(buyer, Product.top_up)
    refunded, kept = shop.lots(buyer)[1:]
    # Spend the trial and 100 credits of the first top-up, and hold 20 more for running work.
    with writing(shop.db) as session:
        for key, amount in (("spent", 110 * CREDITS), ("running", 20 * CREDITS)):
            ledger.reserve_credits(
                session=session,
                clock=shop.clock,
                account_id=buyer,
                wallet=Wallet.web,
                amount=amount,
                key=key,
            )
        ledger.capture_reservation(
            session=session, clock=shop.clock, account_id=buyer, key="spent", amount=110 * CREDITS
        )
    assert refunded.payment_ref is not None
    intent = shop.client.v1.checkout.sessions.retrieve(refunded.payment_ref).payment_intent
    assert intent

    shop.client.v1.refunds.create({"payment_intent": str(intent)})
    delivered(shop, "charge.refunded")

    after = {lot.id: lot for lot in shop.lots(buyer)}
    assert after[refunded.id].voided_at is not None
    assert (after[refunded.id].remaining, after[refunded.id].reserved) == (
        20 * CREDITS,
        20 * CREDITS,
    )
    assert after[kept.id].remaining == 250 * CREDITS, "the other top-up is not touched"
    assert shop.available(buyer)[Wallet.web] == 250 * CREDITS
    assert payment(shop, refunded.payment_ref)[0] == PaymentStatus.refunded
    # The running work still gets the credits it held.
    with writing(shop.db) as session:
        ledger.capture_reservation(
            session=session, clock=shop.clock, account_id=buyer, key="running", amount=20 * CREDITS
        )
    with reading(shop.db) as session:
        assert ledger.check_ledger(session=session) == []


def test_events_out_of_order_end_in_the_state_stripe_is_in(shop: Shop) -> None:
    shop.fake.stop_sending()
    buyer = shop.new_account()
    assert shop.pay(shop.checkout(buyer, Product.basic)).status_code == 303
    by_type = {e["type"]: e for e in shop.fake.events()}

    # invoice.paid first: the subscription it belongs to is fetched from Stripe.
    assert shop.post_event(by_type["invoice.paid"]).status_code == 200
    assert shop.account(buyer).plan == Plan.basic
    # The creation event's snapshot says "incomplete"; Stripe says "active" now.
    assert shop.post_event(by_type["customer.subscription.created"]).status_code == 200
    assert shop.post_event(by_type["checkout.session.completed"]).status_code == 200
    assert shop.account(buyer).plan == Plan.basic
    monthly = [lot for lot in shop.lots(buyer) if lot.source == LotSource.subscription]
    assert len(monthly) == 1, "one payment seen through two events grants once"

    sub_id = by_type["customer.subscription.created"]["data"]["object"]["id"]
    shop.client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True})
    shop.fake.api("POST", f"/_test/subscriptions/{sub_id}/renew")
    later = {e["type"]: e for e in shop.fake.events()}
    # The end arrives before the older update that scheduled it.
    assert shop.post_event(later["customer.subscription.deleted"]).status_code == 200
    assert shop.post_event(later["customer.subscription.updated"]).status_code == 200
    assert shop.account(buyer).plan == Plan.free


def test_a_bank_debit_grants_when_it_settles_and_never_when_it_fails(shop: Shop) -> None:
    buyer = shop.new_account()

    landed = shop.buy(buyer, Product.top_up, outcome="bank")
    assert path_of(landed) in ("/?purchase=pending", "/?purchase=complete")
    delivered(shop, "checkout.session.async_payment_succeeded")
    assert shop.available(buyer)[Wallet.web] == TRIAL + 250 * CREDITS

    landed = shop.buy(buyer, Product.api_pack, outcome="bank_fails")
    assert path_of(landed) in ("/?purchase=pending", "/?purchase=failed")
    delivered(shop, "checkout.session.async_payment_failed")
    assert shop.available(buyer)[Wallet.api] == TRIAL, "no credits for a debit that failed"
    assert [lot.source for lot in shop.lots(buyer)] == [LotSource.trial, LotSource.top_up]


def test_a_declined_renewal_gives_no_credits_and_the_account_says_payment_failed(
    shop: Shop,
) -> None:
    buyer = shop.new_account()
    shop.buy(buyer, Product.basic)
    delivered(shop, "invoice.paid")
    sub_id = billing.overview(db=shop.db, settings=shop.settings, account_id=buyer).status
    assert sub_id.subscription_id is not None

    shop.fake.api(
        "POST", f"/_test/subscriptions/{sub_id.subscription_id}/renew?outcome=declined_card"
    )
    delivered(shop, "invoice.payment_failed")

    status = billing.overview(db=shop.db, settings=shop.settings, account_id=buyer).status
    assert status.payment_failed
    assert status.plan == Plan.basic, "Stripe retries the card; the plan stays meanwhile"
    monthly = [lot for lot in shop.lots(buyer) if lot.source == LotSource.subscription]
    assert len(monthly) == 1


def test_the_customer_portal_opens_for_a_customer_and_leads_back_to_the_account(
    shop: Shop,
) -> None:
    buyer = shop.new_account()
    with pytest.raises(BillingError, match="buy a plan or credits first"):
        billing.customer_portal(
            db=shop.db, settings=shop.settings, client=shop.client, account_id=buyer
        )
    shop.buy(buyer, Product.top_up)

    url = billing.customer_portal(
        db=shop.db, settings=shop.settings, client=shop.client, account_id=buyer
    )

    page = httpx.get(url)
    assert page.status_code == 200 and "Billing portal" in page.text
    assert f'href="{shop.url}/account"' in page.text


def test_one_plan_at_a_time_and_deleting_the_account_stops_the_subscription(shop: Shop) -> None:
    buyer = shop.new_account()
    shop.buy(buyer, Product.standard)
    with pytest.raises(BillingError, match="already on the Standard plan"):
        shop.checkout(buyer, Product.basic)
    sub_id = billing.overview(db=shop.db, settings=shop.settings, account_id=buyer).status
    assert sub_id.subscription_id is not None

    billing.end_subscriptions_now(
        db=shop.db, clock=shop.clock, settings=shop.settings, client=shop.client, account_id=buyer
    )

    at_stripe = shop.client.v1.subscriptions.retrieve(sub_id.subscription_id)
    assert at_stripe.status == "canceled"
    assert shop.account(buyer).plan == Plan.free


def test_without_stripe_the_webhook_says_so_and_nothing_can_be_bought(
    db: Engine, settings: Settings, clock: FrozenClock
) -> None:
    """The embedded default: no Stripe keys."""
    with writing(db) as session:
        buyer = new_account(session, clock, "buyer@example.com").id
    with serve(shop_routes(db, settings, clock, None), free_port()) as url:
        hook = httpx.post(url + "/stripe/webhook", content=b"{}")
        back = httpx.get(url + "/stripe/checkout/return?session_id=cs_x", follow_redirects=False)
    assert hook.status_code == 503 and "not configured" in hook.json()["error"]
    assert (back.status_code, back.headers["location"]) == (303, "/pricing")
    assert not billing.billing_enabled(settings=settings)
    with pytest.raises(BillingNotConfigured, match="cutout-admin"):
        billing.start_checkout(
            db=db,
            clock=clock,
            settings=settings,
            client=None,  # type: ignore[arg-type]
            account_id=buyer or 0,
            product=Product.top_up,
            return_path="/",
        )


def test_stripe_sync_is_idempotent_and_moves_a_changed_price(
    settings: Settings, fake_stripe: FakeStripe
) -> None:
    fake_stripe.reset()
    env = {
        **os.environ,
        **stripe_env(fake_stripe),
        "CUTOUT_DATA_DIR": str(settings.data_dir),
    }

    def sync(**extra: str) -> dict[str, list[str]]:
        done = subprocess.run(
            [str(ADMIN), "stripe", "sync"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return {line.split("\t")[0]: line.split("\t")[1:] for line in done.stdout.splitlines()}

    first = sync()
    assert {product: row[1] for product, row in first.items()} == {
        "basic": "created",
        "standard": "created",
        "top_up": "created",
        "api_pack": "created",
    }
    again = sync()
    assert {product: row[1] for product, row in again.items()} == dict.fromkeys(first, "unchanged")
    assert {p: row[0] for p, row in again.items()} == {p: row[0] for p, row in first.items()}

    dearer = sync(CUTOUT_TOPUP_PRICE_CENTS="1200")
    assert dearer["top_up"][1] == "created" and dearer["basic"][1] == "unchanged"
    client = make_client(FakeStripe.SECRET_KEY, fake_stripe.url)
    old, new = (
        client.v1.prices.retrieve(first["top_up"][0]),
        client.v1.prices.retrieve(dearer["top_up"][0]),
    )
    assert (old.active, old.lookup_key) == (False, None)
    assert (new.unit_amount, new.lookup_key) == (1200, "cutout_web_top_up")

    unconfigured = subprocess.run(
        [str(ADMIN), "stripe", "sync"],
        env={**env, "CUTOUT_STRIPE_SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unconfigured.returncode == 1
    assert "Billing is not configured" in unconfigured.stderr
