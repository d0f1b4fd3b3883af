"""Cutout's Reflex app: pages, the HTTP routes beside them, and start-up checks."""

from __future__ import annotations

import asyncio
import logging
import sys

import reflex as rx
from pydantic import ValidationError
from reflex.utils.prerequisites import get_states_dir
from starlette.applications import Starlette

from app import routes, runtime
from app.api.accounts import account_routes
from app.api.bulk_zip import bulk_zip_routes
from app.api.editor_files import editor_file_routes
from app.api.files import file_routes
from app.api.headers import SecurityHeadersMiddleware
from app.api.oauth import oauth_routes
from app.api.page_paths import PagePathsMiddleware
from app.api.removebg import PublicApiCors, removebg_routes
from app.api.sessions import SessionCookieMiddleware
from app.api.stripe import stripe_routes
from app.api.upload_limit import UploadLimitMiddleware
from app.components.shell import not_found, page_shell
from app.pages.account import account
from app.pages.api import api_page
from app.pages.auth import forgot, signin, signup
from app.pages.bulk import bulk_page
from app.pages.editor import editor
from app.pages.home import home
from app.pages.pricing import pricing
from app.permissions import make_private
from app.services.imaging.model_files import ModelMissing, check_model
from app.settings import describe_invalid
from app.state.account import AccountState
from app.state.api import ApiPageState
from app.state.auth import AuthState
from app.state.bulk import BulkState
from app.state.cutout import CutoutState
from app.state.editor import EditorState
from app.state.errors import unexpected_error
from app.state.pricing import PricingState
from app.state.session_guard import SessionGuard
from app.usecases.bulk import resume_running
from app.usecases.housekeeping import run_housekeeping_exclusively

log = logging.getLogger("cutout")

ALERT_FOCUS_JS = """
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[role="alert"]:not([data-shown])')) {
    el.setAttribute('data-shown', '');
    el.setAttribute('tabindex', '-1');
    el.scrollIntoView({block: 'center', behavior: 'smooth'});
    el.focus({preventScroll: true});
  }
}).observe(document.documentElement, {childList: true, subtree: true});
"""

try:
    _settings = runtime.settings()
except ValidationError as invalid:
    sys.exit(f"Cutout cannot start: {describe_invalid(invalid)}")
# Everything this process writes (database, results, Reflex's state pickles) is its user's alone.
make_private(_settings, get_states_dir())
try:
    check_model(_settings.models_path, _settings.model_name)
except ModelMissing as missing:
    # Stop here, not on the first photo: the operator sees which file and the command to run.
    sys.exit(f"Cutout cannot start: {missing}")


async def housekeeping() -> None:
    """Results past retention, reservations nobody resolved, lots past expiry: now and then."""
    while True:
        try:
            swept = await asyncio.to_thread(
                run_housekeeping_exclusively,
                db=runtime.db(),
                settings=_settings,
                clock=runtime.clock(),
            )
            log.info("housekeeping: %s", swept or "another worker is sweeping; skipped")
        except Exception:
            log.exception("housekeeping failed; retrying at the next interval")
        await asyncio.sleep(_settings.sweep_interval_seconds)


async def resume_bulk_batches() -> None:
    """Batches that were running when the server stopped go on without waiting for a page."""
    try:
        count = await resume_running(db=runtime.db(), settings=_settings, clock=runtime.clock())
        if count:
            log.info("bulk: %s running batches resumed", count)
    except Exception:
        log.exception("bulk: running batches could not be resumed")


def _limit_uploads(asgi_app):  # type: ignore[no-untyped-def]
    return UploadLimitMiddleware(asgi_app, max_bytes=_settings.max_upload_bytes)


def _session_cookies(asgi_app):  # type: ignore[no-untyped-def]
    return SessionCookieMiddleware(asgi_app)


def _page_paths(asgi_app):  # type: ignore[no-untyped-def]
    return PagePathsMiddleware(asgi_app)


def _security_headers(asgi_app):  # type: ignore[no-untyped-def]
    return SecurityHeadersMiddleware(asgi_app, public_url=_settings.public_url)


