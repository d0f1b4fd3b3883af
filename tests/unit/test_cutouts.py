"""Cutout jobs end to end in the service layer: real model, real SQLite file, injected clock."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from app.db import reading, writing
from app.services.imaging.images import ImageRejected
from app.services.jobs import cutouts as jobs
from app.services.jobs.cutouts import JobNotFound, download_name
from app.services.jobs.storage import JobFile, job_dir
from app.usecases import cutouts
from tests.conftest import confirmed_account


@pytest.fixture
def owner(db, clock, settings) -> int:  # type: ignore[no-untyped-def]
    return confirmed_account(db, clock, settings, "a@example.com").id


@pytest.fixture
def other(db, clock, settings) -> int:  # type: ignore[no-untyped-def]
    return confirmed_account(db, clock, settings, "b@example.com").id


def submit(db, settings, clock, account_id: int, data: bytes, name: str = "photo.jpg"):  # type: ignore[no-untyped-def]
    return cutouts.submit_photo(
        db=db, settings=settings, clock=clock, account_id=account_id, filename=name, data=data
    )


def job_file(db, settings, account_id: int, job_id: str, kind: JobFile):  # type: ignore[no-untyped-def]
    return cutouts.result_file(
        db=db, settings=settings, account_id=account_id, job_id=job_id, kind=kind
    )


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def run(db, settings, clock, account_id: int, data: bytes, name: str = "photo.jpg"):  # type: ignore[no-untyped-def]
    view = submit(db, settings, clock, account_id, data, name)
    return cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=account_id, job_id=view.id
    )


@pytest.mark.parametrize("photo", ["astronaut", "chelsea", "coffee"])
def test_photo_becomes_a_same_size_cutout_with_alpha(
    db, settings, clock, owner, photo: str
) -> None:
    array = getattr(photos, photo)()
    view = run(db, settings, clock, owner, jpeg(array), name=f"{photo}.jpg")
    assert view.status == "done" and view.error is None
    path, _ = job_file(db, settings, owner, view.id, JobFile.cutout)
    result = Image.open(path)
    assert result.format == "PNG" and result.mode == "RGBA"
    assert result.size == (array.shape[1], array.shape[0])
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).mean() > 0.05, "some background removed"
    assert (alpha > 128).mean() > 0.1, "the subject kept"


def test_subject_is_kept_and_background_dropped_on_a_synthetic_scene(
    db, settings, clock, owner
) -> None:
    # A bright disc on a plain dark background: ground truth is the disc.
    yy, xx = np.mgrid[:300, :400]
    disc = (yy - 150) ** 2 + (xx - 200) ** 2 < 90**2
    scene = np.zeros((300, 400, 3), dtype=np.uint8)
    scene[...] = (30, 60, 40)
    scene[disc] = (240, 180, 40)
    view = run(db, settings, clock, owner, jpeg(scene))
    path, _ = job_file(db, settings, owner, view.id, JobFile.cutout)
    alpha = np.asarray(Image.open(path))[..., 3]
    assert alpha[150, 200] > 200, "centre of the subject opaque"
    assert alpha[10, 10] < 20 and alpha[290, 390] < 20, "corners transparent"


def test_sideways_phone_photo_comes_out_upright(db, settings, clock, owner) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held sideways: stored 512 wide, shown 512 tall after rotation
    buffer = io.BytesIO()
    Image.fromarray(photos.astronaut()[:, :400]).save(buffer, format="JPEG", exif=exif.tobytes())
    view = run(db, settings, clock, owner, buffer.getvalue())
    path, _ = job_file(db, settings, owner, view.id, JobFile.cutout)
    assert Image.open(path).size == (512, 400)
    assert (view.width, view.height) == (512, 400)


def test_refused_upload_leaves_nothing_on_disk_or_in_the_database(
    db, settings, clock, owner
) -> None:
    with pytest.raises(ImageRejected):
        submit(db, settings, clock, owner, b"nope", "x.jpg")
    folder = settings.results_dir
    assert not folder.exists() or not any(folder.iterdir())
    with reading(db) as session:
        assert jobs.list_jobs(session=session, owner=f"account:{owner}") == []


def test_another_owner_sees_not_found(db, settings, clock, owner, other) -> None:
    view = run(db, settings, clock, owner, jpeg(photos.coffee()))
    with pytest.raises(JobNotFound):
        cutouts.job_for(db=db, account_id=other, job_id=view.id)
    with pytest.raises(JobNotFound):
        job_file(db, settings, other, view.id, JobFile.cutout)
    with pytest.raises(JobNotFound):  # never even to its owner: originals are not served
        job_file(db, settings, owner, view.id, JobFile.original)


def test_results_expire_after_the_retention_period(db, settings, clock, owner) -> None:
    view = run(db, settings, clock, owner, jpeg(photos.coffee()))
    clock.advance(timedelta(hours=settings.retention_hours) - timedelta(seconds=1))
    with writing(db) as session:
        assert jobs.purge_expired(session=session, settings=settings, clock=clock) == 0
    assert job_dir(settings, view.id).exists()
    clock.advance(timedelta(seconds=2))
    with writing(db) as session:
        assert jobs.purge_expired(session=session, settings=settings, clock=clock) == 1
    assert not job_dir(settings, view.id).exists()
    with pytest.raises(JobNotFound):
        cutouts.job_for(db=db, account_id=owner, job_id=view.id)


def test_job_ids_are_unguessable(db, settings, clock, owner) -> None:
    ids = {
        submit(db, settings, clock, owner, jpeg(photos.coffee()[:64, :64]), "a.jpg").id
        for _ in range(5)
    }
    assert len(ids) == 5 and all(len(job_id) >= 32 for job_id in ids)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("IMG_0001.HEIC", "IMG_0001.png"),
        ("my photo.jpeg", "my photo.png"),
        ('a"b/c.jpg', "c.png"),
        ("", "cutout.png"),
    ],
)
def test_download_is_named_after_the_original(original: str, expected: str) -> None:
    assert download_name(original) == expected
