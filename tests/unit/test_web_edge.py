"""The HTTP edge without a browser: client addresses behind proxies, cross-site posts, the
websocket handshake's cookie, headers over https, unexpected errors, private files."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.api.client import allowed_origins, client_address, same_site_post
from app.api.headers import SecurityHeadersMiddleware
from app.api.sessions import SessionCookieMiddleware
from app.permissions import make_private
from app.services.identity.auth import session_ref
from app.settings import Settings
from app.state.errors import unexpected_error
from app.web_session import REF_COOKIE, upload_refs


def run(coroutine: Any) -> None:
    """On a thread of its own: a browser test earlier in the run may own this thread's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def request(headers: dict[str, str], peer: str = "10.0.0.5") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "client": (peer, 1234)})


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.5"),  # no proxy: the header is the client's own words
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # what our one proxy saw, not the spoof
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.1", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.5"),  # fewer entries than proxies: not trusted
        (1, "", "10.0.0.5"),
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(
    hops: int, forwarded: str, expected: str
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert client_address(request(headers), hops) == expected


def test_form_posts_are_accepted_only_from_cutouts_own_pages() -> None:
    public = "http://localhost:3000"
    assert same_site_post(request({"Origin": "http://localhost:3000"}), public)
    assert same_site_post(request({"Origin": "http://127.0.0.1:3000"}), public)  # same machine
    assert same_site_post(request({}), public)  # a script, not a browser another site steers
    assert not same_site_post(request({"Origin": "https://evil.example"}), public)
    assert not same_site_post(request({"Origin": "null"}), public)
    assert not same_site_post(request({"Sec-Fetch-Site": "cross-site"}), public)
    assert not same_site_post(request({"Sec-Fetch-Site": "same-site"}), public)
    assert allowed_origins("https://cutout.example/") == ["https://cutout.example"]


def test_the_websocket_handshake_carries_a_reference_never_the_token() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    middleware = SessionCookieMiddleware(inner)
    forged = session_ref("someone else's token")
    scope = {
        "type": "websocket",
        "path": "/_event/",
        "headers": [
            (b"cookie", f"theme=dark; cutout_session=raw-token; {REF_COOKIE}={forged}".encode())
        ],
    }
    run(middleware(scope, None, None))
    run(
        middleware(
            {
                "type": "websocket",
                "path": "/_event/",
                "headers": [(b"cookie", f"{REF_COOKIE}=x".encode())],
            },
            None,
            None,
        )
    )
    cookies = [dict(s["headers"]).get(b"cookie", b"").decode() for s in seen]
    assert cookies[0] == f"theme=dark; {REF_COOKIE}={session_ref('raw-token')}"
    assert "raw-token" not in cookies[0] and forged not in cookies[0]
    assert cookies[1] == ""  # a reference the browser made up is dropped


def test_an_upload_lends_its_own_session_to_the_event_and_a_wrong_handler_gets_400() -> None:
    during: list[str | None] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        during.append(upload_refs.get("client-1", "state.handle_upload"))
        await PlainTextResponse("ok")(scope, receive, send)

    app = SessionCookieMiddleware(inner, is_upload_handler=lambda name: name.endswith("upload"))
    client = TestClient(app)
    headers = {"reflex-client-token": "client-1", "cookie": "cutout_session=tok"}
    answer = client.post(
        "/_upload", headers={**headers, "reflex-event-handler": "state.handle_upload"}
    )
    assert answer.status_code == 200 and during == [session_ref("tok")]
    assert upload_refs.get("client-1", "state.handle_upload") is None  # only while it runs
    wrong = client.post("/_upload", headers={**headers, "reflex-event-handler": "state.confirm"})
    assert wrong.status_code == 400 and wrong.json() == {
        "error": "This upload is not accepted here."
    }
    assert len(during) == 1


def failing_app() -> Starlette:
    async def boom(_request: Request) -> PlainTextResponse:
        raise RuntimeError("(1 bytes not processed) secret internals")

    async def fine(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    return Starlette(routes=[Route("/boom", boom), Route("/fine", fine)])


def test_headers_over_https_include_hsts() -> None:
    client = TestClient(SecurityHeadersMiddleware(failing_app(), public_url="https://c.example"))
    answer = client.get("/fine")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert "connect-src 'self' wss://c.example" in answer.headers["content-security-policy"]


def test_an_unexpected_error_shows_a_reference_and_logs_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SecurityHeadersMiddleware(failing_app(), public_url="http://localhost:3000")
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="cutout.errors"):
        page = client.get("/boom", headers={"Accept": "text/html"})
        api = client.get("/boom")
    assert page.status_code == api.status_code == 500
    assert "secret internals" not in page.text and "RuntimeError" not in page.text
    reference = api.json()["reference"]
    assert reference in api.json()["error"] and len(reference) == 8
    assert "reference" in page.text and page.headers["x-frame-options"] == "SAMEORIGIN"
    assert f"reference {reference}" in caplog.text
    assert "secret internals" in caplog.text and "Traceback" in caplog.text


def test_an_event_handler_error_shows_only_a_reference(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("invalid literal for int() with base 10: 'x'")
    except ValueError as error:
        with caplog.at_level(logging.ERROR, logger="cutout.errors"):
            toast = unexpected_error(error)
    shown = str(toast.args)
    assert "invalid literal" not in shown and "ValueError" not in shown
    assert "quote reference" in shown
    assert "invalid literal" in caplog.text


def test_files_cutout_writes_become_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    data = settings.data_dir
    (data / "results" / "job").mkdir(parents=True)
    for path in (data, data / "results", data / "results" / "job"):
        path.chmod(0o755)
    old = data / "results" / "job" / "cutout.png"
    old.write_bytes(b"png")
    old.chmod(0o644)
    states = tmp_path / "states"
    states.mkdir(mode=0o755)
    (states / "x.pkl").write_bytes(b"state")
    (states / "x.pkl").chmod(0o666)
    previous = os.umask(0o022)
    try:
        make_private(settings, states)
        new = data / "cutout.db"
        new.write_bytes(b"db")  # created after start-up
        modes = {
            p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in (data, data / "results" / "job", old, new, states, states / "x.pkl")
        }
    finally:
        os.umask(previous)
    assert modes == {
        "data": 0o700,
        "data/results/job": 0o700,
        "data/results/job/cutout.png": 0o600,
        "data/cutout.db": 0o600,
        "states": 0o700,
        "states/x.pkl": 0o600,
    }
