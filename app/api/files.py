"""Result files, served only to the signed-in account that owns them; a signed-out visitor's
free preview (its reduced original and cutout only) to whoever holds its unguessable job id."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from app import routes, runtime
from app.api.client import signed_in_account
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.storage import JobFile
from app.usecases.cutouts import result_file
from app.usecases.trial import trial_file

SERVED = {kind.value: kind for kind in (JobFile.before, JobFile.cutout, JobFile.preview)}
MEDIA = {JobFile.before: "image/jpeg", JobFile.cutout: "image/png", JobFile.preview: "image/webp"}
HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


def _not_found() -> Response:
    return JSONResponse({"error": "Not found."}, status_code=404)


async def _serve_trial_file(job_id: str, kind: JobFile) -> Response:
    try:
        path = await asyncio.to_thread(
            trial_file, db=runtime.db(), settings=runtime.settings(), job_id=job_id, kind=kind
        )
    except JobNotFound:
        return _not_found()
    answer = FileResponse(path, media_type=MEDIA[kind], headers=dict(HEADERS))
    settings = runtime.settings()
    answer.set_cookie(
        routes.TRIAL_COOKIE,
        job_id,
        max_age=int(settings.retention_hours * 3600),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return answer


async def serve_job_file(request: Request) -> Response:
    kind = SERVED.get(request.path_params["name"])
    if kind is None:
        return _not_found()
    account_id = await signed_in_account(request)
    if account_id is None:
        return await _serve_trial_file(request.path_params["job_id"], kind)
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
    headers = dict(HEADERS)
    if request.query_params.get("download") and kind is JobFile.cutout:
        name = view.download_name
        ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        )
    return FileResponse(path, media_type=MEDIA[kind], headers=headers)


file_routes = [Route(routes.FILES + "/{job_id}/{name}", serve_job_file, methods=["GET"])]
