"""The API page on a phone: keys and API credits for the signed-in account, and a curl example
that works when pasted into a shell."""

from __future__ import annotations

import re
import subprocess

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import REPO, VENV_BIN, app_env
from tests.e2e.conftest import ARTIFACTS, new_email, photo_file, sign_up

pytestmark = pytest.mark.e2e


def test_the_api_page_shows_keys_credits_and_a_working_curl(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    page.goto(live_app.url + "/api")
    expect(page.get_by_role("heading", name="Cutout API")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("main").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="preview")).to_contain_text("0.5")

    email = new_email()
    sign_up(page, live_app.url, email)
    page.goto(live_app.url + "/api")
    expect(page.get_by_text("You have no API key yet.")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"API credits: ?10"))).to_be_visible()  # the trial

    created = subprocess.run(
        [str(VENV_BIN / "cutout-admin"), "keys", "create", "--email", email, "--name", "laptop"],
        cwd=REPO,
        env=app_env(live_app.data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    page.reload()
    expect(page.get_by_role("row").filter(has_text="laptop")).to_contain_text(key[:10])
    assert key not in page.content()  # only the prefix is ever shown
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    page.screenshot(path=str(ARTIFACTS / "api-page.png"), full_page=True)

    example = page.get_by_label("curl example").inner_text()
    assert live_app.url + "/v1.0/removebg" in example
    photo_file(tmp_path, "photo.jpg")
    pasted = subprocess.run(
        ["bash", "-c", example.replace("YOUR_API_KEY", key) + " --fail-with-body -sS"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    with Image.open(tmp_path / "no-bg.png") as cutout:
        assert cutout.mode == "RGBA" and cutout.size == (512, 512)
    page.reload()
    expect(page.get_by_text(re.compile(r"API credits: ?9\.5"))).to_be_visible(timeout=30_000)


def test_the_reference_renders_without_a_cdn(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url) if not request.url.startswith(live_app.url) else None
        ),
    )
    page.goto(live_app.url + "/api/docs")
    expect(page.get_by_text("Cutout API (remove.bg-compatible)")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/v1.0/removebg").first).to_be_visible()
    assert outside == []
