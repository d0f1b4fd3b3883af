"""Fetching an image someone named by URL (the API's image_url, bg_image_url), safely.

A size cap, a time limit and at most five redirects; every hop's address is resolved here and
refused when it is loopback, private, link-local or otherwise not public (unless the operator
allows it), and the connection goes to the very address that was checked, so a name that
resolves differently a moment later (DNS rebinding) cannot sneak past the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from app.services.imaging.removebg_options import OptionError

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class FetchRules:
    max_bytes: int
    timeout_seconds: float
    allow_private: bool = False


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def fetch(url: str, rules: FetchRules, *, field: str = "image_url") -> bytes:
    """The body at `url`, or OptionError naming what was wrong (nothing is kept on failure)."""
    try:
        return await asyncio.wait_for(_fetch(url, rules, field), rules.timeout_seconds)
    except TimeoutError:
        raise OptionError(
            "failed_to_download", f"{field} took longer than {rules.timeout_seconds:g} s"
        ) from None


async def _fetch(url: str, rules: FetchRules, field: str) -> bytes:
    async with httpx.AsyncClient(follow_redirects=False, timeout=rules.timeout_seconds) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = _checked(url, field)
            address = await _address(parts.hostname or "", parts.port, rules, field)
            pinned = urlunsplit(parts._replace(netloc=_netloc(address, parts.port)))
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "image/*"}
            extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
            try:
                async with client.stream(
                    "GET", pinned, headers=headers, extensions=extensions
                ) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise OptionError(
                            "failed_to_download", f"{field} answered HTTP {response.status_code}"
                        )
                    return await _body(response, rules.max_bytes, field)
            except httpx.HTTPError as error:
                raise OptionError(
                    "failed_to_download", f"{field} could not be fetched ({type(error).__name__})"
                ) from None
    raise OptionError("failed_to_download", f"{field} redirected more than {MAX_REDIRECTS} times")


def _checked(url: str, field: str):  # type: ignore[no-untyped-def]
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise OptionError("invalid_url", f"{field} is not a URL of at most {MAX_URL_LENGTH} chars")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise OptionError("invalid_url", f"{field} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError("invalid_url", f"{field} must be an http or https URL")
    return parts


async def _address(host: str, port: int | None, rules: FetchRules, field: str) -> str:
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port or 80, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise OptionError("failed_to_download", f"{field}'s host {host!r} was not found") from None
    addresses = [str(info[4][0]) for info in found]
    if not rules.allow_private and not all(is_public(a) for a in addresses):
        raise OptionError(
            "url_not_allowed",
            f"{field} points at a loopback, private or link-local address; use a public URL",
        )
    return addresses[0]


def _netloc(address: str, port: int | None) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if port else host


async def _body(response: httpx.Response, max_bytes: int, field: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OptionError("file_too_large", f"{field} is over {max_bytes // (1024 * 1024)} MB")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise OptionError("file_too_large", f"{field} is over {max_bytes // (1024 * 1024)} MB")
    return bytes(body)
