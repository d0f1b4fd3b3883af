"""Server-side cap on upload size: Reflex only checks it in the browser (reflex#6115)."""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart framing around one file: boundaries, headers, the event arguments.
MULTIPART_ALLOWANCE = 64 * 1024


class UploadTooLarge(Exception):
    pass


def _message(limit: int) -> str:
    return f"The upload is larger than {limit / (1024 * 1024):.0f} MB, the limit per photo."


class UploadLimitMiddleware:
    """Refuse an oversized body on the upload route before it is parsed or stored."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, prefix: str = "/_upload") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes + MULTIPART_ALLOWANCE
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await self._refuse(send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    exceeded = True
                    raise UploadTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the inner app's error page for our exception; the 413 goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(UploadTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": _message(self.max_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
