"""The remove.bg-compatible HTTP API: `POST /v1.0/removebg`, `GET /v1.0/account`, and its docs.

A remove.bg client works unchanged once its base address points here: the same fields (form,
multipart or JSON), the same headers (`X-Api-Key` in; `X-Credits-Charged`, `X-Width`, ...
out) and the same error shape, `{"errors": [{"title", "code", "detail"}]}`. These routes read
no cookie, so any site may call them (`Access-Control-Allow-Origin: *`, see `PublicApiCors`);
the key is the only credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from app import routes
from app.api.removebg_openapi import openapi
from app.services import api_limits, url_fetch
from app.services.clock import Clock
from app.services.errors import report
from app.services.imaging.removebg_options import (
    BG_FIELDS,
    SOURCE_FIELDS,
    OptionError,
    given,
    one_of,
    parse,
)
from app.services.jobs import dispatch
from app.services.jobs.workers import run_in_pool
from app.settings import Settings
from app.usecases import api_calls
from app.usecases.api_calls import ApiRefused, Caller, credits_text

log = logging.getLogger("cutout.api")

EXPOSED_HEADERS = (
    "X-Credits-Charged, X-Width, X-Height, X-Type, X-Foreground-Top, X-Foreground-Left, "
    "X-Foreground-Width, X-Foreground-Height, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Reset, Retry-After"
)
NO_STORE = {"Cache-Control": "no-store"}
# CUTOUT_JOBS=celery: this process's way to Celery workers for the model step.
_api_queue = dispatch.CeleryApiQueue()


def errors(status: int, code: str, title: str, detail: str, **headers: str) -> JSONResponse:
    body = {"errors": [{"title": title, "code": code, "detail": detail}]}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **headers})


def option_error(error: OptionError) -> JSONResponse:
    return errors(400, error.code, error.title, error.detail)


def rate_headers(state: api_limits.RateState) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(state.reset_at),
    }


def removebg_routes(
    *,
    db: Callable[[], Engine],
    clock: Callable[[], Clock],
    settings: Callable[[], Settings],
    limiter: Callable[[], api_limits.RateLimiter],
) -> list[BaseRoute]:
    """The API's routes, reading engine, clock, settings and limiter per request."""

    async def caller_of(request: Request) -> Caller:
        return await asyncio.to_thread(
            api_calls.authenticate,
            db=db(),
            clock=clock(),
            raw_key=request.headers.get("x-api-key"),
        )

    async def removebg(request: Request) -> Response:
        if request.method != "POST":
            return errors(405, "method_not_allowed", "Method not allowed", "use POST", Allow="POST")
        try:
            caller = await caller_of(request)
            current = settings()
            fields = await _fields(request, current)
            options = parse(fields)
            image = await _source(fields, current)
            background = await _background(fields, current)
            call = dict(
                db=db(),
                settings=current,
                clock=clock(),
                limiter=limiter(),
                caller=caller,
                image_data=image,
                options=options,
                background_data=background,
            )
            if current.jobs == "celery":
                result = await api_calls.remove_background_queued(**call, queue=_api_queue)
            else:
                result = await run_in_pool(current.workers, api_calls.remove_background, **call)
        except ApiRefused as refused:
            return errors(refused.status, refused.code, refused.title, refused.detail)
        except OptionError as bad:
            return option_error(bad)
        except dispatch.ApiCallTimedOut:
            return errors(
                503,
                "timeout",
                "Timed out",
                "no image worker finished this call in time; nothing was charged, try again",
                **{"Retry-After": "30"},
            )
        except api_limits.RateLimited as limited:
            return errors(
                429,
                "rate_limit_exceeded",
                "Rate limit exceeded",
                f"over {limited.state.limit} megapixel-images a minute; "
                f"retry in {limited.retry_after} s",
                **{"Retry-After": str(limited.retry_after), **rate_headers(limited.state)},
            )
        except Exception as error:  # a reference to quote, never the exception's text
            ref = report(error, "POST /v1.0/removebg")
            return errors(500, "internal_error", "Internal error", f"reference {ref}")
        exported = result.exported
        left, top, width, height = exported.subject
        headers = {
            **NO_STORE,
            "X-Credits-Charged": credits_text(result.charged),
            "X-Width": str(exported.width),
            "X-Height": str(exported.height),
            "X-Type": result.type,
            "X-Foreground-Top": str(top),
            "X-Foreground-Left": str(left),
            "X-Foreground-Width": str(width),
            "X-Foreground-Height": str(height),
            **rate_headers(result.rate),
        }
        if "application/json" in request.headers.get("accept", ""):
            data = {
                "result_b64": base64.b64encode(exported.data).decode("ascii"),
                "foreground_top": top,
                "foreground_left": left,
                "foreground_width": width,
                "foreground_height": height,
            }
            return JSONResponse({"data": data}, headers=headers)
        return Response(exported.data, media_type=exported.media_type, headers=headers)

    async def account(request: Request) -> Response:
        try:
            caller = await caller_of(request)
        except ApiRefused as refused:
            return errors(refused.status, refused.code, refused.title, refused.detail)
        found = await asyncio.to_thread(
            api_calls.api_credits, db=db(), clock=clock(), caller=caller
        )
        credits = {
            "total": _number(found.total),
            "subscription": _number(found.subscription),
            "payg": _number(found.payg),
            "enterprise": _number(found.enterprise),
        }
        attributes = {"credits": credits, "api": {"free_calls": 0, "sizes": "all"}}
        return JSONResponse({"data": {"attributes": attributes}}, headers=NO_STORE)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi())

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_PAGE)

    async def docs_init(request: Request) -> Response:
        return Response(DOCS_INIT, media_type="text/javascript")

    return [
        Route(routes.API_REMOVEBG, removebg, methods=["GET", "POST"]),
        Route(routes.API_ACCOUNT, account, methods=["GET"]),
        Route(routes.API_OPENAPI, openapi_json, methods=["GET"]),
        Route(routes.API_DOCS, docs, methods=["GET"]),
        Route(routes.API_DOCS_ASSETS + "/init.js", docs_init, methods=["GET"]),
        Mount(routes.API_DOCS_ASSETS, app=StaticFiles(directory=str(swagger_ui_path))),
    ]


