"""Cutout's Reflex app: pages, the HTTP routes beside them, and start-up checks."""

from __future__ import annotations

import asyncio
import logging
import sys

import reflex as rx
from starlette.applications import Starlette

from app import runtime
from app.api.files import routes as file_routes
from app.api.upload_limit import UploadLimitMiddleware
from app.pages.home import home
from app.services.cutouts import purge_expired
from app.services.model_files import ModelMissing, check_model
from app.state.cutout import CutoutState

log = logging.getLogger("cutout")

_settings = runtime.settings()
try:
    check_model(_settings.models_path, _settings.model_name)
except ModelMissing as missing:
    # Stop here, not on the first photo: the operator sees which file and the command to run.
    sys.exit(f"Cutout cannot start: {missing}")


async def sweep_expired_results() -> None:
    """Delete results past their retention period, now and then every sweep interval."""
    while True:
        try:
            removed = await asyncio.to_thread(
                purge_expired, db=runtime.db(), settings=_settings, clock=runtime.clock()
            )
            if removed:
                log.info("retention: removed %d expired results", removed)
        except Exception:
            log.exception("retention sweep failed; retrying at the next interval")
        await asyncio.sleep(_settings.sweep_interval_seconds)


def _limit_uploads(asgi_app):  # type: ignore[no-untyped-def]
    return UploadLimitMiddleware(asgi_app, max_bytes=_settings.max_upload_bytes)


app = rx.App(
    api_transformer=[Starlette(routes=file_routes), _limit_uploads],
)
app.add_page(
    home, route="/", title="Cutout: remove the background from photos", on_load=CutoutState.on_load
)
app.register_lifespan_task(sweep_expired_results)
