"""Pages answer at their own address, and static files say how long they may be cached."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.types import Message

from app.api.headers import cache_control
from app.api.page_paths import EditorPhoto, PagePathsMiddleware

PAGE = b"<html><head></head><body><main>Opening the editor\xe2\x80\xa6</main></body></html>"
PHOTO = EditorPhoto("/files/{job_id}/before.jpg", 1200, 800)


def served(
    static: Path, path: str, method: str = "GET", photo: EditorPhoto | None = None
) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """The path the app behind the middleware serves (and with which request headers), the
    response headers the browser gets and the page."""
    seen: list[str] = []
    sent: list[Message] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope["path"])
        headers = [(b"content-length", str(len(PAGE)).encode()), (b"etag", b'"1"')]
        if (b"accept-encoding", b"br") in scope["headers"]:
            headers.append((b"content-encoding", b"br"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE[:20], "more_body": True})
        await send({"type": "http.response.body", "body": PAGE[20:]})

    async def send(message: Message) -> None:
        sent.append(message)

    async def photo_for(request: HTTPConnection, job_id: str) -> EditorPhoto | None:
        if photo is None:
            return None
        return dataclasses.replace(photo, url=photo.url.format(job_id=job_id))

    middleware = PagePathsMiddleware(app, static_dir=lambda: static, photo_for=photo_for)
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "headers": [(b"accept-encoding", b"br")],
    }
    # On a thread of its own: a browser test earlier in the run may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(scope, None, send)).result()  # type: ignore[arg-type]
    return seen[0], sent[0]["headers"], b"".join(m.get("body", b"") for m in sent[1:])


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
    path, headers, page = served(tmp_path, "/editor/3f2a9c")
    assert (path, page) == ("/editor/_/", PAGE)  # nobody's photo: the page as built
    assert (b"content-encoding", b"br") in headers and (b"etag", b'"1"') in headers
    assert served_path(tmp_path, "/editor/3f2a9c", "HEAD") == "/editor/_/"


def test_the_owner_gets_the_photo_in_the_page_and_preloaded(tmp_path: Path) -> None:
    (tmp_path / "editor" / "_").mkdir(parents=True)
    (tmp_path / "editor" / "_" / "index.html").write_text("<html></html>")
    path, headers, page = served(tmp_path, "/editor/3f2a9c", photo=PHOTO)
    assert path == "/editor/_/"
    assert page.count(b"/files/3f2a9c/before.jpg") == 1
    assert page.startswith(b"<html><head><style>") and page.endswith(PAGE[len("<html><head>") :])
    assert b"aspect-ratio:1200/800" in page
    # Rewritten, so sent plain, with its own length and no validator of the file on disk.
    assert dict(headers) == {
        b"link": b"</files/3f2a9c/before.jpg>; rel=preload; as=image",
        b"cache-control": b"private, no-cache",
        b"content-length": str(len(page)).encode(),
    }
    # Other paths under /editor are not editor pages.
    assert served_path(tmp_path, "/editor/a/b") == "/editor/a/b"
    assert served_path(tmp_path, "/editor/../pricing") == "/editor/../pricing"
    assert served_path(tmp_path, "/editor/3f2a9c", "POST") == "/editor/3f2a9c"


def test_without_a_prerendered_editor_its_addresses_pass_through(tmp_path: Path) -> None:
    path, headers, page = served(tmp_path, "/editor/3f2a9c", photo=PHOTO)
    assert path == "/editor/3f2a9c" and page == PAGE


def test_bundles_are_cached_for_a_year_and_named_files_for_a_day() -> None:
    assert cache_control("/assets/root-2KoOSLsX.js") == "public, max-age=31536000, immutable"
    assert cache_control("/favicon.ico") == "public, max-age=86400"
    assert cache_control("/samples/coffee-thumb.jpg") == "public, max-age=86400"
    assert cache_control("/pricing") is None
    assert cache_control("/files/abc/preview.webp") is None
