"""What an attacker with a browser (or a copy of the server's files) finds: the session cookie,
the state files on disk, a closed tab's token, a shared phone, the page's own scripts."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    ARTIFACTS,
    PASSWORD,
    confirm_email,
    new_email,
    photo_file,
    request_sign_up,
    sign_in,
    sign_up,
    upload,
)

pytestmark = pytest.mark.e2e

QUOTE = re.compile(r"Remove background · [\d.]+ credits")


def state_files(live_app) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted((live_app.data_dir / "states").glob("*.pkl"))


def in_state_files(live_app, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    # Reflex writes state files a moment after an event (debounced): give it time.
    time.sleep(2)
    return [p.name for p in state_files(live_app) if text.encode() in p.read_bytes()]


def test_the_session_cookie_is_httponly_lax_and_lives_the_session_days(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    [cookie] = [c for c in phone.cookies() if c["name"] == "cutout_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # CUTOUT_PUBLIC_URL is http here; https makes it Secure
    lifetime = cookie["expires"] - time.time()
    assert 29.9 * 86400 < lifetime <= 30 * 86400  # CUTOUT_SESSION_DAYS, not 400 days
    assert cookie["value"] not in page.evaluate("document.cookie")  # page scripts never see it
    page.close()


def test_state_files_hold_no_token_no_key_and_nothing_after_deletion(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    token = next(c["value"] for c in phone.cookies() if c["name"] == "cutout_session")
    page.goto(live_app.url + "/account")
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    page.get_by_label("Key name").fill("State check")
    page.get_by_role("button", name="Create key").click()
    key_field = page.get_by_label("Your new key")
    expect(key_field).to_have_value(re.compile(r"^co_"), timeout=30_000)
    raw_key = key_field.input_value()

    assert state_files(live_app), "Reflex keeps state files in the data folder"
    assert in_state_files(live_app, token) == []
    assert in_state_files(live_app, raw_key) == []
    assert in_state_files(live_app, email) != []  # the page's own data is there for now

    page.get_by_label("Confirm email").fill(email)
    page.get_by_label("Password to delete").fill(PASSWORD)
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible(timeout=30_000)
    assert in_state_files(live_app, email) == []
    page.close()


def test_a_closed_tabs_reflex_token_alone_opens_nothing(  # type: ignore[no-untyped-def]
    live_app, phone, playwright_browser
) -> None:
    p, browser = playwright_browser
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    page.goto(live_app.url + "/account")
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    client_token = page.evaluate("sessionStorage.getItem('token')")
    assert client_token
    page.close()  # the tab is closed; its state stays on the server for a while

    stranger = browser.new_context(**p.devices["Pixel 7"])  # no cookies at all
    stranger.add_init_script(f"sessionStorage.setItem('token', {client_token!r})")
    tab = stranger.new_page()
    tab.goto(live_app.url)
    expect(tab.get_by_role("link", name="Sign up free").first).to_be_visible(timeout=30_000)
    assert tab.evaluate("sessionStorage.getItem('token')") == client_token  # really reused
    tab.goto(live_app.url + "/account")
    expect(tab).to_have_url(re.compile(r"/signin"), timeout=30_000)
    assert email not in tab.content()
    stranger.close()


def test_the_next_person_on_a_shared_phone_sees_nothing_of_the_first(  # type: ignore[no-untyped-def]
    live_app, phone, playwright_browser, tmp_path
) -> None:
    p, browser = playwright_browser
    second = new_email()
    other = browser.new_context()
    sign_up(other.new_page(), live_app.url, second)
    other.close()

    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path, "first-persons-holiday.jpg"))
    expect(page.get_by_role("button", name=QUOTE)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("first-persons-holiday.jpg").first).to_be_visible()

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible(timeout=30_000)
    assert "first-persons-holiday" not in page.content()
    sign_in(page, live_app.url, second)
    expect(page.get_by_role("link", name="Account: 10 credits")).to_be_visible(timeout=30_000)
    page.goto(live_app.url)
    expect(page.get_by_role("button", name="Choose or take a photo")).to_be_visible()
    page.wait_for_timeout(2_000)
    assert "first-persons-holiday" not in page.content()
    expect(page.get_by_role("button", name=QUOTE)).to_have_count(0)
    page.close()


def test_the_pages_run_under_the_content_security_policy(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    email = new_email()
    request_sign_up(page, live_app.url, email)
    confirm_email(page, email)
    expect(page.get_by_role("link", name=re.compile(r"Account: .* credits"))).to_be_visible(
        timeout=30_000
    )
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    expect(page.get_by_role("button", name=QUOTE)).to_be_visible(timeout=60_000)
    for path in ("/account", "/pricing", "/forgot"):
        page.goto(live_app.url + path)
        page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "forgot.png"), full_page=True)
    blocked = [m for m in messages if "Content Security Policy" in m]
    assert blocked == []
    page.close()


def test_files_cutout_writes_are_readable_by_its_user_only(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    expect(page.get_by_role("button", name=QUOTE)).to_be_visible(timeout=60_000)
    time.sleep(2)
    data = live_app.data_dir
    written = [data, data / "cutout.db", *(data / "results").rglob("*"), *state_files(live_app)]
    assert any(p.parent.parent == data / "results" for p in written)  # an upload is there
    loose = [
        f"{p.relative_to(data.parent)} {stat.filemode(p.stat().st_mode)}"
        for p in written
        if p.stat().st_mode & 0o077
    ]
    assert loose == []
    page.close()


def test_forgot_password_mails_a_link_that_signs_in_with_the_new_password(  # type: ignore[no-untyped-def]
    live_app, phone, playwright_browser
) -> None:
    from tests.mailbox import shared_mailbox

    p, browser = playwright_browser
    email = new_email()
    page = phone.new_page()
    sign_up(page, live_app.url, email)
    laptop = browser.new_context()
    elsewhere = laptop.new_page()
    sign_in(elsewhere, live_app.url, email)
    expect(elsewhere.get_by_role("link", name=re.compile("Account:"))).to_be_visible(timeout=30_000)

    reset = browser.new_context(**p.devices["Pixel 7"])
    tab = reset.new_page()
    tab.goto(live_app.url + "/signin")
    tab.get_by_role("link", name="Forgot your password?").click()
    # The link navigates inside the page: until the forgot form is drawn, "Email" is still the
    # sign-in form's field, and the forgot form would go out empty (the browser then refuses it).
    expect(tab.get_by_role("heading", name="Forgot your password?")).to_be_visible(timeout=30_000)
    tab.get_by_label("Email").fill(email)
    tab.get_by_role("button", name="Send the link").click()
    expect(tab.get_by_text("a link to choose a new password is on its way")).to_be_visible(
        timeout=30_000
    )
    tab.goto(shared_mailbox().link(email, 2))
    tab.get_by_label("New password", exact=True).fill("a fresh passphrase")
    tab.get_by_label("Repeat new password").fill("a fresh passphrase")
    tab.get_by_role("button", name="Set the new password").click()
    expect(tab.get_by_text("Your new password is set")).to_be_visible(timeout=30_000)
    expect(tab.get_by_text(email)).to_be_visible()

    # Every other browser was signed out.
    elsewhere.goto(live_app.url + "/account")
    expect(elsewhere).to_have_url(re.compile(r"/signin"), timeout=30_000)
    sign_in(elsewhere, live_app.url, email, "a fresh passphrase")
    expect(elsewhere.get_by_role("link", name=re.compile("Account:"))).to_be_visible(timeout=30_000)
    laptop.close()
    reset.close()
    page.close()


def test_an_unconfirmed_sign_up_is_told_to_confirm_and_can_ask_again(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    page = phone.new_page()
    request_sign_up(page, live_app.url, email)
    sign_in(page, live_app.url, email)
    expect(page.get_by_role("alert")).to_contain_text("Confirm your email address first")
    page.get_by_label("Address to send it to").fill(email)
    page.get_by_role("button", name="Send the link again").click()
    expect(page.get_by_text("a new link is on its way")).to_be_visible(timeout=30_000)
    confirm_email(page, email, count=2)
    expect(page.get_by_role("link", name="Account: 10 credits")).to_be_visible(timeout=30_000)
    page.close()
