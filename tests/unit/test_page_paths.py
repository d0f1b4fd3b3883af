"""Pages answer at their own address, and static files say how long they may be cached."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.api.headers import cache_control
from app.api.page_paths import PagePathsMiddleware


def served_path(static: Path, path: str, method: str = "GET") -> str:
    seen: list[str] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope["path"])

    middleware = PagePathsMiddleware(app, static_dir=lambda: static)
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode()}
    # On a thread of its own: a browser test earlier in the run may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(scope, None, None)).result()  # type: ignore[arg-type]
    return seen[0]


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


def test_bundles_are_cached_for_a_year_and_named_files_for_a_day() -> None:
    assert cache_control("/assets/root-2KoOSLsX.js") == "public, max-age=31536000, immutable"
    assert cache_control("/favicon.ico") == "public, max-age=86400"
    assert cache_control("/samples/coffee-thumb.jpg") == "public, max-age=86400"
    assert cache_control("/pricing") is None
    assert cache_control("/files/abc/preview.webp") is None