def _number(milli: int) -> int | float:
    """Credits as a JSON number: whole credits as integers, others with their decimals."""
    return milli // 1000 if milli % 1000 == 0 else float(credits_text(milli))


def body_cap(settings: Settings) -> int:
    """The photo and a background, either base64-encoded (a third larger), and the fields."""
    return 3 * settings.max_upload_bytes + 64 * 1024


class _BodyTooLarge(Exception):
    pass


def _too_large(cap: int) -> OptionError:
    return OptionError("file_too_large", f"the request is over {cap // 2**20} MB")


async def _fields(request: Request, settings: Settings) -> dict[str, Any]:
    """The request's fields, whatever way they came; files as bytes (empty ones left out).

    A multipart form is parsed as it arrives (its files spool to disk past 1 MB), so the photo
    is held in memory once, not also as the raw body and a copy of it. JSON and url-encoded
    bodies are read whole, up to the cap. A body declared over the cap is refused unread.
    """
    cap = body_cap(settings)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _form(request, cap)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise _too_large(cap)
    if kind == "application/json":
        try:
            text = body.decode(json.detect_encoding(body))  # as json.loads(bytes) reads it
            body.clear()  # the text alone is parsed: one copy of a base64 photo fewer
            fields = json.loads(text) if text else {}
        except (ValueError, UnicodeDecodeError):
            raise OptionError("invalid_request", "the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise OptionError("invalid_request", "the JSON body must be an object")
        return fields
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if not body:
        return {}
    raise OptionError(
        "invalid_request",
        "send multipart/form-data, application/x-www-form-urlencoded or application/json",
    )


# What base64 needs escaped in a url-encoded form: '+', '/' and '=' (either case of hex).
_BASE64_ESCAPES = (
    (b"%2B", b"+"),
    (b"%2b", b"+"),
    (b"%2F", b"/"),
    (b"%2f", b"/"),
    (b"%3D", b"="),
    (b"%3d", b"="),
)
# Escapes left in one field after those: more than any option or URL needs.
MAX_OTHER_ESCAPES = 4096
MAX_FORM_FIELDS = 64


def _urlencoded(body: bytearray) -> dict[str, Any]:
    """A url-encoded body's fields (the last of a repeated name wins, as in a multipart form);
    `body` is consumed (emptied).

    Python's own decoder splits a value at every escape: a base64 photo has a '+' or '/' about
    every 30 characters, and decoding one took twenty times the photo's size in memory. Here
    base64's escapes are undone by replacing them across the whole value first, and a field
    still holding thousands of escapes is refused rather than split.
    """
    fields: dict[str, Any] = {}
    pairs = [pair for pair in body.split(b"&") if pair]
    body.clear()  # consumed: each copy below lives only while its field is decoded
    if len(pairs) > MAX_FORM_FIELDS:
        raise OptionError("invalid_request", f"the form has more than {MAX_FORM_FIELDS} fields")
    pairs.reverse()
    while pairs:
        name, _, value = pairs.pop().partition(b"=")
        fields[_unescape(name)] = _unescape(value)
    return fields


def _unescape(raw: bytearray) -> str:
    raw = raw.replace(b"+", b" ")
    for escaped, plain in _BASE64_ESCAPES:
        if escaped in raw:
            raw = raw.replace(escaped, plain)
    if raw.count(b"%") > MAX_OTHER_ESCAPES:
        raise OptionError(
            "invalid_request",
            f"a form field holds over {MAX_OTHER_ESCAPES} percent-escapes; send the photo "
            "as multipart/form-data or base64",
        )
    if b"%" in raw:
        return unquote_to_bytes(bytes(raw)).decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


async def _form(request: Request, cap: int) -> dict[str, Any]:
    """A multipart form, parsed as it arrives, its body counted against the cap."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:  # a body sent without its length, or longer than it said
                raise _BodyTooLarge
        return message

    try:
        async with Request(request.scope, counted).form(
            max_files=4, max_fields=MAX_FORM_FIELDS, max_part_size=cap
        ) as form:
            fields: dict[str, Any] = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    fields[name] = data or None
                else:
                    fields[name] = value
            return fields
    except _BodyTooLarge:
        raise _too_large(cap) from None
    except HTTPException as bad:
        raise OptionError("invalid_request", f"the form could not be read: {bad.detail}") from None
    except (MultiPartException, ValueError) as bad:  # outside an app's scope, or a parser's own
        raise OptionError("invalid_request", f"the form could not be read: {bad}") from None


def _fetch_rules(settings: Settings) -> url_fetch.FetchRules:
    return url_fetch.FetchRules(
        max_bytes=settings.max_upload_bytes,
        timeout_seconds=settings.api_fetch_timeout_seconds,
        allow_private=settings.api_allow_private_urls,
    )


async def _source(fields: dict[str, Any], settings: Settings) -> bytes:
    name = one_of(fields, SOURCE_FIELDS, missing="missing_source", many="multiple_sources")
    value = fields[name]
    if name == "image_url":
        return await url_fetch.fetch(str(value), _fetch_rules(settings), field="image_url")
    if name == "image_file":
        if not isinstance(value, bytes):
            raise OptionError(
                "failed_to_read_image",
                "image_file must be a file in a multipart form; send image_file_b64 otherwise",
            )
        return value
    return _base64(value, "image_file_b64", "failed_to_read_image")


async def _background(fields: dict[str, Any], settings: Settings) -> bytes | None:
    name = one_of(fields, BG_FIELDS, missing=None, many="multiple_bg_sources")
    if name == "bg_image_url":
        rules = _fetch_rules(settings)
        return await url_fetch.fetch(str(fields[name]), rules, field="bg_image_url")
    if name == "bg_image_file":
        value = fields[name]
        if not isinstance(value, bytes):
            raise OptionError("failed_to_read_bg_image", "bg_image_file must be a file")
        return value
    return None


def _base64(value: Any, field: str, code: str) -> bytes:
    if not isinstance(value, str) or not given(value):
        raise OptionError(code, f"{field} must be a base64 string")
    text = value.strip()
    if text.startswith("data:") and "," in text:  # a data: URL, as browsers make them
        text = text.split(",", 1)[1]
    try:
        # A form client that forgot to escape '+' sends it as a space; line breaks are wrapping.
        text = "".join(text.replace(" ", "+").split())
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise OptionError(code, f"{field} is not valid base64") from None


class PublicApiCors:
    """Any origin may call the key-only API routes; everything else keeps the strict CORS.

    Sits outside Reflex's own CORS middleware (which allows Cutout's origin only, with
    cookies) so that a preflight for `/v1.0/...` from another site is answered here.
    """

    def __init__(self, app: ASGIApp, *, prefix: str = routes.API_BASE + "/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope.get("headers") or [])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in request_headers:
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "X-Api-Key, Content-Type, Accept",
                    "Access-Control-Max-Age": "600",
                },
            )
            await preflight(scope, receive, send)
            return

        async def send_public(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name in ("access-control-allow-credentials", "vary", "set-cookie"):
                    del headers[name]
                headers["Access-Control-Allow-Origin"] = "*"
                headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_public)


# Swagger UI from the swagger-ui-bundle package, served from here: nothing comes from a CDN,
# and the page's script is a file of its own (no inline script).
DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference · Cutout</title>
<link rel="stylesheet" href="{routes.API_DOCS_ASSETS}/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="{routes.API_DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{routes.API_DOCS_ASSETS}/init.js"></script>
</body></html>"""
DOCS_INIT = f"""window.ui = SwaggerUIBundle({{
  url: "{routes.API_OPENAPI}",
  dom_id: "#swagger-ui",
  deepLinking: true,
}});
"""
