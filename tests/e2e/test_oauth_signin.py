"""Signing in through an OpenID Connect provider in the browser: oidc-provider-mock, locally."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import OIDC_NAME
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def sso(page: Page, base_url: str, sub: str) -> None:
    page.goto(base_url + "/signin?next=/account")
    page.get_by_role("link", name=f"Continue with {OIDC_NAME}").click()
    page.locator("input[name=sub]").fill(sub)
    page.locator("form [type=submit]").first.click()


def test_sso_creates_the_account_once_and_signs_back_into_it(  # type: ignore[no-untyped-def]
    live_app, oidc_provider, phone
) -> None:
    sub = f"user-{uuid.uuid4().hex[:8]}"
    email = f"{sub}@example.org"
    claims = {"email": email, "email_verified": True, "name": "Ola Nordmann"}
    assert httpx.put(f"{oidc_provider}/users/{sub}", json=claims).status_code in (200, 204)

    page = phone.new_page()
    sso(page, live_app.url, sub)
    expect(page).to_have_url(re.compile(r"/account/?$"), timeout=30_000)
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 10 credits"))).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "account-sso.png"), full_page=True)

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    sso(page, live_app.url, sub)
    expect(page.get_by_text(email)).to_be_visible(timeout=30_000)
    # The same account: still exactly one trial grant in its history.
    expect(page.get_by_role("row").filter(has_text="trial")).to_have_count(2)  # lot + grant
    expect(page.get_by_role("row").filter(has_text="Credits added")).to_have_count(1)
    page.close()


def test_tampered_state_is_refused_with_a_clear_page(live_app, oidc_provider, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    response = page.goto(live_app.url + "/auth/oidc/callback?code=forged&state=forged")
    assert response is not None and response.status == 400
    expect(page.get_by_text(re.compile("sign-in", re.I)).first).to_be_visible()
    page.goto(live_app.url)
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    page.close()
