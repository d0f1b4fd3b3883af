"""Abuse limits on uploads: per account per minute, and how many unpaid uploads one account
may keep stored (its oldest unpaid ones make room)."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading
from app.models.jobs import CutoutJob
from app.services.clock import FrozenClock
from app.services.jobs.cutouts import UploadLimited
from app.services.jobs.storage import job_dir
from app.settings import Settings
from app.usecases import cutouts
from tests.conftest import confirmed_account


def small_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def submit(db: Engine, settings: Settings, clock: FrozenClock, account_id: int, n: int):  # type: ignore[no-untyped-def]
    return cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account_id,
        filename=f"photo-{n}.jpg",
        data=small_jpeg(n),
    )


def stored(db: Engine) -> list[str]:
    with reading(db) as session:
        jobs = session.exec(select(CutoutJob).order_by(CutoutJob.created_at)).all()
        return [job.original_name for job in jobs]


def test_uploads_per_minute_are_limited_per_account(
    db: Engine, settings: Settings, clock: FrozenClock
) -> None:
    strict = settings.model_copy(update={"uploads_per_minute": 3})
    ada = confirmed_account(db, clock, strict, "ada@example.com").id
    bob = confirmed_account(db, clock, strict, "bob@example.com").id
    for n in range(3):
        submit(db, strict, clock, ada, n)
        clock.advance(timedelta(seconds=5))
    with pytest.raises(UploadLimited, match="more than 3 photos in a minute") as refused:
        submit(db, strict, clock, ada, 3)
    assert refused.value.message.endswith("try again.")
    submit(db, strict, clock, bob, 4)  # someone else is not held up
    clock.advance(timedelta(seconds=50))  # a minute after the first upload
    submit(db, strict, clock, ada, 5)
    assert stored(db) == [f"photo-{n}.jpg" for n in (0, 1, 2, 4, 5)]
    # Nothing was left on disk by the refused upload.
    assert len(list(strict.results_dir.iterdir())) == 5


def test_the_oldest_unpaid_uploads_make_room_for_new_ones(
    db: Engine, settings: Settings, clock: FrozenClock
) -> None:
    strict = settings.model_copy(update={"max_pending_uploads": 2})
    ada = confirmed_account(db, clock, strict, "ada@example.com").id
    bob = confirmed_account(db, clock, strict, "bob@example.com").id
    first = submit(db, strict, clock, ada, 0)
    clock.advance(timedelta(minutes=1))
    submit(db, strict, clock, bob, 1)
    clock.advance(timedelta(minutes=1))
    submit(db, strict, clock, ada, 2)
    clock.advance(timedelta(minutes=1))
    submit(db, strict, clock, ada, 3)
    assert stored(db) == ["photo-1.jpg", "photo-2.jpg", "photo-3.jpg"]  # bob's stays
    assert not job_dir(strict, first.id).exists()
