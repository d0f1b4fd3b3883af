"""Home page state: one photo from upload, through a quoted price, to a downloadable cutout."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta

import reflex as rx

from app import routes, runtime
from app.models.jobs import JobStatus
from app.services.billing.ledger import InsufficientCredits
from app.services.billing.pricing import format_credits
from app.services.imaging.images import ImageRejected
from app.services.jobs.cutouts import JobNotFound, JobView
from app.services.jobs.dispatch import send_to_celery
from app.services.jobs.storage import JobFile
from app.services.jobs.workers import run_in_pool
from app.state.auth import AuthState
from app.usecases import cutouts
from app.usecases.accounts import NotAllowed

log = logging.getLogger("cutout")

UPLOAD_ID = "photo"
RESUME_WINDOW = timedelta(minutes=15)


class CutoutState(AuthState):
    job_id: str = ""
    # "", uploading, checking, quoted, processing, done, failed
    stage: str = ""
    upload_percent: int = 0
    error: str = ""
    original_name: str = ""
    download_name: str = ""
    size_label: str = ""
    cost_label: str = ""
    balance_label: str = ""
    can_afford: bool = False

    @rx.var
    def before_url(self) -> str:
        return routes.file_url(self.job_id, JobFile.before) if self.job_id else ""

    @rx.var
    def cutout_url(self) -> str:
        return routes.file_url(self.job_id, JobFile.cutout) if self.stage == "done" else ""

    @rx.var
    def download_url(self) -> str:
        if self.stage != "done":
            return ""
        return routes.file_url(self.job_id, JobFile.cutout, download=True)

    @rx.var
    def busy(self) -> bool:
        return self.stage in ("uploading", "checking", "processing")

    def _show(self, view: JobView) -> None:
        self.job_id = view.id
        self.original_name = view.original_name
        self.download_name = view.download_name
        self.size_label = f"{view.width} × {view.height} px"
        self.cost_label = format_credits(cutouts.cutout_cost(view))
        if view.status in (JobStatus.done, JobStatus.failed):
            self.stage = view.status.value
        elif view.status == JobStatus.processing:
            self.stage = "processing"
        else:
            self.stage = "quoted"
        self.error = view.error or ""

    async def _quote(self, account_id: int, view: JobView) -> None:
        quote = await asyncio.to_thread(
            cutouts.quote, db=runtime.db(), clock=runtime.clock(), account_id=account_id, job=view
        )
        self.cost_label = format_credits(quote.cost)
        self.balance_label = format_credits(quote.available)
        self.can_afford = quote.enough

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return None
        if self.job_id:
            if self.stage == "quoted":
                # Back from buying credits (Stripe Checkout): quote again with the new balance.
                try:
                    view = await asyncio.to_thread(
                        cutouts.job_for, db=runtime.db(), account_id=account.id, job_id=self.job_id
                    )
                except JobNotFound:
                    return None
                await self._quote(account.id, view)
            return None
        # A phone's tab that slept may come back with fresh state (reflex#6345): pick up the
        # job it was waiting for from the database instead of losing it.
        since = runtime.clock().now() - RESUME_WINDOW
        view = await asyncio.to_thread(
            cutouts.recent_job, db=runtime.db(), account_id=account.id, since=since
        )
        if view is None or view.status == JobStatus.failed:
            return None
        self._show(view)
        if view.status == JobStatus.queued:
            await self._quote(account.id, view)
            return None
        return None if view.status == JobStatus.done else CutoutState.watch

    @rx.event(background=True)
    async def watch(self):  # type: ignore[no-untyped-def]
        """Follow a job this page did not start until it finishes."""
        async with self:
            job_id = self.job_id
            account = await self.current_account()
        if account is None or not job_id:
            return
        try:
            view = await self._until_finished(account.id, None, job_id=job_id)
        except JobNotFound:
            return
        if view.status not in (JobStatus.done, JobStatus.failed):
            return
        async with self:
            if self.job_id == job_id:
                self._show(view)
                await self.current_account()

    async def _until_finished(
        self, account_id: int, view: JobView | None, *, job_id: str = ""
    ) -> JobView:
        """Poll the jobs table until the job is done or failed (or give up, returning it as is).

        Housekeeping fails a job whose worker died; stop watching well after that could happen.
        """
        job_id = view.id if view is not None else job_id
        for _ in range(2 * runtime.settings().reservation_timeout_seconds):
            if view is not None and view.status in (JobStatus.done, JobStatus.failed):
                break
            await asyncio.sleep(1)
            view = await asyncio.to_thread(
                cutouts.job_for, db=runtime.db(), account_id=account_id, job_id=job_id
            )
        assert view is not None
        return view

    @rx.event
    def start_over(self) -> rx.event.EventSpec:
        self.job_id = ""
        self.stage = ""
        self.error = ""
        self.upload_percent = 0
        return rx.clear_selected_files(UPLOAD_ID)

    @rx.event
    def upload_progress(self, progress: dict) -> None:
        fraction = float(progress.get("progress", 0))
        # The last progress event (100%) can arrive after the upload handler has already
        # answered; it must not turn a shown result or refusal back into "uploading".
        if fraction < 1 and self.stage in ("", "failed", "uploading"):
            self.stage = "uploading"
            self.error = ""
            self.upload_percent = round(fraction * 100)

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
        account = await self.current_account()
        if account is None:
            self.stage = "failed"
            self.error = "Sign in to process photos: new accounts get 10 free credits."
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
                cutouts.submit_photo,
                db=runtime.db(),
                settings=settings,
                clock=runtime.clock(),
                account_id=account.id,
                filename=upload.name or "photo",
                data=data,
                limits=runtime.limits(),
            )
        except ImageRejected as rejected:
            self.stage = "failed"
            self.error = rejected.message
            return
        self._show(view)
        await self._quote(account.id, view)

    @rx.event
    async def confirm(self):  # type: ignore[no-untyped-def]
        """The person accepted the quoted cost: reserve it and start the work."""
        if self.stage != "quoted" or not self.job_id:
            return None
        self.stage = "processing"
        self.error = ""
        return CutoutState.process

    @rx.event(background=True)
    async def process(self):  # type: ignore[no-untyped-def]
        async with self:
            job_id = self.job_id
            account = await self.current_account()
        if account is None:
            async with self:
                self.stage = "failed"
                self.error = "Your session ended. Sign in again; nothing was charged."
            return
        settings = runtime.settings()
        try:
            if settings.jobs == "celery":
                view = await asyncio.to_thread(
                    cutouts.queue_cutout,
                    db=runtime.db(),
                    settings=settings,
                    clock=runtime.clock(),
                    account_id=account.id,
                    job_id=job_id,
                    send=functools.partial(send_to_celery, settings),
                )
                # A Celery worker runs it: the jobs table says how it goes.
                view = await self._until_finished(account.id, view)
            else:
                view = await run_in_pool(
                    settings.workers,
                    cutouts.process_cutout,
                    db=runtime.db(),
                    settings=settings,
                    clock=runtime.clock(),
                    account_id=account.id,
                    job_id=job_id,
                )
        except InsufficientCredits as short:
            async with self:
                self.stage = "quoted"
                self.can_afford = False
                self.balance_label = format_credits(short.available)
                self.error = (
                    f"This photo costs {format_credits(short.needed)} credits and you have "
                    f"{format_credits(short.available)}. Nothing was charged."
                )
            return
        except (NotAllowed, JobNotFound) as refused:
            async with self:
                self.stage = "failed"
                self.error = str(refused) or "This photo is no longer available."
            return
        except Exception:
            log.exception("cutout job %s failed", job_id)
            try:
                view = await asyncio.to_thread(
                    cutouts.job_for, db=runtime.db(), account_id=account.id, job_id=job_id
                )
            except JobNotFound:
                return
        async with self:
            if self.job_id == job_id:  # the person may have started over meanwhile
                self._show(view)
            await self.current_account()
