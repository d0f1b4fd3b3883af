"""A person on a phone runs a bulk batch: credits for 3 of 5 photos, a stop that charges
nothing more, a ZIP of what was done, a top-up and "resume", and a reload in the middle."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from skimage import data as photos

from app.db import make_engine
from app.models.ledger import LotScope, Wallet
from app.services.clock import SystemClock
from app.settings import Settings
from app.usecases import operator
from tests.e2e.conftest import ARTIFACTS, new_email, sign_up

pytestmark = pytest.mark.e2e

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "camera")  # each under 1 MP: 0.5 credits


def photo_files(tmp_path: Path) -> list[str]:
    paths = []
    for name in NAMES:
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(getattr(photos, name)()).convert("RGB").save(path, quality=90)
        paths.append(str(path))
    return paths


def leave_credits(live_app, email: str, milli: int) -> None:  # type: ignore[no-untyped-def]
    """Void the trial and grant exactly `milli` web credits, as an operator would."""
    db = make_engine(f"sqlite:///{live_app.data_dir / 'cutout.db'}")
    clock = SystemClock()
    try:
        for lot in operator.balance(db=db, clock=clock, email=email).wallets[Wallet.web].lots:
            operator.void_lot(db=db, clock=clock, lot_id=lot.id, reason="e2e: set the balance")
        grant(live_app, email, milli)
    finally:
        db.dispose()


def grant(live_app, email: str, milli: int) -> None:  # type: ignore[no-untyped-def]
    db = make_engine(f"sqlite:///{live_app.data_dir / 'cutout.db'}")
    try:
        operator.grant_credits(
            db=db,
            clock=SystemClock(),
            settings=Settings(data_dir=live_app.data_dir),
            email=email,
            amount=milli,
            scope=LotScope.web,
            valid_days=None,
            key=None,
        )
    finally:
        db.dispose()


def web_balance(live_app, email: str):  # type: ignore[no-untyped-def]
    db = make_engine(f"sqlite:///{live_app.data_dir / 'cutout.db'}")
    try:
        return operator.balance(db=db, clock=SystemClock(), email=email).wallets[Wallet.web]
    finally:
        db.dispose()


def rows(page, phase: str):  # type: ignore[no-untyped-def]
    queue = page.get_by_role("list", name="Queue")
    return queue.get_by_role("listitem").filter(has=page.get_by_text(phase, exact=True))


def queue_names(page) -> list[str]:  # type: ignore[no-untyped-def]
    items = page.get_by_role("list", name="Queue").get_by_role("listitem")
    return [items.nth(i).get_attribute("aria-label") or "" for i in range(items.count())]


def test_bulk_stops_when_credits_run_out_and_resumes_after_a_top_up(
    live_app, phone, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    page = phone.new_page()
    email = new_email()
    sign_up(page, live_app.url, email)
    leave_credits(live_app, email, 1500)  # three photos' worth

    page.goto(live_app.url + "/bulk")
    expect(page.get_by_role("heading", name="Bulk background removal")).to_be_visible()
    page.locator("input[type=file]").set_input_files(photo_files(tmp_path))
    expect(rows(page, "waiting")).to_have_count(5, timeout=120_000)
    expect(page.get_by_text(re.compile(r"5 photos · 2\.5 credits · you have 1\.5"))).to_be_visible()
    expect(page.get_by_text("Your credits do not cover every photo", exact=False)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "bulk-quote.png"), full_page=True)
    page.get_by_role("button", name=re.compile(r"Start · 2\.5 credits")).click()

    # Mid-queue, the tab reloads (a phone's sleeping tab does the same): the queue comes back
    # from the database, same photos in the same order, and keeps going.
    expect(page.get_by_role("progressbar", name="Batch progress")).to_be_visible(timeout=30_000)
    before = queue_names(page)
    page.reload()
    expect(page.get_by_role("list", name="Queue").get_by_role("listitem")).to_have_count(
        5, timeout=60_000
    )
    assert queue_names(page) == before == [f"{name}.jpg" for name in NAMES]
    expect(page.get_by_role("progressbar", name="Batch progress")).to_be_visible()

    stopped = page.get_by_role("alert").filter(has_text="credits ran out")
    expect(stopped).to_be_visible(timeout=240_000)
    expect(stopped.get_by_role("link", name="See plans and top-ups")).to_be_visible()
    # A photo already under way when the balance ran short still finishes (it was paid for).
    expect(rows(page, "done")).to_have_count(3, timeout=120_000)
    expect(rows(page, "not started")).to_have_count(2)
    page.screenshot(path=str(ARTIFACTS / "bulk-stopped.png"), full_page=True)
    wallet = web_balance(live_app, email)
    assert wallet.available == 0 and wallet.reserved == 0  # 3 paid, nothing held for the rest

    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Download all")).click()
    saved = tmp_path / "batch.zip"
    download_info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        assert len(names) == 3 and all(name.endswith(".png") for name in names)
        for name in names:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.mode == "RGBA"
            alpha = np.asarray(image)[..., 3]
            assert alpha.min() == 0 and alpha.max() == 255  # a real cutout, not a copy

    grant(live_app, email, 1000)  # the top-up
    stopped.get_by_role("button", name="Resume").click()
    expect(rows(page, "done")).to_have_count(5, timeout=240_000)
    expect(page.get_by_text(re.compile(r"5 of 5 finished · 5 done"))).to_be_visible()
    assert web_balance(live_app, email).available == 0
    editor_link = page.get_by_role("link", name="Open astronaut.jpg in the editor")
    assert re.fullmatch(r"/editor/[\w-]+", editor_link.get_attribute("href") or "")
    page.screenshot(path=str(ARTIFACTS / "bulk-done.png"), full_page=True)
