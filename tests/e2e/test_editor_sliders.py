"""The editor's sliders on a phone: each one is found by its name, as a screen reader finds it,
and moving it from the keyboard or a finger changes the setting it names."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_editor import open_editor_on_a_new_cutout, wait_for_preview

pytestmark = pytest.mark.e2e


def test_every_editor_slider_is_named_and_moves_its_setting(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    open_editor_on_a_new_cutout(page, live_app, tmp_path)

    brush = page.get_by_role("slider", name="Brush size")
    expect(brush).to_be_visible()
    before = int(brush.get_attribute("aria-valuenow") or "0")
    brush.focus()
    page.keyboard.press("ArrowRight")
    expect(brush).to_have_attribute("aria-valuenow", str(before + 1))

    page.get_by_role("tab", name="Layout").click()
    src = page.locator("#editor-after").get_attribute("src")
    across = page.get_by_role("slider", name="Position across")
    across.focus()
    page.keyboard.press("Home")
    expect(across).to_have_attribute("aria-valuenow", "0")
    wait_for_preview(page, src)  # the layout change reached the server and redrew the preview
    margin = page.get_by_role("slider", name=re.compile(r"^Margin around the subject"))
    expect(margin).to_have_attribute("aria-valuemax", "400")
    # A tap at the right end of a track takes the thumb there, as a finger does.
    down = page.get_by_role("slider", name="Position down")
    track = down.locator("xpath=ancestor::span[contains(@class, 'rt-SliderRoot')]")
    box = track.bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    expect(down).to_have_attribute("aria-valuenow", "100")

    page.get_by_role("tab", name="Export").click()
    quality = page.get_by_role("slider", name=re.compile(r"^Quality \(JPEG, WebP\)"))
    quality.focus()
    page.keyboard.press("Home")
    expect(page.get_by_text("Quality (JPEG, WebP): 1", exact=True)).to_be_visible()
    expect(quality).to_have_attribute("aria-valuenow", "1")
    page.close()
