"""A bulk batch's ZIP over real HTTP: streamed, every finished photo, only to its owner."""

from __future__ import annotations

import asyncio
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from PIL import Image
from skimage import data as photos

from app.db import make_engine, writing
from app.routes import SESSION_COOKIE, bulk_zip_url
from app.services.clock import SystemClock
from app.services.identity import auth
from app.services.jobs.storage import JobFile, file_path
from app.settings import Settings
from app.usecases import bulk
from tests.conftest import MODELS_DIR, confirmed_account


def run_async(coroutine):  # type: ignore[no-untyped-def]
    """asyncio.run on a thread of its own: in a full run, Playwright's session fixture keeps an
    event loop running on the main thread, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def jpeg(name: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(getattr(photos, name)()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def session_token(db, clock, settings, email: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """A confirmed account and a session as sign-in opens it (the password check and its
    per-address throttle are tests/unit/test_auth.py's; other suites sign in from here too)."""
    account = confirmed_account(db, clock, settings, email)
    with writing(db) as session:
        token = auth.create_session(
            session=session, clock=clock, account_id=account.id, lifetime=timedelta(days=1)
        )
    return account.id, token


def test_the_zip_streams_every_finished_photo_to_its_owner_only(live_app) -> None:  # type: ignore[no-untyped-def]
    # The test works on the live server's own database and data folder, as the app would.
    settings = Settings(
        data_dir=live_app.data_dir, models_dir=MODELS_DIR, database_url=live_app.database_url
    )
    db = make_engine(settings.db_url)
    clock = SystemClock()
    owner, token = session_token(db, clock, settings, "zip-owner@example.com")
    _, other_token = session_token(db, clock, settings, "zip-other@example.com")
    batch_id = bulk.new_batch(db=db, settings=settings, clock=clock, account_id=owner)
    # Two photos with the same name: the ZIP keeps both under distinct names.
    for name, filename in (("astronaut", "a.jpg"), ("coffee", "a.jpg"), ("chelsea", "cat.jpg")):
        bulk.add_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=owner,
            batch_id=batch_id,
            filename=filename,
            data=jpeg(name),
        )
    url = live_app.url + bulk_zip_url(batch_id)
    empty = httpx.get(url, cookies={SESSION_COOKIE: token})
    assert empty.status_code == 404 and "No finished photos" in empty.json()["error"]

    bulk.start(db=db, account_id=owner, batch_id=batch_id)
    run_async(
        bulk.drive(db=db, settings=settings, clock=clock, account_id=owner, batch_id=batch_id)
    )

    with httpx.stream("GET", url, cookies={SESSION_COOKIE: token}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert "content-length" not in response.headers  # streamed, not built whole first
        assert "attachment" in response.headers["content-disposition"]
        body = b"".join(response.iter_bytes())
    found = bulk.overview(
        db=db, clock=clock, account_id=owner, batch_id=batch_id, since=clock.now()
    )
    assert found.batch is not None
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["a.png", "a (2).png", "cat.png"]
        for item, name in zip(found.batch.items, archive.namelist(), strict=True):
            stored = file_path(settings, item.job_id, JobFile.cutout).read_bytes()
            assert archive.read(name) == stored

    for cookies in ({SESSION_COOKIE: other_token}, {}, {SESSION_COOKIE: "forged"}):
        refused = httpx.get(url, cookies=cookies)
        assert refused.status_code == 404 and refused.json() == {"error": "Not found."}
    assert (
        httpx.get(
            live_app.url + bulk_zip_url("no-such-batch"), cookies={SESSION_COOKIE: token}
        ).status_code
        == 404
    )
    db.dispose()
