"""Pages answer at their own address: `/pricing` is served as the prerendered `/pricing/`
instead of a redirect to it (a whole extra round trip on a phone before anything shows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send


def frontend_dir() -> Path:
    """Where the production build's prerendered pages are."""
    from reflex.utils import prerequisites
    from reflex_base import constants

    return prerequisites.get_web_dir() / constants.Dirs.STATIC


class PagePathsMiddleware:
    def __init__(self, app: ASGIApp, *, static_dir: Callable[[], Path] = frontend_dir) -> None:
        self.app = app
        self.static_dir = static_dir

    def _page_folder(self, path: str) -> bool:
        name = path.strip("/")
        if not name or path.endswith("/") or ".." in name or "." in name.rsplit("/", 1)[-1]:
            return False
        return (self.static_dir() / name / "index.html").is_file()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and self._page_folder(scope["path"])
        ):
            path = scope["path"] + "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)
