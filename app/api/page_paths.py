"""Pages answer at their own address: `/pricing` is served as the prerendered `/pricing/`
instead of a redirect to it (a whole extra round trip on a phone before anything shows), and
`/editor/<job>` as the editor prerendered at a placeholder job, showing its owner's photo
before any script runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import routes

# The editor as it first renders for any job ("Opening the editor…" in the page shell),
# prerendered once at this address: React Router matches /editor/<job> on the client from the
# browser's own address, and nothing the page renders before its state arrives names the job,
# so the same HTML hydrates at every job's address. Without it the editor was the SPA
# fallback, blank until ~230 KB of scripts ran. No job id is "_" (they are hex).
EDITOR_SHELL = routes.EDITOR + "/_"
EDITOR_PAGE = re.compile(re.escape(routes.EDITOR) + r"/([A-Za-z0-9_-]{1,64})")


@dataclasses.dataclass(frozen=True)
class EditorPhoto:
    url: str
    width: int
    height: int


# The job's photo for the page to show early, or None: only when its file route would serve it
# to this request (a preload answered 404 is a console error on the page).
PhotoFor = Callable[[HTTPConnection, str], Awaitable[EditorPhoto | None]]


def frontend_dir() -> Path:
    """Where the production build's prerendered pages are."""
    from reflex.utils import prerequisites
    from reflex_base import constants

    return prerequisites.get_web_dir() / constants.Dirs.STATIC


async def owned_photo(request: HTTPConnection, job_id: str) -> EditorPhoto | None:
    """The editor's "before" photo address, if the signed-in viewer owns the job: the same
    address and the same check as the photo's own route (app/api/files.py). Imported here:
    rxconfig loads this module (through app/frontend_plugin.py) before settings exist."""
    from app import runtime
    from app.api.client import signed_in_account
    from app.services.jobs.cutouts import JobNotFound
    from app.services.jobs.storage import JobFile
    from app.usecases.cutouts import result_file

    account_id = await signed_in_account(request)
    if account_id is None:
        return None
    try:
        _, job = await asyncio.to_thread(
            result_file,
            db=runtime.db(),
            settings=runtime.settings(),
            account_id=account_id,
            job_id=job_id,
            kind=JobFile.before,
        )
    except JobNotFound:
        return None
    return EditorPhoto(routes.file_url(job_id, JobFile.before), job.width, job.height)


class PagePathsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        static_dir: Callable[[], Path] = frontend_dir,
        photo_for: PhotoFor = owned_photo,
    ) -> None:
        self.app = app
        self.static_dir = static_dir
        self.photo_for = photo_for

    def _page_folder(self, path: str) -> bool:
        name = path.strip("/")
        if not name or path.endswith("/") or ".." in name or "." in name.rsplit("/", 1)[-1]:
            return False
        return (self.static_dir() / name / "index.html").is_file()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        editor = EDITOR_PAGE.fullmatch(scope["path"])
        if editor and self._page_folder(EDITOR_SHELL):
            photo = None
            if scope["method"] == "GET":
                photo = await self.photo_for(HTTPConnection(scope), editor[1])
            path = EDITOR_SHELL + "/"
            scope = dict(scope, path=path, raw_path=path.encode())
            if photo is not None:
                scope = _uncompressed_and_unconditional(scope)
                send = _with_photo(send, photo)
        elif self._page_folder(scope["path"]):
            path = scope["path"] + "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def _uncompressed_and_unconditional(scope: Scope) -> Scope:
    """The page as plain HTML, never a 304: its body is rewritten on the way out."""
    dropped = {b"accept-encoding", b"if-none-match", b"if-modified-since"}
    # Without the server's pathsend extension the file comes as body messages to rewrite.
    extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != PATHSEND}
    return dict(
        scope,
        headers=[(k, v) for k, v in scope["headers"] if k not in dropped],
        extensions=extensions,
    )


def photo_style(photo: EditorPhoto) -> str:
    """The photo where the editor will show it, while "Opening the editor…" is all the page
    holds: it paints with the page instead of after the scripts, the websocket and the
    editor's state. CSS outside React's tree (a <style> in <head>, a pseudo-element), so
    hydration finds the tree it rendered; the rule stops matching once the editor is ready."""
    ratio = photo.width / max(1, photo.height)
    return (
        "<style>main>div:has(>[role=status])::after{content:'';"
        f"width:min(100%,calc(62vh*{ratio:.4f}));aspect-ratio:{photo.width}/{photo.height};"
        f"background:url({json.dumps(photo.url)}) center/contain no-repeat}}</style>"
    )


def _with_photo(send: Send, photo: EditorPhoto) -> Send:
    """The photo starts loading with the page (a Link header is a preload the browser acts on
    before reading the body) and shows in the page before its scripts run."""
    link = f"<{photo.url}>; rel=preload; as=image".encode("latin-1")
    start: Message | None = None
    body = bytearray()

    async def sending(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        page = bytes(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k not in KEPT_OUT]
        if start["status"] == 200:
            page = page.replace(b"</head>", photo_style(photo).encode() + b"</head>", 1)
            # Names one account's photo: no shared cache may hand it to anyone else.
            headers += [(b"link", link), (b"cache-control", b"private, no-cache")]
        headers.append((b"content-length", str(len(page)).encode()))
        await send(dict(start, headers=headers))
        await send({"type": "http.response.body", "body": page})

    return sending


PATHSEND = "http.response.pathsend"
# Headers that described the file on disk, not the rewritten page.
KEPT_OUT = {b"content-length", b"etag", b"last-modified", b"cache-control"}
