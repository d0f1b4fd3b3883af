"""The session cookie at the edge: set and cleared by HTTP routes only, kept out of Reflex.

`SessionCookieMiddleware` wraps the whole app (pages, routes, Reflex's websocket and upload
route). See `app/web_session.py` for why the websocket handshake is rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.routes import SESSION_COOKIE
from app.services.identity.auth import session_ref
from app.settings import Settings
from app.web_session import (
    REF_COOKIE,
    cookie_value,
    parse_cookies,
    upload_refs,
    without_session_cookies,
)

UPLOAD_PATH = "/_upload"


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    """The one place the session cookie is written: HttpOnly (page scripts never see it),
    SameSite=Lax (other sites' requests carry it only on top-level navigation), Secure over
    https, and living as long as the session itself."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 24 * 3600,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=settings.secure_cookies, httponly=True, samesite="lax"
    )


class SessionCookieMiddleware:
    """Websocket handshakes: the session token becomes its reference before Reflex copies the
    headers into state. Uploads: the request's own reference is lent to the event it starts,
    and a handler name that is not an upload handler gets 400. Every request: a
    reference-named cookie sent by the browser is dropped (only this middleware makes one)."""

    def __init__(
        self, app: ASGIApp, *, is_upload_handler: Callable[[str], bool] | None = None
    ) -> None:
        self.app = app
        self.is_upload_handler = is_upload_handler or reflex_upload_handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope)
        cookies = "; ".join(raw.getlist("cookie"))
        token = cookie_value(cookies, SESSION_COOKIE)
        ref = session_ref(token) if token else ""
        if scope["type"] == "websocket":
            kept = without_session_cookies(cookies)
            if ref:
                kept = f"{kept}; {REF_COOKIE}={ref}" if kept else f"{REF_COOKIE}={ref}"
            scope = _with_cookie_header(scope, kept)
            await self.app(scope, receive, send)
            return
        if REF_COOKIE in cookies:
            scope = _with_cookie_header(scope, _without_ref(cookies))
        if scope["path"] == UPLOAD_PATH and scope["method"] == "POST":
            handler = raw.get("reflex-event-handler", "")
            client_token = raw.get("reflex-client-token", "")
            if handler and client_token:
                if not self.is_upload_handler(handler):
                    await _refuse_upload(send)
                    return
                with upload_refs.registered(client_token, handler, ref):
                    await self.app(scope, receive, send)
                return
        await self.app(scope, receive, send)


def reflex_upload_handler(name: str) -> bool:
    """Whether Reflex's upload route can run the handler `name`. It answers an unknown name
    with 400 but any other handler with a 500 (an exception), so the name is checked first."""
    from reflex_base.event import (
        resolve_upload_chunk_handler_param,
        resolve_upload_handler_param,
    )
    from reflex_base.registry import RegistrationContext
    from reflex_base.utils.exceptions import UploadTypeError, UploadValueError

    registered = RegistrationContext.get().event_handlers.get(name)
    if registered is None:
        return False
    handler = registered.handler
    resolve = (
        resolve_upload_chunk_handler_param
        if handler.is_background
        else resolve_upload_handler_param
    )
    try:
        resolve(handler)
    except (UploadTypeError, UploadValueError):
        return False
    return True


def _without_ref(cookies: str) -> str:
    return "; ".join(f"{k}={v}" for k, v in parse_cookies(cookies) if k != REF_COOKIE)


def _with_cookie_header(scope: Scope, cookies: str) -> Scope:
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"]
    if cookies:
        headers.append((b"cookie", cookies.encode("latin-1")))
    return {**scope, "headers": headers}


async def _refuse_upload(send: Send) -> None:
    body = json.dumps({"error": "This upload is not accepted here."}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
