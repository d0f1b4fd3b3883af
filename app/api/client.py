"""Who sent a request: the client address behind trusted proxies, whether a form post
came from Cutout's own pages, and the account its session cookie signs in."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from app import routes, runtime
from app.usecases.accounts import account_id_for_token

# A loopback host as urlsplit names it, and as it is written in an origin.
LOOPBACK = {"localhost": "localhost", "127.0.0.1": "127.0.0.1", "::1": "[::1]"}


def client_address(connection: HTTPConnection, trusted_proxy_hops: int) -> str:
    """The address to throttle by. X-Forwarded-For counts only for the number of proxies the
    operator put in front (CUTOUT_TRUSTED_PROXY_HOPS): each appends the address it saw, so the
    entry `hops` from the end is the one the outermost trusted proxy saw. Anything before it
    was written by the client and could be anything."""
    peer = connection.client.host if connection.client else "unknown"
    if trusted_proxy_hops <= 0:
        return peer
    forwarded = [
        part.strip()
        for header in connection.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    if len(forwarded) < trusted_proxy_hops:
        return peer
    return forwarded[-trusted_proxy_hops]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(public_url: str) -> list[str]:
    """The origins Cutout's pages are served from: CUTOUT_PUBLIC_URL's, plus, when that is a
    loopback address, the other spellings of the same loopback port (people type either)."""
    origin = origin_of(public_url)
    parts = urlsplit(public_url)
    if parts.hostname not in LOOPBACK:
        return [origin]
    port = f":{parts.port}" if parts.port else ""
    return [f"{parts.scheme}://{host}{port}".lower() for host in LOOPBACK.values()]


def same_site_post(connection: HTTPConnection, public_url: str) -> bool:
    """False for a form post another site made the browser send (login CSRF and friends).

    Browsers send Origin with every POST and Sec-Fetch-Site with every request; a client that
    sends neither (a script, the benchmark) is not a browser another site can steer."""
    if connection.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = connection.headers.get("origin")
    return origin is None or origin.lower() in allowed_origins(public_url)


async def signed_in_account(connection: HTTPConnection) -> int | None:
    """The account the request's session cookie signs in, or None; looked up off the event
    loop (a database read)."""
    token = connection.cookies.get(routes.SESSION_COOKIE, "")
    if not token:
        return None
    return await asyncio.to_thread(
        account_id_for_token, db=runtime.db(), clock=runtime.clock(), token=token
    )