class CutoutApp(rx.App):
    """Reflex's app, with the public API's CORS outside Reflex's own strict CORS middleware."""

    def __call__(self):  # type: ignore[no-untyped-def]
        return PublicApiCors(super().__call__())


app = CutoutApp(
    api_transformer=[
        Starlette(
            routes=file_routes
            + editor_file_routes
            + bulk_zip_routes
            + account_routes(
                db=runtime.db,
                clock=runtime.clock,
                settings=runtime.settings,
                outbox=runtime.outbox,
            )
            + oauth_routes(
                config=runtime.oauth_config,
                db=runtime.db,
                clock=runtime.clock,
                settings=runtime.settings,
            )
            + stripe_routes(
                db=runtime.db,
                clock=runtime.clock,
                settings=runtime.settings,
                client=runtime.stripe_client,
            )
            + removebg_routes(
                db=runtime.db,
                clock=runtime.clock,
                settings=runtime.settings,
                limiter=runtime.api_limiter,
            )
        ),
        _limit_uploads,
        _session_cookies,
        _page_paths,
        _security_headers,  # last: outermost, so it sees every answer, errors included
    ],
    backend_exception_handler=unexpected_error,
    head_components=[
        rx.el.meta(name="theme-color", content="#6e56cf"),
        rx.el.link(rel="apple-touch-icon", href="/apple-touch-icon.png"),
        # An error that appears (role="alert") is scrolled into view and focused, wherever the
        # form that caused it sits on the page.
        rx.script(ALERT_FOCUS_JS),
    ],
)
app.add_middleware(SessionGuard())
DESCRIPTION = (
    "Remove the background from any photo in seconds: a clean transparent PNG, on your own "
    "server. Try one photo free, no account needed."
)
app.add_page(
    home,
    route=routes.HOME,
    title="Cutout: remove the background from photos",
    description=DESCRIPTION,
    on_load=CutoutState.on_load,
)
app.add_page(
    signin,
    route=routes.SIGN_IN,
    title="Sign in · Cutout",
    description="Sign in to Cutout to remove backgrounds from your photos.",
    on_load=AuthState.redirect_if_signed_in,
)
app.add_page(
    signup,
    route=routes.SIGN_UP,
    title="Sign up · Cutout",
    description="Create a Cutout account: 10 free credits, no card needed.",
    on_load=AuthState.redirect_if_signed_in,
)
app.add_page(
    forgot,
    route=routes.FORGOT,
    title="Forgot password · Cutout",
    description="Choose a new Cutout password through a mailed link.",
    on_load=AuthState.refresh,
)
app.add_page(
    account,
    route=routes.ACCOUNT,
    title="Account · Cutout",
    description="Your Cutout credits, plan, cutouts and API keys.",
    on_load=AccountState.on_load,
)
app.add_page(
    editor,
    route=routes.EDITOR + "/[editor_job]",
    title="Editor · Cutout",
    description="Edit a cutout: background colour or photo, brush fixes, AI Cut, crop and export.",
    on_load=EditorState.on_load,
)
app.add_page(
    lambda: page_shell(pricing()),
    route=routes.PRICING,
    title="Pricing · Cutout",
    description="Cutout's plans, top-ups and API packs: pay per photo in credits.",
    on_load=PricingState.on_load,
)
app.add_page(
    lambda: page_shell(api_page()),
    route=routes.API_PAGE,
    title="API · Cutout",
    description="Cutout's remove.bg-compatible HTTP API: keys, API credits and a curl example.",
    on_load=ApiPageState.on_load,
)
app.add_page(
    bulk_page,
    route=routes.BULK,
    title="Bulk · Cutout",
    description="Remove the background from up to 50 photos at once and download them as a ZIP.",
    on_load=BulkState.on_load,
)
app.add_page(
    not_found,
    route="404",
    title="Page not found · Cutout",
    description="This page does not exist; go on to remove a background or see pricing.",
    on_load=AuthState.refresh,
)
app.register_lifespan_task(housekeeping)
app.register_lifespan_task(resume_bulk_batches)
