"""Browser fixtures: Debian's Chromium through Playwright, a fresh phone per test."""

from __future__ import annotations

import re
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from skimage import data as photos

from tests.mailbox import shared_mailbox

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def playwright_browser():  # type: ignore[no-untyped-def]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield p, browser
        browser.close()


@pytest.fixture
def phone(playwright_browser):  # type: ignore[no-untyped-def]
    """A fresh phone browser (its own cookies) for each test."""
    p, browser = playwright_browser
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(**p.devices["Pixel 7"], accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def feature_flags(live_app):  # type: ignore[no-untyped-def]
    """Switch feature flags in the shared app's database the way `cutout-admin flags set` does
    (one row); whatever happens in the test, each flag is put back as it was afterwards."""
    database = live_app.data_dir / "cutout.db"
    before: dict[str, tuple | None] = {}

    def run(statement: str, *params: object) -> list[tuple]:
        with closing(sqlite3.connect(database, timeout=30)) as conn, conn:
            return conn.execute(statement, params).fetchall()

    def switch(name: str, enabled: bool) -> None:
        if name not in before:
            found = run("SELECT enabled, updated_at FROM feature_flag WHERE name = ?", name)
            before[name] = found[0] if found else None
        run(
            "INSERT INTO feature_flag (name, enabled, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, "
            "updated_at = excluded.updated_at",
            name,
            int(enabled),
            "2026-01-01 00:00:00.000000",
        )

    yield switch
    for name, row in before.items():
        if row is None:
            run("DELETE FROM feature_flag WHERE name = ?", name)
        else:
            run("UPDATE feature_flag SET enabled = ?, updated_at = ? WHERE name = ?", *row, name)


def new_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Sign up, then confirm the address from the mail the test SMTP server received, as a
    person would: the page ends signed in, with the trial credits."""
    request_sign_up(page, base_url, email, password)
    confirm_email(page, email)
    expect(page.get_by_role("link", name=re.compile(r"Account: .* credits"))).to_be_visible(
        timeout=30_000
    )


def request_sign_up(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Check your email")).to_be_visible(timeout=30_000)


def confirm_email(page: Page, email: str, count: int = 1) -> None:
    """Open the `count`-th mail's link to `email` and confirm."""
    page.goto(shared_mailbox().link(email, count))
    page.get_by_role("button", name="Confirm email").click()


def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def photo_file(tmp_path: Path, name: str = "astronaut.jpg") -> Path:
    path = tmp_path / name
    Image.fromarray(photos.astronaut()).save(path, quality=92)
    return path


def upload(page: Page, path: Path) -> None:
    page.locator("input[type=file]").set_input_files(str(path))
