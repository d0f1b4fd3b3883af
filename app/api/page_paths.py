"""Pages answer at their own address: `/pricing` is served as the prerendered `/pricing/`
instead of a redirect to it (a whole extra round trip on a phone before anything shows), and
`/editor/<job>` as the editor prerendered at a placeholder job, with its photo preloaded."""

from __future__ import annotations

import asyncio
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

# The job's photo for the page to preload, or None: only when its file route would serve it
# to this request (a preload answered 404 is a console error on the page).
PhotoFor = Callable[[HTTPConnection, str], Awaitable[str | None]]


def frontend_dir() -> Path:
    """Where the production build's prerendered pages are."""
    from reflex.utils import prerequisites
    from reflex_base import constants

    return prerequisites.get_web_dir() / constants.Dirs.STATIC


async def owned_photo(request: HTTPConnection, job_id: str) -> str | None:
    """The editor's "before" photo address, if the signed-in viewer owns the job: the same
    address and the same check as the photo's own route (app/api/files.py). Imported here:
    rxconfig loads this module (through app/frontend_plugin.py) before settings exist."""
    from app import runtime
    from app.services.jobs.cutouts import JobNotFound
    from app.services.jobs.storage import JobFile
    from app.usecases.accounts import account_id_for_token
    from app.usecases.cutouts import result_file

    token = request.cookies.get(routes.SESSION_COOKIE, "")
    if not token:
        return None
    account_id = await asyncio.to_thread(
        account_id_for_token, db=runtime.db(), clock=runtime.clock(), token=token
    )
    if account_id is None:
        return None
    try:
        await asyncio.to_thread(
            result_file,
            db=runtime.db(),
            settings=runtime.settings(),
            account_id=account_id,
            job_id=job_id,
            kind=JobFile.before,
        )
    except JobNotFound:
        return None
    return routes.file_url(job_id, JobFile.before)


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
                send = _with_preload(send, photo)
        elif self._page_folder(scope["path"]):
            path = scope["path"] + "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def _with_preload(send: Send, image: str) -> Send:
    """The photo starts loading with the page, not after the scripts run and the editor's
    state arrives: a Link header is a preload the browser acts on before reading the body."""
    link = f"<{image}>; rel=preload; as=image".encode("latin-1")

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (200, 304):
            message = dict(message, headers=[*message.get("headers", []), (b"link", link)])
        await send(message)

    return sending
