"""Buying credits on a phone: Cutout -> (test) Stripe Checkout -> webhook -> ledger -> back.

The Checkout page is the test-only payment page of the localstripe extension (tests/stripe_fake.py);
everything else is the production build, its webhook route and its database.
"""

from __future__ import annotations

import re
import subprocess
import time
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

from app.db import make_engine, writing
from app.models.accounts import Account
from app.models.ledger import CreditLot
from app.services.billing import ledger
from app.services.clock import SystemClock
from tests.conftest import REPO, STRIPE_WEBHOOK_SECRET, VENV_BIN, app_env, stripe_env
from tests.e2e.conftest import ARTIFACTS, new_email, photo_file, sign_up, upload
from tests.e2e.test_home import credits_badge

pytestmark = pytest.mark.e2e


@pytest.fixture
def stripe_ready(live_app, fake_stripe):  # type: ignore[no-untyped-def]
    """A fresh fake Stripe with Cutout's catalog (synced by the operator's command) and its
    events going to the running app's webhook."""
    fake_stripe.reset()
    synced = subprocess.run(
        [str(VENV_BIN / "cutout-admin"), "stripe", "sync"],
        cwd=REPO,
        env={**app_env(live_app.data_dir), **stripe_env(fake_stripe)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert synced.stdout.count("created") == 4, synced.stdout
    fake_stripe.send_events_to(live_app.url + "/stripe/webhook", STRIPE_WEBHOOK_SECRET)
    return fake_stripe


def pay_on_checkout(page: Page, fake_stripe) -> None:  # type: ignore[no-untyped-def]
    expect(page).to_have_url(re.compile(re.escape(fake_stripe.url) + "/_test/checkout/"))
    page.screenshot(path=str(ARTIFACTS / "billing-checkout.png"), full_page=True)
    page.get_by_role("button", name=re.compile(r"^Pay .* with card 4242")).click()


def test_a_phone_buys_a_top_up_on_pricing_and_comes_back_to_its_new_balance(  # type: ignore[no-untyped-def]
    live_app, phone, stripe_ready
) -> None:
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url + "/pricing")
    buy = page.get_by_role("button", name="Buy 250 credits")
    expect(buy).to_be_enabled(timeout=30_000)
    expect(page.get_by_text("Billing is not set up yet")).to_have_count(0)
    expect(page.locator("#api-packs")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the pricing page scrolls sideways by {overflow}px on a phone"

    buy.click()
    pay_on_checkout(page, stripe_ready)

    expect(page).to_have_url(re.compile(r"/pricing/?\?purchase=complete$"), timeout=30_000)
    expect(page.get_by_text("Payment received")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name="Account: 260 credits")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "billing-back-on-pricing.png"), full_page=True)

    # The webhook sees the same payment a moment later: the balance does not grow twice.
    time.sleep(3)
    page.goto(live_app.url + "/account")
    expect(page.get_by_role("link", name="Account: 260 credits")).to_be_visible(timeout=30_000)
    # One top-up lot (its row in the lots table and its grant in the history), not two.
    expect(page.get_by_role("cell", name="top up", exact=True)).to_have_count(2)
    expect(page.get_by_role("button", name="Payment methods and invoices")).to_be_visible()


def test_out_of_credits_on_home_buys_a_top_up_and_finishes_the_photo(  # type: ignore[no-untyped-def]
    live_app, phone, stripe_ready, tmp_path
) -> None:
    page = phone.new_page()
    email = new_email()
    sign_up(page, live_app.url, email)
    spend_the_trial(live_app, email)
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    expect(page.get_by_text("Not enough credits for this photo")).to_be_visible(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "billing-out-of-credits.png"), full_page=True)

    page.get_by_role("button", name="Buy 250 credits for $10").click()
    pay_on_checkout(page, stripe_ready)

    # Back on the photo, with the new balance, and it can be cut out now.
    confirm = page.get_by_role("button", name=re.compile(r"Remove background · [\d.]+ credits"))
    expect(confirm).to_be_visible(timeout=30_000)
    expect(page.get_by_text("You have 250 credits.")).to_be_visible()
    assert credits_badge(page) == Decimal(250)
    confirm.click()
    expect(page.get_by_role("link", name=re.compile("Download"))).to_be_visible(timeout=120_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 249\.5 credits"))).to_be_visible()


def spend_the_trial(live_app, email: str) -> None:  # type: ignore[no-untyped-def]
    """Set-up: the account has used up its trial (written straight to the app's database)."""
    engine = make_engine(f"sqlite:///{live_app.data_dir / 'cutout.db'}")
    try:
        with writing(engine) as session:
            account = session.exec(select(Account).where(Account.email == email)).one()
            for lot in session.exec(
                select(CreditLot).where(CreditLot.account_id == account.id)
            ).all():
                assert account.id is not None and lot.id is not None
                ledger.void_lot(
                    session=session,
                    clock=SystemClock(),
                    account_id=account.id,
                    lot_id=lot.id,
                    key=f"test-spent:{lot.id}",
                )
    finally:
        engine.dispose()


def test_a_phone_subscribes_then_manages_the_plan_on_the_account_page(  # type: ignore[no-untyped-def]
    live_app, phone, stripe_ready
) -> None:
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url + "/pricing")
    page.get_by_role("button", name="Subscribe to Basic").click()
    pay_on_checkout(page, stripe_ready)
    expect(page.get_by_text("Your plan")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name="Account: 1,010 credits")).to_be_visible()

    page.goto(live_app.url + "/account")
    expect(page.get_by_text(re.compile(r"Renews on \d{4}-\d\d-\d\d"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Switch to standard").click()
    expect(page.get_by_text("You are now on the Standard plan")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Cancel plan").click()
    expect(page.get_by_text(re.compile(r"the plan ends on \d{4}-\d\d-\d\d"))).to_be_visible(
        timeout=30_000
    )
    page.screenshot(path=str(ARTIFACTS / "billing-account-cancelled.png"), full_page=True)
    page.get_by_role("button", name="Keep my plan").click()
    expect(page.get_by_text(re.compile(r"Renews on"))).to_be_visible(timeout=30_000)

    # Stripe cannot charge the next month: the account page says so.
    subscription = stripe_ready.api("GET", "/v1/subscriptions")["data"][0]["id"]
    stripe_ready.api("POST", f"/_test/subscriptions/{subscription}/renew?outcome=declined_card")
    time.sleep(3)  # the events reach the webhook about a second later
    page.reload()
    expect(page.get_by_role("alert").filter(has_text="Payment failed")).to_be_visible(
        timeout=30_000
    )

    page.get_by_role("button", name="Payment methods and invoices").click()
    expect(page.get_by_role("heading", name="Billing portal")).to_be_visible(timeout=30_000)
    page.get_by_role("link", name="Return to Cutout").click()
    expect(page).to_have_url(re.compile(r"/account/?$"), timeout=30_000)
