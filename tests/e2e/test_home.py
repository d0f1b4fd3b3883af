"""A person on a phone: sign up, upload a photo, pay the quoted cost, download the cutout."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, new_email, photo_file, sign_in, sign_up, upload

pytestmark = pytest.mark.e2e


def credits_badge(page) -> Decimal:  # type: ignore[no-untyped-def]
    label = page.get_by_role("link", name=re.compile(r"Account: .* credits")).get_attribute(
        "aria-label"
    )
    assert label
    return Decimal(re.search(r"Account: ([\d.,]+) credits", label).group(1).replace(",", ""))


def test_phone_signs_up_pays_and_downloads_the_cutout(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    page.goto(live_app.url)
    expect(page.get_by_role("heading", name=re.compile("background", re.I))).to_be_visible()
    expect(page.get_by_role("link", name="Sign up free").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "home-signed-out.png"), full_page=True)

    email = new_email()
    sign_up(page, live_app.url, email)
    assert credits_badge(page) == Decimal(10)
    page.goto(live_app.url)
    expect(page.get_by_role("button", name="Choose or take a photo")).to_be_visible()

    upload(page, photo_file(tmp_path))
    confirm = page.get_by_role("button", name=re.compile(r"Remove background · [\d.]+ credits"))
    expect(confirm).to_be_visible(timeout=60_000)
    shown_cost = Decimal(re.search(r"([\d.]+) credits", confirm.inner_text()).group(1))
    assert shown_cost == Decimal("0.5")  # 512x512 is under 1 MP: the base price
    assert credits_badge(page) == Decimal(10), "nothing charged before confirming"
    page.screenshot(path=str(ARTIFACTS / "home-quote.png"), full_page=True)
    confirm.click()

    download_link = page.get_by_role("link", name=re.compile("Download"))
    expect(download_link).to_be_visible(timeout=120_000)
    expect(page.get_by_role("img", name=re.compile("Cutout"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"Account: 9\.5 credits"))).to_be_visible()
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

    # Another browser, signed out or signed in as someone else, cannot fetch the file.
    href = download_link.get_attribute("href")
    assert href
    stranger = phone.browser.new_context()
    assert stranger.request.get(live_app.url + href).status == 404
    other = stranger.new_page()
    sign_up(other, live_app.url, new_email())
    assert other.request.get(live_app.url + href).status == 404
    stranger.close()

    # Sign out, sign in again: the balance is what it was.
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    sign_in(page, live_app.url, email)
    expect(page.get_by_role("link", name=re.compile(r"Account: 9\.5 credits"))).to_be_visible(
        timeout=30_000
    )
    page.close()


def test_non_image_shows_an_error_and_the_page_keeps_working(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
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
    expect(page.get_by_role("button", name=re.compile("Remove background ·"))).to_be_visible(
        timeout=60_000
    )
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile(r"Account: 10 credits"))).to_be_visible()
    page.close()


def test_iphone_heic_photo_taken_sideways_comes_out_upright(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pillow_heif
    from skimage import data as photos

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    heic = tmp_path / "IMG_0042.HEIC"
    Image.fromarray(photos.astronaut()[:, :400]).save(heic, format="HEIF", exif=exif.tobytes())

    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    upload(page, heic)
    confirm = page.get_by_role("button", name=re.compile("Remove background ·"))
    expect(confirm).to_be_visible(timeout=60_000)
    expect(page.get_by_text("512 × 400 px")).to_be_visible()  # rotated a quarter turn
    # The before image is a JPEG preview the browser can show, not the HEIC itself.
    before = page.get_by_role("img", name=re.compile("Original"))
    expect(before).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", before.element_handle()) > 0
    confirm.click()
    download_link = page.get_by_role("link", name=re.compile("Download"))
    expect(download_link).to_be_visible(timeout=120_000)
    with page.expect_download() as download_info:
        download_link.click()
    assert download_info.value.suggested_filename == "IMG_0042.png"
    saved = tmp_path / "out.png"
    download_info.value.save_as(saved)
    assert Image.open(saved).size == (512, 400)
    page.close()
