"""Opening an editor address directly (a bookmark, a reload): the HTML already shows the page
and "Opening the editor…" before any script runs, the owner's photo is preloaded with it, and
the page hydrates at the real job's address into a working editor without a console error.
Someone else's job gets the same shell and no preload (it would be answered 404)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import new_email, photo_file, sign_up, upload
from tests.e2e.test_editor import wait_for_preview

pytestmark = pytest.mark.e2e


def test_a_reloaded_editor_paints_before_its_scripts_and_preloads_the_owners_photo(
    live_app, playwright_browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    p, browser = playwright_browser
    owner = browser.new_context(**p.devices["Pixel 7"])
    page = owner.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    upload(page, photo_file(tmp_path))
    page.get_by_role("button", name=re.compile(r"Remove background ·")).click(timeout=60_000)
    page.get_by_role("link", name="Open in editor").click(timeout=120_000)
    wait_for_preview(page)
    editor_url = page.url
    job_id = editor_url.rstrip("/").rpartition("/")[2]
    photo = f"/files/{job_id}/before.jpg"

    answer = owner.request.get(editor_url)
    assert answer.status == 200
    html = answer.text()
    assert "Opening the editor…" in html and 'aria-label="Main"' in html
    assert answer.headers.get("link") == f"<{photo}>; rel=preload; as=image"

    # A full load: hydrates at this job's address, the photo is fetched once (the preload is
    # the image's request), and the editor draws its preview.
    errors: list[str] = []
    photo_requests: list[str] = []
    reloaded = owner.new_page()
    reloaded.on("pageerror", lambda error: errors.append(str(error)))
    reloaded.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    reloaded.on(
        "request", lambda r: photo_requests.append(r.url) if r.url.endswith(photo) else None
    )
    reloaded.goto(editor_url)
    expect(reloaded.get_by_role("heading", name="Edit astronaut.jpg")).to_be_visible(timeout=30_000)
    wait_for_preview(reloaded)
    expect(reloaded.locator("#editor-before")).to_have_attribute("src", photo)
    reloaded.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=reloaded.locator("#editor-before").element_handle(),
    )
    assert errors == []
    assert len(photo_requests) == 1, photo_requests

    # Another account (and a signed-out visitor) gets the shell without the preload.
    stranger = browser.new_context(**p.devices["Pixel 7"])
    sign_up(stranger.new_page(), live_app.url, new_email())
    for viewer in (stranger, browser.new_context()):
        other = viewer.request.get(editor_url)
        assert other.status == 200 and "Opening the editor…" in other.text()
        assert "link" not in other.headers
        viewer.close()
    owner.close()
