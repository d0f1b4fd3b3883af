"""Handing a reserved cutout to the queue when CUTOUT_JOBS=celery (the pool runs it otherwise)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from app.settings import Settings


@dataclass(frozen=True)
class DispatchedCutout:
    """What a queued task carries: plain values, never the image nor anything secret."""

    account_id: int
    job_id: str
    attempt: int  # the attempt the web took and reserved; recoveries count up from it
    runner: str  # the task's id, also recorded on the job


def send_to_celery(settings: Settings, task: DispatchedCutout) -> None:
    """Queue the task under its runner id (raises when the broker cannot be reached)."""
    # Imported here: a deployment without Celery never loads it.
    from app.services.jobs.celery_app import CUTOUT_TASK, make_celery

    make_celery(settings).send_task(
        CUTOUT_TASK, kwargs=asdict(task), task_id=task.runner, queue=settings.celery_queue
    )
