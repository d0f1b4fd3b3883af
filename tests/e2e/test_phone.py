"""The phone experience at Pixel 7 and iPhone 13 sizes (and the narrowest phones, 320 px):
no page scrolls sideways, the result fits one screen, a visitor tries a photo before signing
up, errors land where the person looks, and a wrong address gets a 404 page to move on from."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    ARTIFACTS,
    confirm_email,
    new_email,
    photo_file,
    request_sign_up,
    sign_up,
    upload,
)

pytestmark = pytest.mark.e2e

DEVICES = ["Pixel 7", "iPhone 13"]
NARROW = {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True}
# Pages on every build; /editor, /bulk and /api join the list when they are on this build.
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
PUBLIC_PAGES = ["/", "/pricing", "/signin", "/signup", "/forgot", "/no-such-page"]


def device_context(playwright_browser, name: str):  # type: ignore[no-untyped-def]
    p, browser = playwright_browser
    if name == "320 px":
        return browser.new_context(**NARROW, accept_downloads=True)
    # The descriptor names the engine it was made for; Chromium plays every phone here.
    options = {k: v for k, v in p.devices[name].items() if k != "default_browser_type"}
    return browser.new_context(**options, accept_downloads=True)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "home"


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0: no sideways scrolling).

    A phone widens its layout to fit content that overflows, so innerWidth alone would hide
    the overflow: both are compared with the screen's own width."""
    screen = page.viewport_size["width"]
    wide = page.evaluate("Math.max(document.scrollingElement.scrollWidth, window.innerWidth)")
    return wide - screen


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    # Skeletons give way once the server said who is looking.
    expect(page.locator("[aria-busy=true]")).to_have_count(0, timeout=30_000)


def open_editor_on_a_new_cutout(page: Page, base_url: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A real cutout of the signed-in person, opened in the editor; returns the editor's path."""
    page.goto(base_url)
    upload(page, photo_file(tmp_path))
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    page.get_by_role("link", name="Open in editor").click(timeout=120_000)
    expect(page).to_have_url(re.compile(r"/editor/[^/]+$"), timeout=30_000)
    expect(page.get_by_role("heading", name=re.compile("^Edit "))).to_be_visible(timeout=30_000)
    # The photo itself, at its own size, is what could push the page wider than the screen.
    expect(page.locator("#editor-after")).to_have_attribute(
        "src", re.compile(r"preview\.webp"), timeout=60_000
    )
    return urlparse(page.url).path


@pytest.mark.parametrize("device", [*DEVICES, "320 px"])
def test_no_page_scrolls_sideways(live_app, playwright_browser, device: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    context = device_context(playwright_browser, device)
    page = context.new_page()
    wide = {}
    for path in PUBLIC_PAGES:
        page.goto(live_app.url + path)
        settle(page)
        page.screenshot(path=str(ARTIFACTS / f"phone-{slug(device)}-{slug(path)}.png"))
        wide[path] = sideways_overflow(page)

    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url + "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible(timeout=30_000)
    page.get_by_label("Key name").fill("A key with a rather long name for a phone")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_label("Your new key")).to_have_value(re.compile("^co_"), timeout=30_000)
    editor = open_editor_on_a_new_cutout(page, live_app.url, tmp_path)
    signed_in_pages = ["/account", "/pricing", "/", editor, "/bulk", "/api"]
    for path in signed_in_pages:
        page.goto(live_app.url + path)
        settle(page)
        shown = "editor" if path == editor else slug(path)  # one file per page, not per job
        page.screenshot(
            path=str(ARTIFACTS / f"phone-{slug(device)}-signed-in-{shown}.png"),
            full_page=True,
        )
        wide["signed in " + path] = sideways_overflow(page)
    # The editor (photo, tool rows, tabs) across the whole range of phone widths.
    page.goto(live_app.url + editor)
    expect(page.locator("#editor-after")).to_have_attribute(
        "src", re.compile(r"preview\.webp"), timeout=60_000
    )
    settle(page)
    height = page.viewport_size["height"]
    for width in (320, 360, 390, 412, 430):
        page.set_viewport_size({"width": width, "height": height})
        # Two animation frames: the resize has been laid out.
        page.evaluate(TWO_FRAMES)
        wide[f"editor at {width} px"] = sideways_overflow(page)
    context.close()
    assert {path: px for path, px in wide.items() if px > 0} == {}


def test_the_result_fits_one_iphone_screen_and_new_photo_starts_clean(
    live_app, playwright_browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    context = device_context(playwright_browser, "iPhone 13")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    big = tmp_path / "big.jpg"  # 9 MP: the full PNG is megabytes, the page must not load it
    Image.open(photo_file(tmp_path)).resize((3000, 3000)).save(big, quality=90)
    upload(page, big)
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    download = page.get_by_role("link", name=re.compile("Download"))
    expect(download).to_be_visible(timeout=120_000)
    cutout = page.get_by_role("img", name=re.compile("Cutout"))
    expect(cutout).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=cutout.element_handle()
    )
    page.screenshot(path=str(ARTIFACTS / "phone-iphone-13-result.png"))

    height = page.viewport_size["height"]
    assert page.evaluate("window.scrollY") == 0
    for element in (cutout, download):
        box = element.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, box
    # The page shows a light preview; the full PNG is only the download.
    src = cutout.get_attribute("src") or ""
    assert "preview" in src and "cutout.png" not in src
    shown = page.request.get(live_app.url + src)
    assert shown.headers["content-type"] == "image/webp"
    assert len(shown.body()) < 400_000
    full = page.request.get(live_app.url + (download.get_attribute("href") or ""))
    assert len(full.body()) > 3 * len(shown.body())

    # One image with a slider, not two stacked: dragging uncovers the cutout.
    slider = page.get_by_role("slider", name=re.compile("Compare"))
    original = page.get_by_role("img", name=re.compile("Original"))
    before = original.evaluate("el => getComputedStyle(el).clipPath")
    slider.fill("10")
    expect(original).not_to_have_css("clip-path", before)

    page.get_by_role("button", name="New photo").click()
    expect(page.get_by_role("button", name=re.compile("Choose or take a photo"))).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name=re.compile("Choose or take a photo"))).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)

    # From a shown result, the "Remove background" link (in the phone's menu) starts clean too.
    upload(page, photo_file(tmp_path))
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    expect(page.get_by_role("link", name=re.compile("Download"))).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Remove background").click()
    expect(page.get_by_role("button", name=re.compile("Choose or take a photo"))).to_be_visible()
    assert not [e for e in errors if "TypeError" in e], errors
    context.close()


