"""A bulk batch's results as one ZIP, streamed: one result file in memory at a time, in chunks.

Served only to the signed-in account that owns the batch (the session cookie, as for files).
The PNGs are compressed already, so they are stored, not deflated again: the ZIP costs no CPU.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app import routes, runtime
from app.api.client import signed_in_account
from app.usecases.bulk import BatchNotFound, zip_members

CHUNK = 1024 * 1024


class _Spout:
    """A write-only file for ZipFile whose written bytes are taken out as they pile up."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def stream_zip(members: list[tuple[str, Path]]) -> Iterator[bytes]:
    """The ZIP's bytes, a chunk at a time; ZipFile writes data descriptors as the stream is
    not seekable, so no member is ever held whole."""
    spout = _Spout()
    with zipfile.ZipFile(spout, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for name, path in members:
            with path.open("rb") as source, archive.open(name, mode="w", force_zip64=True) as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    yield spout.take()
            yield spout.take()
    yield spout.take()


def _not_found() -> Response:
    return JSONResponse({"error": "Not found."}, status_code=404)


async def serve_batch_zip(request: Request) -> Response:
    account_id = await signed_in_account(request)
    if account_id is None:
        return _not_found()
    try:
        members = await asyncio.to_thread(
            zip_members,
            db=runtime.db(),
            settings=runtime.settings(),
            account_id=account_id,
            batch_id=request.path_params["batch_id"],
        )
    except BatchNotFound:
        return _not_found()
    if not members:
        return JSONResponse({"error": "No finished photos in this batch yet."}, status_code=404)
    headers = {
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": 'attachment; filename="cutouts.zip"',
    }
    return StreamingResponse(stream_zip(members), media_type="application/zip", headers=headers)


bulk_zip_routes = [Route(routes.BULK_ZIP + "/{batch_id}", serve_batch_zip, methods=["GET"])]
