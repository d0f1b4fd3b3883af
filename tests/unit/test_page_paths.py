"""Pages answer at their own address, and static files say how long they may be cached."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.types import Message

from app.api.headers import cache_control
from app.api.page_paths import PagePathsMiddleware


def served(
    static: Path, path: str, method: str = "GET", photo: str | None = None
) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The path the app behind the middleware serves, and the headers the browser gets."""
    seen: list[str] = []
    sent: list[Message] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        sent.append(message)

    async def photo_for(request: HTTPConnection, job_id: str) -> str | None:
        return photo.format(job_id=job_id) if photo else None

    middleware = PagePathsMiddleware(app, static_dir=lambda: static, photo_for=photo_for)
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode()}
    # On a thread of its own: a browser test earlier in the run may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(scope, None, send)).result()  # type: ignore[arg-type]
    return seen[0], sent[0]["headers"]


def served_path(static: Path, path: str, method: str = "GET") -> str:
    return served(static, path, method)[0]


def test_a_prerendered_page_is_served_without_a_trailing_slash_redirect(tmp_path: Path) -> None:
    (tmp_path / "pricing").mkdir()
    (tmp_path / "pricing" / "index.html").write_text("<html></html>")
    (tmp_path / "assets").mkdir()
    assert served_path(tmp_path, "/pricing") == "/pricing/"
    assert served_path(tmp_path, "/pricing", "HEAD") == "/pricing/"
    # Everything else passes through untouched.
    assert served_path(tmp_path, "/pricing", "POST") == "/pricing"
    assert served_path(tmp_path, "/pricing/") == "/pricing/"
    assert served_path(tmp_path, "/assets") == "/assets"  # a folder without a page
    assert served_path(tmp_path, "/") == "/"
    assert served_path(tmp_path, "/nothing-here") == "/nothing-here"
    assert served_path(tmp_path, "/../pricing") == "/../pricing"


def test_every_editor_address_is_served_the_prerendered_editor(tmp_path: Path) -> None:
    (tmp_path / "editor" / "_").mkdir(parents=True)
    (tmp_path / "editor" / "_" / "index.html").write_text("<html></html>")
    assert served(tmp_path, "/editor/3f2a9c") == ("/editor/_/", [])
    assert served_path(tmp_path, "/editor/3f2a9c", "HEAD") == "/editor/_/"
    # The photo its owner will see is preloaded with the page; nobody else gets a preload.
    assert served(tmp_path, "/editor/3f2a9c", photo="/files/{job_id}/before.jpg")[1] == [
        (b"link", b"</files/3f2a9c/before.jpg>; rel=preload; as=image")
    ]
    # Other paths under /editor are not editor pages.
    assert served_path(tmp_path, "/editor/a/b") == "/editor/a/b"
    assert served_path(tmp_path, "/editor/../pricing") == "/editor/../pricing"
    assert served_path(tmp_path, "/editor/3f2a9c", "POST") == "/editor/3f2a9c"


def test_without_a_prerendered_editor_its_addresses_pass_through(tmp_path: Path) -> None:
    assert served(tmp_path, "/editor/3f2a9c", photo="/x") == ("/editor/3f2a9c", [])


def test_bundles_are_cached_for_a_year_and_named_files_for_a_day() -> None:
    assert cache_control("/assets/root-2KoOSLsX.js") == "public, max-age=31536000, immutable"
    assert cache_control("/favicon.ico") == "public, max-age=86400"
    assert cache_control("/samples/coffee-thumb.jpg") == "public, max-age=86400"
    assert cache_control("/pricing") is None
    assert cache_control("/files/abc/preview.webp") is None
