"""The home page's "High quality" switch: shown only where the full u2net was provisioned.

Where `u2net.onnx` is in the models folder the person switches it on and gets a u2net cutout
(the job records the model); where it is absent the switch is not on the page.
"""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import MODELS_DIR
from tests.e2e.conftest import new_email, photo_file, sign_up, upload

pytestmark = pytest.mark.e2e


def test_high_quality_switch_follows_the_model_file(live_app, phone, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    sign_up(page, live_app.url, new_email())
    page.goto(live_app.url)
    expect(page.get_by_role("button", name="Choose or take a photo")).to_be_visible()
    switch = page.get_by_role("switch", name="High quality")
    if not (MODELS_DIR / "u2net.onnx").is_file():
        expect(switch).to_have_count(0)
        page.close()
        return

    expect(switch).to_be_visible()
    switch.click()
    expect(switch).to_be_checked()
    upload(page, photo_file(tmp_path))
    confirm = page.get_by_role("button", name=re.compile(r"Remove background · [\d.]+ credits"))
    expect(confirm).to_be_visible(timeout=60_000)
    confirm.click()
    download_link = page.get_by_role("link", name=re.compile("Download"))
    expect(download_link).to_be_visible(timeout=180_000)
    with page.expect_download() as download_info:
        download_link.click()
    saved = tmp_path / "high-quality.png"
    download_info.value.save_as(saved)
    alpha = np.asarray(Image.open(saved))[..., 3]
    assert ((alpha == 0) | (alpha == 255)).mean() >= 0.95

    href = download_link.get_attribute("href")
    assert href
    job_id = href.split("/")[2]
    with sqlite3.connect(live_app.data_dir / "cutout.db") as db:
        (model,) = db.execute("SELECT model FROM cutout_job WHERE id = ?", (job_id,)).fetchone()
    assert model == "u2net"
    page.close()
