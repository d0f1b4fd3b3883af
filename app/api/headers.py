"""Security headers on every page and route, and a generic answer (with a reference) instead of
whatever an unexpected exception would have sent."""

from __future__ import annotations

import html
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.client import allowed_origins
from app.services.errors import generic_message, report


def content_security_policy(public_url: str) -> str:
    """What the Reflex frontend needs and no more: its own scripts (plus the inline bootstrap
    React Router writes into each prerendered page), inline styles (Radix and emotion inject
    them at run time), images from itself and from blob:/data: previews, and its websocket."""
    # 'self' covers the same origin's ws:/wss: in current browsers; the explicit ones are for
    # older ones (an IPv6 literal cannot be written in a CSP source, so it is left to 'self').
    sockets = " ".join(
        origin.replace("https://", "wss://").replace("http://", "ws://")
        for origin in allowed_origins(public_url)
        if "[" not in origin
    )
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' 'unsafe-inline'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src 'self' {sockets}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ]
    )


# Vite names its bundles after their content: they never change under one name.
IMMUTABLE_PREFIXES = ("/assets/",)
# Files from assets/ keep their names across releases: cached for a day.
DAILY_PREFIXES = ("/samples/", "/favicon.ico", "/apple-touch-icon.png")


def cache_control(path: str) -> str | None:
    """How long a browser may keep a static file; None for pages and routes (their own)."""
    if path.startswith(IMMUTABLE_PREFIXES):
        return "public, max-age=31536000, immutable"
    if path.startswith(DAILY_PREFIXES):
        return "public, max-age=86400"
    return None


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": content_security_policy(public_url),
            "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        if public_url.lower().startswith("https://"):
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: list[Message] = []  # a 5xx is held back until we know no exception follows it

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:  # a route's own stricter value wins
                        headers[name] = value
                lifetime = cache_control(scope.get("path", ""))
                if lifetime and message["status"] == 200 and "cache-control" not in headers:
                    headers["Cache-Control"] = lifetime
                if message["status"] >= 500:
                    held.append(message)
                    return
                started = True
            elif held:
                held.append(message)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as error:
            ref = report(error, f"{scope.get('method')} {scope.get('path')}")
            if not started:
                await self._generic(scope, send, ref)
            return
        for message in held:
            await send(message)

    async def _generic(self, scope: Scope, send: Send, ref: str) -> None:
        message = generic_message(ref)
        if "text/html" in Headers(scope=scope).get("accept", ""):
            body = (
                '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                "<title>Error · Cutout</title></head>"
                '<body style="font-family: system-ui, sans-serif; max-width: 32rem; '
                'margin: 3rem auto; padding: 0 1rem"><h1>Something went wrong</h1>'
                f'<p role="alert">{html.escape(message)}</p><p><a href="/">Back to Cutout</a></p>'
                "</body></html>"
            ).encode()
            kind = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"error": message, "reference": ref}).encode()
            kind = b"application/json"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})
