"""The account page on a phone: sign-in wall, wallets and lots, API keys, password, sign-out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import WebSocket, expect

from tests.e2e.conftest import ARTIFACTS, PASSWORD, new_email, sign_in, sign_up

pytestmark = pytest.mark.e2e


def test_signed_out_visitor_is_sent_to_sign_in_and_back(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    first = phone.new_page()
    sign_up(first, live_app.url, email)
    first.get_by_role("button", name="Sign out", exact=True).click()
    expect(first.get_by_role("link", name="Sign in").first).to_be_visible()

    first.goto(live_app.url + "/account")
    expect(first).to_have_url(re.compile(r"/signin\?next=(/|%2F)account"), timeout=30_000)
    # The address changes first; wait for the sign-in form itself before typing into it.
    expect(first.get_by_role("heading", name="Sign in")).to_be_visible()
    first.get_by_label("Email", exact=True).fill(email)
    first.get_by_label("Password").fill("wrong password!")
    first.get_by_role("button", name="Sign in").click()
    expect(first.get_by_role("alert")).to_contain_text("Wrong email or password")
    first.get_by_label("Email").fill(email)  # the form came back from the server, empty
    first.get_by_label("Password").fill(PASSWORD)
    first.get_by_role("button", name="Sign in").click()
    expect(first).to_have_url(re.compile(r"/account/?$"), timeout=30_000)
    expect(first.get_by_role("heading", name="Your account")).to_be_visible()
    first.close()


def test_account_shows_trial_lot_and_manages_api_keys(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    email = new_email()
    sign_up(page, live_app.url, email)
    page.goto(live_app.url + "/account")
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    lots = page.get_by_role("row").filter(has_text="trial")
    expect(lots.first).to_contain_text("10")
    expect(page.get_by_role("row").filter(has_text="Credits added").first).to_be_visible()

    page.get_by_label("Key name").fill("Shop plugin")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("Your new key")  # the full key, not the prefix
    expect(shown).to_have_value(re.compile(r"^co_[\w-]{20,}$"), timeout=30_000)
    raw_key = shown.input_value()
    key_row = page.get_by_role("listitem").filter(has_text="Shop plugin")
    expect(key_row).to_be_visible()
    assert raw_key not in key_row.inner_text(), "the full key is never listed"
    page.screenshot(path=str(ARTIFACTS / "account.png"), full_page=True)

    page.reload()
    expect(page.get_by_role("listitem").filter(has_text="Shop plugin")).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_label("Your new key")).to_be_hidden()
    assert raw_key not in page.content()
    page.get_by_role("listitem").filter(has_text="Shop plugin").get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.get_by_role("listitem").filter(has_text="Shop plugin")).to_have_count(
        0, timeout=30_000
    )
    page.close()


def test_password_change_signs_out_other_browsers(live_app, phone, playwright_browser) -> None:  # type: ignore[no-untyped-def]
    p, browser = playwright_browser
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    laptop = browser.new_context()
    other = laptop.new_page()
    sign_in(other, live_app.url, email)
    expect(other.get_by_role("link", name=re.compile("Account:"))).to_be_visible(timeout=30_000)

    page.goto(live_app.url + "/account")
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)  # the page is ready
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a brand new passphrase")
    page.get_by_label("Repeat new password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed")).to_be_visible(timeout=30_000)

    other.goto(live_app.url + "/account")
    expect(other).to_have_url(re.compile(r"/signin"), timeout=30_000)
    sign_in(other, live_app.url, email, "a brand new passphrase")
    expect(other.get_by_role("link", name=re.compile("Account:"))).to_be_visible(timeout=30_000)
    laptop.close()
    page.close()


def test_deleting_the_account_signs_out_and_forgets_the_person(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    page.goto(live_app.url + "/account")
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)  # the page is ready
    page.get_by_label("Confirm email").fill("someone-else@example.com")
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("alert")).to_contain_text("Type your email", timeout=30_000)

    page.get_by_label("Confirm email").fill(email)
    page.get_by_label("Password to delete").fill("not my password")
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("alert")).to_contain_text("password is wrong", timeout=30_000)

    page.get_by_label("Confirm email").fill(email)
    page.get_by_label("Password to delete").fill(PASSWORD)
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible(timeout=30_000)
    sign_in(page, live_app.url, email)
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.close()


def test_phone_that_loses_its_connection_stays_signed_in(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    # Watch this document's websockets only (those of pages navigated away from never report
    # their close).
    sockets: list[WebSocket] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    page.reload()
    account_link = page.get_by_role("link", name=re.compile(r"Account: .* credits"))
    expect(account_link).to_be_visible(timeout=30_000)
    assert [s for s in sockets if not s.is_closed()], "the signed-in page holds a websocket"

    phone.set_offline(True)  # as when a phone's tab sleeps
    # The connection really drops: every socket closes and Reflex tells the person so.
    notice = page.get_by_text("Cannot connect to server")
    expect(notice).to_be_visible(timeout=30_000)
    for _ in range(50):  # Reflex keeps retrying: a retry may be between its open and its close
        if all(s.is_closed() for s in sockets):
            break
        page.wait_for_timeout(200)
    assert all(s.is_closed() for s in sockets), [(s.url, s.is_closed()) for s in sockets]
    phone.set_offline(False)
    expect(notice).to_have_count(0, timeout=30_000)
    assert [s for s in sockets if not s.is_closed()], "a new websocket after reconnecting"

    account_link.click()
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    page.reload()  # a fresh page load: the session comes back from the browser's cookie
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    page.close()
