"""A person on a phone: upload a photo, download the cutout; bad files get a clear message."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from skimage import data as photos

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

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def playwright_browser():  # type: ignore[no-untyped-def]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield p, browser
        browser.close()


@pytest.fixture
def phone(playwright_browser):  # type: ignore[no-untyped-def]
    """A fresh phone browser (its own cookies) for each test."""
    p, browser = playwright_browser
    context = browser.new_context(**p.devices["Pixel 7"], accept_downloads=True)
    yield context
    context.close()


def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(photos.astronaut()).save(path, quality=92)
    return path


def upload(page: Page, path: Path) -> None:
    page.locator("input[type=file]").set_input_files(str(path))


def test_phone_uploads_a_photo_and_downloads_the_cutout(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page = phone.new_page()
    page.goto(live_app.url)
    expect(page.get_by_role("heading", name=re.compile("background", re.I))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("photo", re.I))).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "home-empty.png"), full_page=True)

    upload(page, photo_file(tmp_path))
    download_link = page.get_by_role("link", name=re.compile("Download"))
    expect(download_link).to_be_visible(timeout=120_000)
    expect(page.get_by_role("img", name=re.compile("Cutout"))).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "home-result.png"), full_page=True)

    with page.expect_download() as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename == "astronaut.png"
    saved = tmp_path / "downloaded.png"
    download.save_as(saved)
    result = Image.open(saved)
    assert result.format == "PNG" and result.mode == "RGBA" and result.size == (512, 512)
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()

    # The tab is reloaded (as a phone does after sleeping): the result is still there.
    page.reload()
    expect(page.get_by_role("link", name=re.compile("Download"))).to_be_visible(timeout=30_000)

    # Another browser (no owner cookie) cannot fetch the same file.
    href = download_link.get_attribute("href")
    assert href
    stranger = phone.browser.new_context()
    assert stranger.request.get(live_app.url + href).status == 404
    stranger.close()
    page.close()


def test_non_image_shows_an_error_and_the_page_keeps_working(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page = phone.new_page()
    page.goto(live_app.url)
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a shopping list, not a photo\n" * 50)
    upload(page, fake)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not an image", timeout=60_000)
    expect(alert).to_contain_text("holiday.jpg")
    page.screenshot(path=str(ARTIFACTS / "home-error.png"), full_page=True)

    big = tmp_path / "huge.jpg"  # over 22 MB: the drop zone refuses it before uploading
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="JPEG")
    big.write_bytes(buffer.getvalue() + b"\0" * (23 * 1024 * 1024))
    upload(page, big)
    expect(alert).to_contain_text("22 MB", timeout=30_000)

    upload(page, photo_file(tmp_path))
    expect(page.get_by_role("link", name=re.compile("Download"))).to_be_visible(timeout=120_000)
    expect(page.get_by_role("alert")).to_have_count(0)
    page.close()