def test_a_visitor_tries_a_sample_then_signs_up_and_gets_it_in_full(
    live_app, playwright_browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    context = device_context(playwright_browser, "Pixel 7")
    page = context.new_page()
    page.goto(live_app.url)
    page.get_by_role("button", name="Try the sample photo: Astronaut").click()
    preview = page.get_by_role("img", name=re.compile("Cutout"))
    expect(preview).to_be_visible(timeout=90_000)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    width, height = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width * height <= 250_000 and width >= 300
    expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "phone-trial-preview.png"))
    # A second free preview from the same address on the same day is refused, kindly.
    page.get_by_role("button", name="New photo").click()
    page.get_by_role("button", name="Try the sample photo: Cat").click()
    expect(page.get_by_role("alert")).to_contain_text("free preview", timeout=30_000)

    email = new_email()
    page.get_by_role("link", name="Sign up free").first.click()
    request_sign_up(page, live_app.url, email)
    confirm_email(page, email)
    page.goto(live_app.url)
    # The same photo, at full size, quoted like any upload: no second upload needed.
    confirm = page.get_by_role("button", name=re.compile(r"Remove background · 0\.5 credits"))
    expect(confirm).to_be_visible(timeout=30_000)
    expect(page.get_by_text("astronaut.jpg")).to_be_visible()
    expect(page.get_by_text("512 × 512 px")).to_be_visible()
    confirm.click()
    link = page.get_by_role("link", name=re.compile("Download"))
    expect(link).to_be_visible(timeout=120_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 9\.5 credits"))).to_be_visible()
    with page.expect_download() as got:
        link.click()
    saved = tmp_path / "full.png"
    got.value.save_as(saved)
    assert Image.open(saved).size == (512, 512)
    context.close()


def test_a_signed_in_person_never_sees_the_signed_out_page(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    # Record, from the very first parsed byte, whether a sign-up offer is ever on screen.
    page.add_init_script(
        """
        window.__sawSignUp = false;
        new MutationObserver(() => {
          if ([...document.querySelectorAll('a')].some(a => a.textContent === 'Sign up free'))
            window.__sawSignUp = true;
        }).observe(document, {childList: true, subtree: true});
        """
    )
    for path in ("/", "/pricing"):
        page.goto(live_app.url + path)
        expect(page.get_by_role("link", name=re.compile(r"Account: .* credits"))).to_be_visible(
            timeout=30_000
        )
        assert page.evaluate("window.__sawSignUp") is False, path


def test_a_form_error_is_scrolled_into_view_and_focused(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url + "/account")
    current = page.get_by_label("Current password")
    current.fill("not my password at all")
    page.get_by_label("New password", exact=True).fill("another long passphrase")
    page.get_by_label("Repeat new password").fill("another long passphrase")
    page.get_by_role("button", name="Change password").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=30_000)
    expect(alert).to_be_focused()
    expect(alert).to_be_in_viewport()
    page.close()


def test_a_wrong_address_shows_a_404_page_with_a_way_on(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    page.goto(live_app.url + "/no-such-page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.get_by_role("link", name="Remove a background").click()
    expect(page.get_by_role("heading", name=re.compile("Remove the background"))).to_be_visible()
    page.close()


def test_a_new_api_key_is_copied_to_the_clipboard_with_one_tap(live_app, phone) -> None:  # type: ignore[no-untyped-def]
    phone.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url)
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url + "/account")
    page.get_by_label("Key name").fill("Shop plugin")
    page.get_by_role("button", name="Create key").click()
    field = page.get_by_label("Your new key")
    expect(field).to_have_value(re.compile("^co_"), timeout=30_000)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == field.input_value()
    page.close()
