"""Bulk batches in the use-case layer: real model, real SQLite file, the real ledger."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from app.models.bulk import BatchStatus
from app.models.ledger import LotScope
from app.services.jobs.bulk import BatchNotFound, Phase
from app.services.jobs.storage import JobFile, file_path
from app.usecases import bulk, operator
from app.usecases.housekeeping import run_housekeeping
from tests.conftest import confirmed_account, run_async

PHOTOS = ("astronaut", "chelsea", "coffee")  # each under 1 MP: 0.5 credits apiece


def jpeg(name: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(getattr(photos, name)()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def poor(settings):  # type: ignore[no-untyped-def]
    """Settings whose new accounts get 1 credit: enough for two small photos, not three."""
    return settings.model_copy(update={"trial_credits": 1})


def batch_of(db, settings, clock, account_id: int, names=PHOTOS) -> str:  # type: ignore[no-untyped-def]
    batch_id = bulk.new_batch(db=db, settings=settings, clock=clock, account_id=account_id)
    for name in names:
        bulk.add_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=account_id,
            batch_id=batch_id,
            filename=f"{name}.jpg",
            data=jpeg(name),
        )
    return batch_id


def drive(db, settings, clock, account_id: int, batch_id: str) -> None:  # type: ignore[no-untyped-def]
    run_async(
        bulk.drive(db=db, settings=settings, clock=clock, account_id=account_id, batch_id=batch_id)
    )


def view(db, clock, account_id: int, batch_id: str):  # type: ignore[no-untyped-def]
    found = bulk.overview(
        db=db, clock=clock, account_id=account_id, batch_id=batch_id, since=clock.now()
    )
    assert found.batch is not None
    return found


def test_credits_run_out_then_a_top_up_and_resume_finish_the_batch(db, poor, clock) -> None:
    account = confirmed_account(db, clock, poor, "bulk@example.com")
    batch_id = batch_of(db, poor, clock, account.id)
    before = view(db, clock, account.id, batch_id)
    assert [item.phase for item in before.batch.items] == [Phase.waiting] * 3
    assert before.batch.total_cost == 1500 and before.available == 1000

    bulk.start(db=db, account_id=account.id, batch_id=batch_id)
    drive(db, poor, clock, account.id, batch_id)

    stopped = view(db, clock, account.id, batch_id)
    assert stopped.batch.status == BatchStatus.paused
    assert [item.phase for item in stopped.batch.items] == [
        Phase.done,
        Phase.done,
        Phase.not_started,
    ]
    assert "credits ran out" in stopped.batch.stop_reason
    assert stopped.available == 0  # two photos paid, the third never reserved
    third = stopped.batch.items[2].job_id
    assert not file_path(poor, third, JobFile.cutout).exists()

    operator.grant_credits(
        db=db,
        clock=clock,
        settings=poor,
        email="bulk@example.com",
        amount=1000,
        scope=LotScope.web,
        valid_days=None,
        key=None,
    )
    bulk.resume(db=db, account_id=account.id, batch_id=batch_id)
    drive(db, poor, clock, account.id, batch_id)

    done = view(db, clock, account.id, batch_id)
    assert done.batch.status == BatchStatus.finished
    assert [item.phase for item in done.batch.items] == [Phase.done] * 3
    assert done.available == 500
    names = [
        name
        for name, _ in bulk.zip_members(
            db=db, settings=poor, account_id=account.id, batch_id=batch_id
        )
    ]
    assert names == ["astronaut.png", "chelsea.png", "coffee.png"]


def test_cancel_the_rest_leaves_photos_unprocessed_and_uncharged(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "cancel@example.com")
    batch_id = batch_of(db, settings, clock, account.id)
    bulk.start(db=db, account_id=account.id, batch_id=batch_id)
    assert bulk.cancel_rest(db=db, account_id=account.id, batch_id=batch_id) == 3
    drive(db, settings, clock, account.id, batch_id)
    found = view(db, clock, account.id, batch_id)
    assert found.batch.status == BatchStatus.cancelled
    assert [item.phase for item in found.batch.items] == [Phase.not_started] * 3
    assert found.available == settings.trial_credits * 1000


def test_options_apply_to_every_photo(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "opts@example.com")
    batch_id = batch_of(db, settings, clock, account.id, names=("astronaut", "coffee"))
    with pytest.raises(ValueError, match="not a colour"):
        bulk.set_options(
            db=db, account_id=account.id, batch_id=batch_id, hair=False, background="blue"
        )
    quoted = bulk.set_options(
        db=db, account_id=account.id, batch_id=batch_id, hair=True, background="#1E90FF"
    )
    assert [item.cost for item in quoted.items] == [1000, 1000]  # hair adds 0.5 each
    bulk.start(db=db, account_id=account.id, batch_id=batch_id)
    drive(db, settings, clock, account.id, batch_id)
    found = view(db, clock, account.id, batch_id)
    assert [item.phase for item in found.batch.items] == [Phase.done, Phase.done]
    assert found.available == settings.trial_credits * 1000 - 2000
    for item in found.batch.items:
        with Image.open(file_path(settings, item.job_id, JobFile.cutout)) as result:
            pixels = np.asarray(result.convert("RGBA"))
        assert (pixels[..., 3] == 255).all()  # a solid background: nothing transparent
        assert tuple(pixels[0, 0]) == (0x1E, 0x90, 0xFF, 255)  # a corner is background


def test_another_account_cannot_see_or_steer_a_batch(db, settings, clock) -> None:
    owner = confirmed_account(db, clock, settings, "owner@example.com")
    other = confirmed_account(db, clock, settings, "other@example.com")
    batch_id = batch_of(db, settings, clock, owner.id, names=("astronaut",))
    for call in (bulk.start, bulk.cancel_rest, bulk.resume):
        with pytest.raises(BatchNotFound):
            call(db=db, account_id=other.id, batch_id=batch_id)
    with pytest.raises(BatchNotFound):
        bulk.zip_members(db=db, settings=settings, account_id=other.id, batch_id=batch_id)
    assert (
        bulk.overview(
            db=db, clock=clock, account_id=other.id, batch_id=None, since=clock.now()
        ).batch
        is None
    )


def test_a_batch_holds_at_most_the_setting(db, settings, clock) -> None:
    small = settings.model_copy(update={"bulk_max_files": 2})
    account = confirmed_account(db, clock, small, "full@example.com")
    with pytest.raises(ValueError, match="at most 2 photos"):
        batch_of(db, small, clock, account.id)


def test_a_batch_running_when_the_server_stopped_goes_on_at_start_up(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "restart@example.com")
    batch_id = batch_of(db, settings, clock, account.id, names=("astronaut", "chelsea"))
    bulk.start(db=db, account_id=account.id, batch_id=batch_id)  # ... and the server stops

    async def start_up() -> int:
        resumed = await bulk.resume_running(db=db, settings=settings, clock=clock)
        for _ in range(600):
            found = view(db, clock, account.id, batch_id)
            if found.batch.status != BatchStatus.running:
                break
            await asyncio.sleep(0.1)
        return resumed

    assert run_async(start_up()) == 1
    found = view(db, clock, account.id, batch_id)
    assert found.batch.status == BatchStatus.finished
    assert [item.phase for item in found.batch.items] == [Phase.done, Phase.done]


def test_housekeeping_removes_batches_past_retention(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "old@example.com")
    batch_id = batch_of(db, settings, clock, account.id, names=("astronaut",))
    since = clock.now()
    clock.advance(timedelta(hours=settings.retention_hours + 1))
    swept = run_housekeeping(db=db, settings=settings, clock=clock)
    assert swept.batches == 1 and swept.results == 1
    with pytest.raises(BatchNotFound):
        bulk.zip_members(db=db, settings=settings, account_id=account.id, batch_id=batch_id)
    found = bulk.overview(db=db, clock=clock, account_id=account.id, batch_id=None, since=since)
    assert found.batch is None


def test_a_failed_photo_is_not_charged_and_a_retry_finishes_it(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "retry@example.com")
    batch_id = batch_of(db, settings, clock, account.id, names=("astronaut", "chelsea"))
    first = view(db, clock, account.id, batch_id).batch.items[0].job_id
    original = file_path(settings, first, JobFile.original)
    kept = original.read_bytes()
    original.write_bytes(kept[: len(kept) // 3])  # the stored upload is damaged on disk
    bulk.start(db=db, account_id=account.id, batch_id=batch_id)
    drive(db, settings, clock, account.id, batch_id)
    found = view(db, clock, account.id, batch_id)
    assert [item.phase for item in found.batch.items] == [Phase.failed, Phase.done]
    assert found.batch.items[0].error
    assert found.available == settings.trial_credits * 1000 - 500  # only the done one paid

    original.write_bytes(kept)
    retried = bulk.retry(db=db, account_id=account.id, batch_id=batch_id, job_id=first)
    assert retried.items[0].phase == Phase.waiting
    drive(db, settings, clock, account.id, batch_id)
    found = view(db, clock, account.id, batch_id)
    assert [item.phase for item in found.batch.items] == [Phase.done, Phase.done]
    assert found.available == settings.trial_credits * 1000 - 1000
