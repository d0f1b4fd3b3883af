"""OAuth / OpenID Connect sign-in routes: /auth/{provider}/login and /auth/{provider}/callback.

On success the callback sets the HttpOnly `cutout_session` cookie, exactly as a password
sign-in does, and redirects to the same-site path the sign-in started from.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app import routes
from app.api.sessions import set_session_cookie
from app.services.clock import Clock
from app.services.identity.oauth import (
    OAuthConfig,
    OAuthFailed,
    finish_sign_in,
    start_sign_in,
)
from app.settings import Settings
from app.usecases.accounts import finish_oauth_sign_in

PENDING_COOKIE = "cutout_oauth"
# The pending sign-in is only needed by the callback, so other requests never carry it.
PENDING_COOKIE_PATH = routes.AUTH + "/"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

log = logging.getLogger("cutout.oauth")


def oauth_routes(
    *,
    config: Callable[[], OAuthConfig],
    db: Callable[[], Engine],
    clock: Callable[[], Clock],
    settings: Callable[[], Settings],
) -> list[Route]:
    """The routes, reading config, engine and clock per request (as app.runtime provides them)."""

    async def login(request: Request) -> Response:
        current = config()
        provider = request.path_params["provider"]
        try:
            url, sealed = await start_sign_in(
                config=current,
                provider_key=provider,
                next_path=request.query_params.get("next"),
                clock=clock(),
            )
        except OAuthFailed as failed:
            log.warning("oauth login for %r refused: %s", provider, type(failed).__name__)
            return _error_page(failed)
        response = RedirectResponse(url, status_code=302, headers=NO_STORE)
        response.set_cookie(
            PENDING_COOKIE,
            sealed,
            max_age=int(current.state_max_age.total_seconds()),
            path=PENDING_COOKIE_PATH,
            secure=current.secure_cookies,
            httponly=True,
            # Lax, not Strict: the provider sends the browser back with a top-level GET.
            samesite="lax",
        )
        return response

    async def callback(request: Request) -> Response:
        current = config()
        provider = request.path_params["provider"]
        user_agent = request.headers.get("user-agent")
        try:
            verified = await finish_sign_in(
                config=current,
                provider_key=provider,
                sealed=request.cookies.get(PENDING_COOKIE),
                params=dict(request.query_params),
                clock=clock(),
            )
            result = await asyncio.to_thread(
                finish_oauth_sign_in,
                db=db(),
                clock=clock(),
                settings=settings(),
                login=verified,
                user_agent=user_agent,
            )
        except OAuthFailed as failed:
            log.warning(
                "oauth callback for %r refused: %s %s",
                provider,
                type(failed).__name__,
                failed.reason,
            )
            response = _error_page(failed)
        else:
            log.info(
                "oauth sign-in via %s for account %d%s",
                provider,
                result.account_id,
                " (new account)" if result.created else "",
            )
            response = RedirectResponse(result.next_path, status_code=303, headers=NO_STORE)
            set_session_cookie(response, result.token, settings())
        # Single use: a replayed callback finds no pending sign-in.
        response.delete_cookie(
            PENDING_COOKIE,
            path=PENDING_COOKIE_PATH,
            secure=current.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response

    return [
        Route(routes.AUTH + "/{provider}/login", login, methods=["GET"]),
        Route(routes.AUTH + "/{provider}/callback", callback, methods=["GET"]),
    ]


def _error_page(failed: OAuthFailed) -> HTMLResponse:
    message = html.escape(str(failed))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in failed · Cutout</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>Sign-in failed</h1>
<p role="alert">{message}</p>
<p><a href="{routes.SIGN_IN}">Back to sign in</a></p>
</body></html>"""
    return HTMLResponse(body, status_code=failed.status, headers=NO_STORE)
