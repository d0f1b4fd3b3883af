"""Handing work to the queue when CUTOUT_JOBS=celery (the in-process pool runs it otherwise).

Two kinds of task. A web cutout (`DispatchedCutout`): the web reserved it, the worker runs and
settles it through the job's row. An API call (`DispatchedApiCall`): the web reserved it and
waits for the answer, which the worker hands back through the result store and a Redis list;
the web alone settles it. Neither message carries an image or anything secret.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import weakref
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.services.imaging.editor import Exported
from app.services.imaging.removebg_options import Length, OptionError, Options
from app.services.jobs import storage
from app.services.jobs.storage import JobFile
from app.settings import Settings


@dataclass(frozen=True)
class DispatchedCutout:
    """What a queued cutout task carries: plain values, never the image nor anything secret."""

    account_id: int
    job_id: str
    attempt: int  # the attempt the web took and reserved; recoveries count up from it
    runner: str  # the task's id, also recorded on the job
    background: str | None = None  # a bulk batch's background colour ("#rrggbb"); None: none


def send_to_celery(settings: Settings, task: DispatchedCutout) -> None:
    """Queue the task under its runner id (raises when the broker cannot be reached)."""
    # Imported here: a deployment without Celery never loads it.
    from app.services.jobs.celery_app import CUTOUT_TASK, make_celery

    make_celery(settings).send_task(
        CUTOUT_TASK, kwargs=asdict(task), task_id=task.runner, queue=settings.celery_queue
    )


@dataclass(frozen=True)
class DispatchedApiCall:
    """What a queued API call carries: where its images are staged and remove.bg's options."""

    call_id: str  # also the task's id and the store's folder for the call's files
    options: dict[str, Any]  # `options_to_plain`
    has_background: bool


def options_to_plain(options: Options) -> dict[str, Any]:
    """Options as JSON values, for a message."""
    return asdict(options)


