"""Opening an editor address directly (a bookmark, a reload): the HTML already shows the page,
"Opening the editor…" and the owner's photo (preloaded with it) before any script runs, and
the page hydrates at the real job's address into a working editor without a console error.
Someone else's job gets the same shell without the photo (its request would be a 404)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import new_email, sign_up
from tests.e2e.test_editor import open_editor_on_a_new_cutout, wait_for_preview

pytestmark = pytest.mark.e2e

# The background image of the placeholder the page shows while "Opening the editor…".
EARLY_PHOTO = """() => {
    const status = document.querySelector("main [role=status]");
    if (!status) return "";
    const image = getComputedStyle(status.parentElement, "::after").backgroundImage;
    return image === "none" ? "" : image;
}"""


def test_a_reloaded_editor_shows_the_owners_photo_before_its_scripts_run(
    live_app, playwright_browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    p, browser = playwright_browser
    owner = browser.new_context(**p.devices["Pixel 7"])
    page = owner.new_page()
    open_editor_on_a_new_cutout(page, live_app, tmp_path)
    editor_url = page.url
    job_id = editor_url.rstrip("/").rpartition("/")[2]
    photo = f"/files/{job_id}/before.jpg"

    answer = owner.request.get(editor_url)
    assert answer.status == 200
    html = answer.text()
    assert "Opening the editor…" in html and 'aria-label="Main"' in html
    assert answer.headers.get("link") == f"<{photo}>; rel=preload; as=image"

    # The HTML alone (no script runs) shows the page and the photo where the editor puts it.
    bare = browser.new_context(**p.devices["Pixel 7"], java_script_enabled=False)
    bare.add_cookies(owner.cookies())
    bare_page = bare.new_page()
    bare_page.goto(editor_url)
    expect(bare_page.get_by_text("Opening the editor…")).to_be_visible()
    assert photo in bare_page.evaluate(EARLY_PHOTO)
    bare.close()

    # A full load: hydrates at this job's address into a working editor, and the early photo
    # goes once the editor shows its own.
    errors: list[str] = []
    reloaded = owner.new_page()
    reloaded.on("pageerror", lambda error: errors.append(str(error)))
    reloaded.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    reloaded.goto(editor_url)
    expect(reloaded.get_by_role("heading", name="Edit astronaut.jpg")).to_be_visible(timeout=30_000)
    wait_for_preview(reloaded)
    expect(reloaded.locator("#editor-before")).to_have_attribute("src", photo)
    reloaded.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=reloaded.locator("#editor-before").element_handle(),
    )
    assert reloaded.evaluate(EARLY_PHOTO) == ""
    assert errors == []

    # Another account (and a signed-out visitor) gets the shell without the preload.
    stranger = browser.new_context(**p.devices["Pixel 7"])
    sign_up(stranger.new_page(), live_app.url, new_email())
    for viewer in (stranger, browser.new_context()):
        other = viewer.request.get(editor_url)
        assert other.status == 200 and "Opening the editor…" in other.text()
        assert "link" not in other.headers and "before.jpg" not in other.text()
        viewer.close()
    owner.close()
