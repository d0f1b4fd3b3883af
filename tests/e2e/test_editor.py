"""A person on a phone edits a cutout: colour background, an erase stroke, AI Cut with a keep
stroke, export as JPEG; the downloaded file's pixels show every edit, and only AI Cut is paid."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from skimage import data as photos

from tests.e2e.conftest import ARTIFACTS, new_email, photo_file, sign_up, upload

pytestmark = pytest.mark.e2e

BLUE = (30, 144, 255)  # the "#1e90ff" swatch


def drag(page: Page, points: list[tuple[float, float]]) -> None:
    """A stroke across the edited photo, points as fractions of its size."""
    page.evaluate("window.scrollTo(0, 0)")  # the whole photo on the screen
    box = page.locator("#editor-after").bounding_box()
    assert box
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()


def wait_for_preview(page: Page, version_before: str | None = None) -> str:
    after = page.locator("#editor-after")
    expect(after).to_have_attribute("src", re.compile(r"preview\.webp"), timeout=60_000)
    if version_before is not None:
        expect(after).not_to_have_attribute("src", version_before, timeout=30_000)
    expect(page.get_by_text("Updating preview…")).to_have_count(0, timeout=30_000)
    src = after.get_attribute("src") or ""
    assert "preview.webp" in src
    return src


def test_phone_edits_a_cutout_and_downloads_the_jpeg(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    page.get_by_role("link", name="Open in editor").click(timeout=120_000)
    expect(page).to_have_url(re.compile(r"/editor/"), timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 9\.5 credits"))).to_be_visible(
        timeout=30_000
    )
    src = wait_for_preview(page)
    page.screenshot(path=str(ARTIFACTS / "editor-open.png"), full_page=True)

    # A colour background.
    page.get_by_role("tab", name="Background").click()
    page.get_by_role("button", name="Colour #1e90ff").click()
    src = wait_for_preview(page, src)

    # An erase stroke across the suit (subject in the model's mask).
    page.get_by_role("tab", name="Fix").click()
    page.get_by_role("button", name="Erase", exact=True).click()
    src = wait_for_preview(page, src)  # the preview takes the photo's own geometry
    drag(page, [(0.40, 0.80), (0.60, 0.80)])
    src = wait_for_preview(page, src)
    expect(page.get_by_role("button", name="Undo")).to_be_enabled()

    # AI Cut with a keep stroke on the backdrop at the top left, then apply.
    page.get_by_role("button", name="Keep", exact=True).click()
    drag(page, [(0.04, 0.06), (0.16, 0.06)])
    apply = page.get_by_role("button", name="Apply AI Cut")
    expect(apply).to_be_enabled(timeout=10_000)
    apply.click()
    expect(page.get_by_text("AI Cut applied")).to_be_visible(timeout=30_000)
    src = wait_for_preview(page, src)
    page.screenshot(path=str(ARTIFACTS / "editor-edited.png"), full_page=True)

    # Export as JPEG: the cost (AI Cut, 0.5) is shown before confirming, nothing taken yet.
    page.get_by_role("tab", name="Export").click()
    page.locator("#export-format").click()
    page.get_by_role("option", name="JPEG").click()
    confirm = page.get_by_role("button", name="Export JPEG · 0.5 credits")
    expect(confirm).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 9\.5 credits"))).to_be_visible()
    with page.expect_download(timeout=120_000) as download_info:
        confirm.click()
    download = download_info.value
    assert download.suggested_filename == "astronaut-edited.jpg"
    saved = tmp_path / "edited.jpg"
    download.save_as(saved)
    expect(page.get_by_role("link", name=re.compile(r"Account: 9 credits"))).to_be_visible(
        timeout=30_000
    )
    page.screenshot(path=str(ARTIFACTS / "editor-exported.png"), full_page=True)

    result = Image.open(saved)
    assert result.format == "JPEG" and result.size == (512, 512)
    pixels = np.asarray(result.convert("RGB")).astype(int)

    def near(region: np.ndarray, colour: tuple[int, int, int]) -> float:
        return float((np.abs(region - colour).max(axis=-1) < 40).mean())

    assert near(pixels[40:80, 400:460], BLUE) > 0.9, "the backdrop became the colour"
    assert near(pixels[405:415, 225:285], BLUE) > 0.9, "the erased suit shows the colour"
    assert near(pixels[28:34, 30:75], BLUE) < 0.1, "the kept backdrop shows the photo"
    assert near(pixels[80:150, 200:270], BLUE) < 0.02, "the face is still the subject"

    # The photo opened again (a new tab, a state of its own) keeps the export's format.
    reopened = page.context.new_page()
    reopened.goto(page.url)
    wait_for_preview(reopened)
    reopened.get_by_role("tab", name="Export").click()
    expect(reopened.get_by_role("button", name="Export JPEG · free")).to_be_visible(timeout=30_000)
    reopened.close()

    # Re-exporting (another format) costs nothing.
    page.locator("#export-format").click()
    page.get_by_role("option", name=re.compile("PNG")).click()
    again = page.get_by_role("button", name="Export PNG · free")
    expect(again).to_be_visible(timeout=30_000)
    with page.expect_download(timeout=120_000) as second:
        again.click()
    assert second.value.suggested_filename == "astronaut-edited.png"
    expect(page.get_by_role("link", name=re.compile(r"Account: 9 credits"))).to_be_visible()
    page.close()


def open_editor_on_a_new_cutout(page: Page, live_app, tmp_path) -> str:  # type: ignore[no-untyped-def]
    email = new_email()
    sign_up(page, live_app.url, email)
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    page.get_by_role("link", name="Open in editor").click(timeout=120_000)
    wait_for_preview(page)
    return email


def pinch(page: Page, spread: float) -> None:
    """Two fingers moving apart on the stage (pointer events, as a touch screen sends them)."""
    box = page.locator("#editor-surface").bounding_box()
    assert box
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.evaluate(
        """([cx, cy, spread]) => {
            const el = document.getElementById("editor-surface");
            const send = (type, id, x) => el.dispatchEvent(new PointerEvent(type, {
                pointerId: id, pointerType: "touch", clientX: x, clientY: cy,
                bubbles: true, isPrimary: id === 1 }));
            send("pointerdown", 1, cx - 20); send("pointerdown", 2, cx + 20);
            for (let step = 1; step <= 5; step++) {
                send("pointermove", 1, cx - 20 - spread * step / 5);
                send("pointermove", 2, cx + 20 + spread * step / 5);
            }
            send("pointerup", 1, cx - 20 - spread); send("pointerup", 2, cx + 20 + spread);
        }""",
        [cx, cy, spread],
    )


def test_divider_zoom_bad_background_and_no_credits(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.test_billing import spend_the_trial

    page = phone.new_page()
    email = open_editor_on_a_new_cutout(page, live_app, tmp_path)

    # The divider follows a drag (compare mode), and pinching zooms; "Zoom to fit" resets.
    drag(page, [(0.5, 0.5), (0.2, 0.5)])
    divider = page.get_by_label("Before and after divider")
    assert abs(int(divider.input_value()) - 20) <= 2
    pinch(page, 80)
    transform = page.locator("#editor-surface").evaluate("el => el.style.transform")
    assert "scale(" in transform and "scale(1)" not in transform
    page.get_by_role("button", name="Zoom to fit").click()
    transform = page.locator("#editor-surface").evaluate("el => el.style.transform")
    assert "scale(1)" in transform

    # An erase stroke is kept with the photo: a reloaded tab (a phone that slept) finds it.
    page.get_by_role("button", name="Erase", exact=True).click()
    src = wait_for_preview(page, page.locator("#editor-after").get_attribute("src"))
    drag(page, [(0.40, 0.80), (0.60, 0.80)])
    src = wait_for_preview(page, src)
    page.get_by_role("tab", name="Background").click()
    page.get_by_role("button", name="Colour #1e90ff").click()
    wait_for_preview(page, src)
    page.reload()
    wait_for_preview(page)
    expect(page.get_by_role("button", name="Undo")).to_be_enabled(timeout=30_000)
    # So is the look it was drawn with: the same photo opened in a new tab (a state of its own,
    # nothing carried over in the browser) shows the colour background chosen before.
    again = phone.new_page()
    again.goto(page.url)
    wait_for_preview(again)
    again.get_by_role("tab", name="Background").click()
    expect(again.get_by_role("button", name="Colour #1e90ff")).to_have_attribute(
        "aria-pressed", "true", timeout=30_000
    )
    expect(again.get_by_role("button", name="Colour", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    again.screenshot(path=str(ARTIFACTS / "editor-look-kept.png"), full_page=True)
    again.close()

    # A background that is not an image: a clear message, the editor keeps working.
    page.get_by_role("tab", name="Background").click()
    fake = tmp_path / "beach.jpg"
    fake.write_text("not a photo at all\n" * 40)
    page.locator("input[type=file]").set_input_files(str(fake))
    expect(page.get_by_role("alert")).to_contain_text("beach.jpg", timeout=30_000)
    expect(page.get_by_role("alert")).to_contain_text("not an image")
    page.get_by_role("button", name="Colour #000000").click()
    expect(page.get_by_role("alert")).to_have_count(0, timeout=30_000)
    # A real photo as the background: it is drawn behind the subject.
    src = wait_for_preview(page)
    backdrop = tmp_path / "cat.png"
    Image.fromarray(photos.chelsea()).save(backdrop)
    page.locator("input[type=file]").set_input_files(str(backdrop))
    src = wait_for_preview(page, src)
    expect(page.get_by_role("alert")).to_have_count(0)

    # Another person cannot fetch this photo's preview.
    preview = page.locator("#editor-after").get_attribute("src")
    assert preview and page.request.get(live_app.url + preview).status == 200
    stranger = phone.browser.new_context()
    assert stranger.request.get(live_app.url + preview).status == 404
    stranger.close()

    # Out of credits: hair refinement's cost is shown with a working way to buy more.
    spend_the_trial(live_app, email)
    page.get_by_role("tab", name="Fix").click()
    page.get_by_label("Hair refinement (charged once, at export)").click()
    page.get_by_role("tab", name="Export").click()
    expect(page.get_by_text("Not enough credits for this export")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name=re.compile(r"Export .*credits"))).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "editor-no-credits.png"), full_page=True)
    page.get_by_role("link", name="See plans and top-ups").click()
    expect(page).to_have_url(re.compile(r"/pricing"), timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(r"Account: 0 credits"))).to_be_visible(
        timeout=30_000
    )
    page.close()
