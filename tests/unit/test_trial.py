"""Try before signing up, in the service layer: a free small preview per address per day, and
the same photo claimed and paid for at full resolution after sign-up. Real model, real SQLite."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from app.db import reading
from app.models.ledger import Wallet
from app.services.billing import ledger
from app.services.imaging.images import ImageRejected
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.storage import JobFile, file_path
from app.services.jobs.trial import TrialsOff, TrialUsed
from app.usecases import cutouts, trial
from tests.conftest import confirmed_account

ADDRESS = "203.0.113.7"


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def coffee() -> bytes:
    return jpeg(photos.coffee())  # 600 x 400: 0.24 MP


def astronaut_large() -> bytes:
    big = Image.fromarray(photos.astronaut()).resize((1400, 1400))  # 1.96 MP
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def submit(db, settings, clock, data: bytes, address: str = ADDRESS, name: str = "me.jpg"):  # type: ignore[no-untyped-def]
    return trial.submit_trial(
        db=db, settings=settings, clock=clock, address=address, filename=name, data=data
    )


def preview(db, settings, clock, data: bytes, address: str = ADDRESS):  # type: ignore[no-untyped-def]
    view = submit(db, settings, clock, data, address)
    return trial.process_trial(db=db, settings=settings, clock=clock, job_id=view.id)


def web_available(db, clock, account_id: int) -> int:
    with reading(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def test_a_visitor_gets_a_small_preview_of_a_large_photo(db, settings, clock) -> None:
    view = preview(db, settings, clock, astronaut_large())
    assert view.status == "done" and view.error is None
    assert (view.width, view.height) == (1400, 1400), "the job keeps the photo's own size"
    path = trial.trial_file(db=db, settings=settings, job_id=view.id, kind=JobFile.preview)
    shown = Image.open(path)
    assert shown.format == "WEBP" and shown.mode == "RGBA"
    assert shown.width * shown.height <= 250_000
    alpha = np.asarray(shown)[..., 3]
    assert (alpha < 16).mean() > 0.05 and (alpha > 240).mean() > 0.1
    # Only the reduced original and the preview are served; never the original or a full PNG.
    before = trial.trial_file(db=db, settings=settings, job_id=view.id, kind=JobFile.before)
    assert max(Image.open(before).size) <= 1024
    for kind in (JobFile.original, JobFile.cutout):
        with pytest.raises(JobNotFound):
            trial.trial_file(db=db, settings=settings, job_id=view.id, kind=kind)


def test_one_preview_per_address_per_day(db, settings, clock) -> None:
    preview(db, settings, clock, coffee())
    with pytest.raises(TrialUsed, match="Sign up free"):
        submit(db, settings, clock, coffee())
    preview(db, settings, clock, coffee(), address="198.51.100.2")  # another address may
    clock.advance(timedelta(hours=23))
    with pytest.raises(TrialUsed):
        submit(db, settings, clock, coffee())
    clock.advance(timedelta(hours=1, seconds=1))
    assert preview(db, settings, clock, coffee()).status == "done"


def test_the_daily_number_is_a_setting_and_zero_turns_previews_off(db, settings, clock) -> None:
    settings.trial_previews_per_day = 2
    submit(db, settings, clock, coffee())
    submit(db, settings, clock, coffee())
    with pytest.raises(TrialUsed, match="2 free previews"):
        submit(db, settings, clock, coffee())
    settings.trial_previews_per_day = 0
    with pytest.raises(TrialsOff):
        submit(db, settings, clock, coffee(), address="198.51.100.9")


def test_a_refused_file_stores_nothing_and_uses_up_nothing(db, settings, clock) -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        submit(db, settings, clock, b"a shopping list, not a photo" * 20, name="list.jpg")
    assert not list(settings.results_dir.glob("*")) if settings.results_dir.exists() else True
    assert preview(db, settings, clock, coffee()).status == "done"


def test_signing_up_unlocks_the_same_photo_at_full_resolution_as_a_normal_paid_job(
    db, settings, clock
) -> None:
    shown = preview(db, settings, clock, astronaut_large())
    account = confirmed_account(db, clock, settings, "new@example.com")
    before_credits = web_available(db, clock, account.id)

    claimed = trial.claim_trial(
        db=db, settings=settings, clock=clock, account_id=account.id, job_id=shown.id
    )
    assert claimed is not None and claimed.id == shown.id and claimed.status == "queued"
    # The preview link stops working: the photo is the account's now.
    with pytest.raises(JobNotFound):
        trial.trial_file(db=db, settings=settings, job_id=shown.id, kind=JobFile.before)
    assert not file_path(settings, shown.id, JobFile.preview).exists()
    # Nobody can claim it twice.
    other = confirmed_account(db, clock, settings, "other@example.com")
    assert (
        trial.claim_trial(
            db=db, settings=settings, clock=clock, account_id=other.id, job_id=shown.id
        )
        is None
    )

    quote = cutouts.quote(db=db, clock=clock, account_id=account.id, job=claimed)
    assert quote.cost == 600  # 1.96 MP: 0.5 + 0.1 for the started 2 MP past the first
    done = cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=account.id, job_id=shown.id
    )
    assert done.status == "done"
    assert web_available(db, clock, account.id) == before_credits - 600
    path, _ = cutouts.result_file(
        db=db, settings=settings, account_id=account.id, job_id=shown.id, kind=JobFile.cutout
    )
    assert Image.open(path).size == (1400, 1400)
    page_copy, _ = cutouts.result_file(
        db=db, settings=settings, account_id=account.id, job_id=shown.id, kind=JobFile.preview
    )
    assert page_copy.stat().st_size < path.stat().st_size / 3
    assert page_copy.stat().st_size < 400_000


def test_only_finished_previews_can_be_claimed(db, settings, clock) -> None:
    account = confirmed_account(db, clock, settings, "a@example.com")
    queued = submit(db, settings, clock, coffee())
    claim = dict(db=db, settings=settings, clock=clock, account_id=account.id)
    assert trial.claim_trial(**claim, job_id=queued.id) is None
    assert trial.claim_trial(**claim, job_id="no-such-job") is None
    # An account's own job is not a preview: it cannot be "claimed" by anyone.
    own = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=account.id,
        filename="x.jpg",
        data=coffee(),
    )
    other = confirmed_account(db, clock, settings, "b@example.com")
    assert (
        trial.claim_trial(db=db, settings=settings, clock=clock, account_id=other.id, job_id=own.id)
        is None
    )
