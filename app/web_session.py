"""How a browser's session reaches Reflex events without its token ever entering Reflex state.

The session cookie is HttpOnly: page scripts never see it, so it cannot travel in an event.
Reflex copies the websocket's handshake headers (cookies included) into the state it pickles
under `.states/`, so `app.api.sessions` rewrites the handshake before Reflex reads it: the
token is replaced by its reference (`auth.session_ref`, the hash the database keeps), which
is checked against the database on every event and is worthless outside this server.

Uploads arrive over plain HTTP (Reflex's `/_upload`), whose headers Reflex does not hand to
the event; `UploadRefs` carries the upload request's own reference to the event it starts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from app.routes import SESSION_COOKIE

# The cookie name the rewritten handshake carries the reference under. A browser cannot set
# it: every incoming cookie of that name is dropped before the reference is added.
REF_COOKIE = "cutout_session_ref"


def parse_cookies(header: str) -> list[tuple[str, str]]:
    """(name, value) pairs of a Cookie header, in order; malformed pieces are skipped."""
    pairs = []
    for piece in header.split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs


def cookie_value(header: str, name: str) -> str:
    """The first value of a cookie in a Cookie header ("" when absent)."""
    for key, value in parse_cookies(header):
        if key == name:
            return value
    return ""


def without_session_cookies(header: str) -> str:
    """The Cookie header with the session token and any would-be reference taken out."""
    kept = [f"{k}={v}" for k, v in parse_cookies(header) if k not in (SESSION_COOKIE, REF_COOKIE)]
    return "; ".join(kept)


class UploadRefs:
    """Session references of the uploads in flight, by (Reflex client token, handler name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[tuple[str, str], list[str]] = defaultdict(list)

    @contextmanager
    def registered(self, client_token: str, handler: str, ref: str) -> Iterator[None]:
        key = (client_token, handler)
        with self._lock:
            self._refs[key].append(ref)
        try:
            yield
        finally:
            with self._lock:
                self._refs[key].remove(ref)
                if not self._refs[key]:
                    del self._refs[key]

    def get(self, client_token: str, handler: str) -> str | None:
        """The reference of the upload request running this handler; None: not an upload."""
        with self._lock:
            refs = self._refs.get((client_token, handler))
            return refs[-1] if refs else None


upload_refs = UploadRefs()
