"""The Celery application behind CUTOUT_JOBS=celery: Redis as broker and result backend.

Delivery is at least once. A task is acknowledged only after it ran (`acks_late`), so a worker
that dies mid-job leaves its message to be delivered again: at once when a pool process is
killed (`task_reject_on_worker_lost`), after `Settings.redelivery_seconds` when the whole worker
vanishes. The job's state machine (`app/usecases/cutouts.py: run_dispatched`) makes a second
delivery safe: it can neither run an attempt twice nor charge it twice.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from app.settings import Settings

CUTOUT_TASK = "cutout.process"
API_TASK = "cutout.api_call"


def make_celery(settings: Settings) -> Celery:
    return _celery(settings.redis_url, settings.celery_queue, settings.redelivery_seconds)


@lru_cache(maxsize=4)
def _celery(redis_url: str, queue: str, redelivery_seconds: int) -> Celery:
    app = Celery("cutout", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One photo per pool process at a time: a long job never has others queued behind it
        # on a busy worker while another worker idles.
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        task_routes={CUTOUT_TASK: {"queue": queue}, API_TASK: {"queue": queue}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": redelivery_seconds,
            # Look for a dead worker's messages every few seconds (kombu's default is about
            # every 100 s): one small Redis query per worker.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        # Progress goes through the jobs table; the result is only a status for operators.
        task_track_started=False,
        worker_hijack_root_logger=False,
    )
    return app
