"""Pricing at 390 px: plans, cost table, FAQ; a Standard-only tool appears when its flag is on."""

from __future__ import annotations

import subprocess

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO, VENV_BIN, app_env
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def test_pricing_fits_a_phone_and_follows_feature_flags(live_app, playwright_browser) -> None:  # type: ignore[no-untyped-def]
    p, browser = playwright_browser
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(live_app.url + "/pricing")
    expect(page.get_by_role("heading", name="Pricing")).to_be_visible(timeout=30_000)
    for plan in ("Basic", "Standard"):
        expect(page.get_by_role("heading", name=plan, exact=True)).to_be_visible()
    expect(page.get_by_text("$30").first).to_be_visible()
    expect(page.get_by_text("Object removal").first).to_be_visible()
    expect(page.get_by_text("Coming soon").first).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px"
    page.screenshot(path=str(ARTIFACTS / "pricing-390.png"), full_page=True)
    coming_soon = page.get_by_text("Coming soon").count()

    subprocess.run(
        [str(VENV_BIN / "cutout-admin"), "flags", "set", "object_removal", "on"],
        cwd=REPO,
        env=app_env(live_app.data_dir),
        check=True,
    )
    page.reload()
    expect(page.get_by_text("Available").first).to_be_visible(timeout=30_000)
    assert page.get_by_text("Coming soon").count() == coming_soon - 1
    subprocess.run(
        [str(VENV_BIN / "cutout-admin"), "flags", "set", "object_removal", "off"],
        cwd=REPO,
        env=app_env(live_app.data_dir),
        check=True,
    )
    context.close()
