"""Result files, served only to the signed-in account that owns them."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from app import routes, runtime
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.storage import JobFile
from app.usecases.accounts import account_id_for_token
from app.usecases.cutouts import result_file

SERVED = {JobFile.before.value: JobFile.before, JobFile.cutout.value: JobFile.cutout}


def _not_found() -> Response:
    return JSONResponse({"error": "Not found."}, status_code=404)


async def serve_job_file(request: Request) -> Response:
    token = request.cookies.get(routes.SESSION_COOKIE, "")
    kind = SERVED.get(request.path_params["name"])
    if not token or kind is None:
        return _not_found()
    account_id = await asyncio.to_thread(
        account_id_for_token, db=runtime.db(), clock=runtime.clock(), token=token
    )
    if account_id is None:
        return _not_found()
    try:
        path, view = await asyncio.to_thread(
            result_file,
            db=runtime.db(),
            settings=runtime.settings(),
            account_id=account_id,
            job_id=request.path_params["job_id"],
            kind=kind,
        )
    except JobNotFound:
        return _not_found()
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    media = "image/png" if kind is JobFile.cutout else "image/jpeg"
    if request.query_params.get("download") and kind is JobFile.cutout:
        name = view.download_name
        ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        )
    return FileResponse(path, media_type=media, headers=headers)


file_routes = [Route(routes.FILES + "/{job_id}/{name}", serve_job_file, methods=["GET"])]
