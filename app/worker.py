"""The Celery worker for CUTOUT_JOBS=celery: `celery -A app.worker worker` (see README).

It runs the same use case and pipeline as the in-process pool; only the delivery differs.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import worker_process_init
from pydantic import ValidationError

from app import runtime
from app.permissions import make_private
from app.services.errors import report
from app.services.imaging import engine
from app.services.imaging.model_files import ModelMissing, check_model
from app.services.jobs.celery_app import API_TASK, CUTOUT_TASK, make_celery
from app.services.jobs.dispatch import DispatchedApiCall, DispatchedCutout, post_api_answer
from app.settings import describe_invalid
from app.usecases import api_calls, cutouts

log = logging.getLogger("cutout")

try:
    _settings = runtime.settings()
except ValidationError as invalid:
    sys.exit(f"Cutout's worker cannot start: {describe_invalid(invalid)}")
make_private(_settings)
try:
    check_model(_settings.models_path, _settings.model_name)
except ModelMissing as missing:
    sys.exit(f"Cutout's worker cannot start: {missing}")

celery = make_celery(_settings)


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    # A forked pool process must not share its parent's database connections, and loads the
    # model once, before its first photo.
    runtime.db().dispose(close=False)
    engine.load_session(_settings.models_path, _settings.model_name, _settings.onnx_thread_count)


@celery.task(name=CUTOUT_TASK)
def process_cutout(
    *, account_id: int, job_id: str, attempt: int, runner: str, background: str | None = None
) -> str | None:
    view = cutouts.run_dispatched(
        db=runtime.db(),
        settings=runtime.settings(),
        clock=runtime.clock(),
        task=DispatchedCutout(account_id, job_id, attempt, runner, background),
    )
    if view is not None:
        log.info("cutout job %s attempt %s: %s", job_id, view.attempt, view.status)
    return view.status.value if view is not None else None


@celery.task(name=API_TASK, ignore_result=True)
def process_api_call(*, call_id: str, options: dict[str, Any], has_background: bool) -> None:
    """An API call's model step; the web that queued it settles the charge from the answer."""
    settings = runtime.settings()
    call = DispatchedApiCall(call_id, options, has_background)
    try:
        answer = api_calls.run_queued_call(settings=settings, call=call)
    except Exception as error:  # the web answers 500 with this reference, and charges nothing
        answer = {"failed": report(error, f"API call {call_id}")}
    post_api_answer(settings, call_id, answer)
