"""The editor's preview and exports, served only to the signed-in account that owns the job."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from app import routes, runtime
from app.api.client import signed_in_account
from app.services.imaging.editor import MEDIA_TYPES
from app.services.jobs.cutouts import JobNotFound
from app.usecases.editing import editor_file, export_download_name

MEDIA_BY_EXTENSION = {"jpg": MEDIA_TYPES["jpeg"], "png": MEDIA_TYPES["png"], "webp": "image/webp"}


def _not_found() -> Response:
    return JSONResponse({"error": "Not found."}, status_code=404)


async def serve_editor_file(request: Request) -> Response:
    account_id = await signed_in_account(request)
    if account_id is None:
        return _not_found()
    name = request.path_params["name"]
    try:
        path, job = await asyncio.to_thread(
            editor_file,
            db=runtime.db(),
            settings=runtime.settings(),
            account_id=account_id,
            job_id=request.path_params["job_id"],
            name=name,
        )
    except JobNotFound:
        return _not_found()
    extension = name.rpartition(".")[2]
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if request.query_params.get("download"):
        download = export_download_name(job, extension)
        ascii_name = download.encode("ascii", "replace").decode()
        ascii_name = ascii_name.replace("?", "_").replace('"', "_")
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download)}"
        )
    return FileResponse(path, media_type=MEDIA_BY_EXTENSION[extension], headers=headers)


editor_file_routes = [
    Route(routes.EDITOR_FILES + "/{job_id}/{name}", serve_editor_file, methods=["GET"])
]
