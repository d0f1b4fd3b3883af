"""Home page state: one photo from upload through processing to a downloadable cutout."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import reflex as rx

from app import runtime
from app.models.jobs import JobStatus
from app.services import cutouts
from app.services.cutouts import JobNotFound, JobView
from app.services.images import ImageRejected
from app.services.workers import run_in_pool

log = logging.getLogger("cutout")

UPLOAD_ID = "photo"
RESUME_WINDOW = timedelta(minutes=15)
OWNER_MAX_AGE = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days


class CutoutState(rx.State):
    # The browser's claim on its own results until accounts exist; the server keeps only a hash.
    owner_token: str = rx.Cookie("", name="cutout_owner", max_age=OWNER_MAX_AGE, same_site="strict")
    job_id: str = ""
    stage: str = ""  # "", uploading, checking, processing, done, failed
    upload_percent: int = 0
    error: str = ""
    original_name: str = ""
    download_name: str = ""
    size_label: str = ""

    @rx.var
    def before_url(self) -> str:
        return f"/files/{self.job_id}/before.jpg" if self.job_id else ""

    @rx.var
    def cutout_url(self) -> str:
        return f"/files/{self.job_id}/cutout.png" if self.stage == "done" else ""

    @rx.var
    def download_url(self) -> str:
        return f"/files/{self.job_id}/cutout.png?download=1" if self.stage == "done" else ""

    @rx.var
    def busy(self) -> bool:
        return self.stage in ("uploading", "checking", "processing")

    def _owner(self) -> str:
        if not self.owner_token:
            self.owner_token = cutouts.new_owner_token()
        return cutouts.owner_key(self.owner_token)

    def _show(self, view: JobView) -> None:
        self.job_id = view.id
        self.original_name = view.original_name
        self.download_name = view.download_name
        self.size_label = f"{view.width} × {view.height} px"
        self.stage = view.status.value if view.status.value in ("done", "failed") else "processing"
        self.error = view.error or ""

    @rx.event
    def on_load(self):  # type: ignore[no-untyped-def]
        owner = self._owner()
        if self.job_id:
            return None
        # A phone's tab that slept may come back with fresh state (reflex#6345): pick up the
        # job it was waiting for from the database instead of losing it.
        since = runtime.clock().now() - RESUME_WINDOW
        view = cutouts.recent_job(db=runtime.db(), owner=owner, since=since)
        if view is None or view.status == JobStatus.failed:
            return None
        self._show(view)
        return None if view.status == JobStatus.done else CutoutState.watch

    @rx.event(background=True)
    async def watch(self):  # type: ignore[no-untyped-def]
        """Follow a job this page did not start until it finishes."""
        async with self:
            job_id = self.job_id
        while True:
            await asyncio.sleep(1)
            try:
                view = cutouts.get_job(db=runtime.db(), owner=None, job_id=job_id)
            except JobNotFound:
                return
            if view.status in (JobStatus.done, JobStatus.failed):
                break
        async with self:
            if self.job_id == job_id:
                self._show(view)

    @rx.event
    def start_over(self) -> rx.event.EventSpec:
        self.job_id = ""
        self.stage = ""
        self.error = ""
        self.upload_percent = 0
        return rx.clear_selected_files(UPLOAD_ID)

    @rx.event
    def upload_started(self) -> None:
        self.stage = "uploading"
        self.error = ""
        self.job_id = ""
        self.upload_percent = 0

    @rx.event
    def upload_progress(self, progress: dict) -> None:
        if self.stage in ("", "uploading"):
            self.stage = "uploading"
            self.upload_percent = round(float(progress.get("progress", 0)) * 100)

    @rx.event
    def drop_rejected(self, rejected: list[str]) -> None:
        """Files the drop zone refused, as "name|code,code" strings built in the browser."""
        self.stage = "failed"
        limit = runtime.settings().max_upload_bytes / (1024 * 1024)
        reasons = []
        for item in rejected[:3]:
            name, _, codes = item.rpartition("|")
            name = name.lstrip("./") or "That file"
            if "file-too-large" in codes:
                reasons.append(f"{name} is over {limit:.0f} MB, the limit per photo.")
            elif "file-invalid-type" in codes:
                reasons.append(f"{name} is not a photo Cutout reads (JPEG, PNG, WebP, HEIC…).")
            elif "too-many-files" in codes:
                reasons.append("Drop one photo at a time here.")
            else:
                reasons.append(f"{name} was not accepted.")
        self.error = " ".join(reasons) or "That file was not accepted."

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):  # type: ignore[no-untyped-def]
        if not files:
            # The drop zone refused everything picked; drop_rejected says why.
            return
        upload = files[0]
        settings = runtime.settings()
        data = await upload.read(settings.max_upload_bytes + 1)
        self.stage = "checking"
        self.upload_percent = 100
        yield
        try:
            # Decoding a 25 MP photo is CPU work: off the event loop.
            view = await asyncio.to_thread(
                cutouts.submit_upload,
                db=runtime.db(),
                settings=settings,
                clock=runtime.clock(),
                owner=self._owner(),
                filename=upload.name or "photo",
                data=data,
            )
        except ImageRejected as rejected:
            self.stage = "failed"
            self.error = rejected.message
            return
        self._show(view)
        self.stage = "processing"
        yield CutoutState.process

    @rx.event(background=True)
    async def process(self):  # type: ignore[no-untyped-def]
        async with self:
            job_id = self.job_id
        settings = runtime.settings()
        try:
            view = await run_in_pool(
                settings.workers,
                cutouts.process_job,
                db=runtime.db(),
                settings=settings,
                clock=runtime.clock(),
                job_id=job_id,
            )
        except Exception:
            log.exception("cutout job %s failed", job_id)
            try:
                view = cutouts.get_job(db=runtime.db(), owner=None, job_id=job_id)
            except JobNotFound:
                return
        async with self:
            if self.job_id == job_id:  # the person may have started over meanwhile
                self._show(view)