def options_from_plain(plain: dict[str, Any]) -> Options:
    def length(value: dict[str, Any]) -> Length:
        return Length(float(value["value"]), bool(value["share"]))

    def maybe_tuple(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    values = {f.name: maybe_tuple(plain[f.name]) for f in fields(Options) if f.name in plain}
    values["crop_margin"] = tuple(length(v) for v in plain["crop_margin"])
    values["roi"] = tuple(length(v) for v in plain["roi"])
    return Options(**values)


API_CALL_PREFIX = "api-"
# A call's folders: "api-" and 32 hex digits, "-bg" for its background. Jobs' ids are 32
# URL-safe characters, so no job's folder ever has this shape.
_API_FOLDER = re.compile(r"api-[0-9a-f]{32}(-bg)?")


def new_api_call_id() -> str:
    return f"{API_CALL_PREFIX}{secrets.token_hex(16)}"


def purge_stale_api_files(settings: Settings, *, now: datetime) -> int:
    """Delete call folders nobody is waiting for any more (their web process died mid-call).

    A live call is awaited for at most its hold's lifetime, so anything untouched for longer
    than that (and a minute) is an orphan. Returns how many folders went.
    """
    store = storage.store(settings)
    before = now - timedelta(seconds=settings.reservation_timeout_seconds + 60)
    stale = [
        name
        for name in store.jobs_older_than(API_CALL_PREFIX, before)
        if _API_FOLDER.fullmatch(name)
    ]
    for name in stale:
        store.delete_job(name)
    return len(stale)


def _background_id(call: DispatchedApiCall) -> str:
    return f"{call.call_id}-bg"


def stage_api_inputs(
    settings: Settings, call: DispatchedApiCall, image: bytes, background: bytes | None
) -> None:
    """The call's images into the shared store (each as an upload's original; no preview)."""
    store = storage.store(settings)
    store.save_upload(call.call_id, original=image, preview=b"")
    if background is not None:
        store.save_upload(_background_id(call), original=background, preview=b"")


def read_api_inputs(settings: Settings, call: DispatchedApiCall) -> tuple[bytes, bytes | None]:
    store = storage.store(settings)
    image = store.read(call.call_id, JobFile.original)
    background = store.read(_background_id(call), JobFile.original) if call.has_background else None
    return image, background


def save_api_result(
    settings: Settings, call: DispatchedApiCall, exported: Exported
) -> dict[str, Any]:
    """The exported file into the call's folder; its description (all but the bytes) back."""
    store = storage.store(settings)
    # Staged then published whole: a second delivery of the task replaces it atomically.
    store.publish(store.stage(call.call_id, JobFile.cutout, exported.data))
    described = asdict(exported)
    del described["data"]
    return described


def discard_api_files(settings: Settings, call: DispatchedApiCall) -> None:
    store = storage.store(settings)
    store.delete_job(call.call_id)
    store.delete_job(_background_id(call))


def _answer_key(call_id: str) -> str:
    return f"cutout:api-answer:{call_id}"


def post_api_answer(settings: Settings, call_id: str, answer: dict[str, Any]) -> None:
    """The worker's answer for the waiting web process (a Redis list it blocks on)."""
    client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        key = _answer_key(call_id)
        with client.pipeline() as pipe:
            pipe.rpush(key, json.dumps(answer))
            # Nobody waits longer than a hold lives; a late answer must not stay behind.
            pipe.expire(key, settings.reservation_timeout_seconds + 60)
            pipe.execute()
    finally:
        client.close()


class ApiCallTimedOut(Exception):
    """No worker answered in time (the call's hold is released by whoever awaited it)."""


class ApiCallFailed(Exception):
    """The worker could not run the call; its reference is in the worker's log."""


class ApiQueue(Protocol):
    async def run(self, settings: Settings, call: DispatchedApiCall) -> Exported:
        """Queue the staged call and wait for its exported result; OptionError for a 400."""


class CeleryApiQueue:
    """API calls through Celery: the web awaits a Redis list without holding a thread."""

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, AsyncRedis]
        ] = weakref.WeakKeyDictionary()

    def _client(self, url: str) -> AsyncRedis:
        # One client per event loop: an asyncio connection belongs to the loop that opened it.
        mine = self._clients.setdefault(asyncio.get_running_loop(), {})
        if url not in mine:
            mine[url] = AsyncRedis.from_url(url, socket_connect_timeout=5)
        return mine[url]

    async def run(self, settings: Settings, call: DispatchedApiCall) -> Exported:
        await asyncio.to_thread(send_api_call, settings, call)
        timeout = api_wait_seconds(settings)
        began = time.monotonic()
        popped = await self._client(settings.redis_url).blpop(
            [_answer_key(call.call_id)], timeout=timeout
        )
        if popped is None:
            await asyncio.to_thread(revoke_api_call, settings, call)
            raise ApiCallTimedOut(f"no worker answered in {time.monotonic() - began:.0f} s")
        return await asyncio.to_thread(exported_from, settings, call, json.loads(popped[1]))


def exported_from(settings: Settings, call: DispatchedApiCall, answer: dict[str, Any]) -> Exported:
    """The worker's answer as the exported result, or the error it stands for."""
    if "error" in answer:
        raise OptionError(answer["error"]["code"], answer["error"]["detail"])
    if "failed" in answer:
        raise ApiCallFailed(answer["failed"])
    data = storage.store(settings).read(call.call_id, JobFile.cutout)
    return Exported(data=data, **{**answer, "subject": tuple(answer["subject"])})


def api_wait_seconds(settings: Settings) -> int:
    """How long the web waits for a worker: a little less than the call's hold lives."""
    return max(5, settings.reservation_timeout_seconds - 10)


def send_api_call(settings: Settings, call: DispatchedApiCall) -> None:
    from app.services.jobs.celery_app import API_TASK, make_celery

    # No result in Celery's backend (the answer comes through the store and a list), so the
    # sender subscribes to nothing and nothing piles up unread.
    make_celery(settings).send_task(
        API_TASK,
        kwargs=asdict(call),
        task_id=call.call_id,
        queue=settings.celery_queue,
        ignore_result=True,
    )


def revoke_api_call(settings: Settings, call: DispatchedApiCall) -> None:
    """A call given up on: workers skip it if it has not started (best effort)."""
    from app.services.jobs.celery_app import make_celery

    make_celery(settings).control.revoke(call.call_id)
