"""Try before signing up: a signed-out visitor's free preview, and claiming it after sign-up.

Nothing here touches the ledger: a preview is free (and small), and the claimed photo is paid
for by the ordinary charged path (`app.usecases.cutouts.process_cutout`).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import Engine

from app.db import reading, writing
from app.services import errors
from app.services.clock import Clock
from app.services.identity.auth import account_owner
from app.services.imaging import engine, pipeline
from app.services.imaging.images import (
    ImageRejected,
    load_image,
    preview_jpeg,
    preview_webp,
    shrink_to_pixels,
)
from app.services.jobs import cutouts, storage, trial
from app.services.jobs.cutouts import JobView
from app.services.jobs.storage import JobFile
from app.settings import Settings
from app.usecases.cutouts import limits_for

PREVIEW_SIDE = 1024
FAILED = "Making the preview failed (reference {}). Try another photo."


def submit_trial(
    *, db: Engine, settings: Settings, clock: Clock, address: str, filename: str, data: bytes
) -> JobView:
    """Check and store a signed-out visitor's photo as a queued preview job. Refusals
    (TrialUsed, ImageRejected) store nothing and use up nothing."""
    key = trial.address_key(address)
    per_day = settings.trial_previews_per_day
    with reading(db) as session:  # before the slow decode
        trial.check_allowance(session=session, clock=clock, key=key, per_day=per_day)
    loaded = load_image(data, filename=filename, limits=limits_for(settings))
    job_id = secrets.token_urlsafe(24)
    before = preview_jpeg(loaded.image, max_side=PREVIEW_SIDE)
    storage.save_upload(settings, job_id, original=data, preview=before)
    try:
        with writing(db) as session:
            # Again under the write lock: parallel uploads from one address all passed above.
            trial.check_allowance(session=session, clock=clock, key=key, per_day=per_day)
            view = cutouts.add_job(
                session=session,
                clock=clock,
                settings=settings,
                job_id=job_id,
                owner=trial.trial_owner(key),
                name=loaded.name,
                width=loaded.width,
                height=loaded.height,
            )
            trial.record_preview(session=session, clock=clock, key=key, job_id=job_id)
            return view
    except BaseException:
        storage.delete_job_files(settings, job_id)
        raise


def process_trial(*, db: Engine, settings: Settings, clock: Clock, job_id: str) -> JobView:
    """Run the model on a reduced copy (at most `trial_preview_megapixels`) and keep only a
    light preview of the cutout. Blocking: call it from the worker pool."""
    with writing(db) as session:
        owner = trial.trial_job(session=session, job_id=job_id).owner
        taken = cutouts.start_processing(session=session, clock=clock, owner=owner, job_id=job_id)
        if taken is None:
            return cutouts.get_job(session=session, owner=owner, job_id=job_id)
    error = None
    try:
        loaded = load_image(
            storage.read_original(settings, job_id),
            filename=taken.original_name,
            limits=limits_for(settings),
        )
        small = shrink_to_pixels(loaded.image, int(settings.trial_preview_megapixels * 1e6))
        model = engine.load_session(
            settings.models_path, settings.model_name, settings.onnx_thread_count
        )
        result = pipeline.run(model, small, pipeline.CutoutRequest())
        storage.save_preview(settings, job_id, preview_webp(result.data, max_side=PREVIEW_SIDE))
    except ImageRejected as rejected:
        error = rejected.message
    except Exception as failure:
        error = FAILED.format(errors.report(failure, f"trial job {job_id}"))
    with writing(db) as session:
        cutouts.finish(
            session=session, clock=clock, job_id=job_id, attempt=taken.attempt, error=error
        )
        return cutouts.get_job(session=session, owner=owner, job_id=job_id)


def trial_job(*, db: Engine, job_id: str) -> JobView:
    """A preview job by its id (the id is the visitor's only key to it); JobNotFound else."""
    with reading(db) as session:
        owner = trial.trial_job(session=session, job_id=job_id).owner
        return cutouts.get_job(session=session, owner=owner, job_id=job_id)


def claim_trial(
    *, db: Engine, settings: Settings, clock: Clock, account_id: int, job_id: str
) -> JobView | None:
    """The signed-in account takes the photo it previewed before signing up, as a queued job
    to quote and pay for at full resolution; None when there is nothing to claim."""
    with writing(db) as session:
        return trial.claim(
            session=session,
            clock=clock,
            settings=settings,
            job_id=job_id,
            owner=account_owner(account_id),
        )


def trial_file(*, db: Engine, settings: Settings, job_id: str, kind: JobFile) -> Path:
    with reading(db) as session:
        return trial.trial_file(session=session, settings=settings, job_id=job_id, kind=kind)
