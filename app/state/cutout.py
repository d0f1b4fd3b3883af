"""Home page state: one photo from upload, through a quoted price, to a downloadable cutout."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from pathlib import Path

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
from app.usecases import cutouts, trial
from app.usecases.accounts import AccountSummary, NotAllowed
from app.web_session import cookie_value

log = logging.getLogger("cutout")

UPLOAD_ID = "photo"
RESUME_WINDOW = timedelta(minutes=15)
# Photos a visitor can tap instead of uploading (scikit-image's sample data, made small).
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "samples"
SAMPLES = {"astronaut": "Astronaut", "coffee": "Coffee cup", "chelsea": "Cat"}


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
    # "High quality" (the full u2net): offered only where its model file was provisioned.
    high_quality_offered: bool = False
    high_quality: bool = False
    # The job is a signed-out visitor's free preview (small, not downloadable).
    trial: bool = False
    # A job the person put away ("New photo"): not picked up again when the page reloads.
    _dismissed: str = ""

    @rx.var
    def before_url(self) -> str:
        return routes.file_url(self.job_id, JobFile.before) if self.job_id else ""

    @rx.var
    def cutout_url(self) -> str:
        """What the page shows: the light preview, never the full PNG (that is the download)."""
        return routes.file_url(self.job_id, JobFile.preview) if self.stage == "done" else ""

    @rx.var
    def download_url(self) -> str:
        if self.stage != "done":
            return ""
        return routes.file_url(self.job_id, JobFile.cutout, download=True)

    @rx.var
    def editor_url(self) -> str:
        return routes.editor_url(self.job_id) if self.stage == "done" else ""

    @rx.var
    def busy(self) -> bool:
        return self.stage in ("uploading", "checking", "processing")

    def _show(self, view: JobView, *, trial_preview: bool = False) -> None:
        self.trial = trial_preview
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
    def set_high_quality(self, value: bool) -> None:
        self.high_quality = bool(value) and self.high_quality_offered

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        self.high_quality_offered = cutouts.high_quality_available(runtime.settings())
        account = await self.current_account()
        if account is None:
            if self.trial and self.stage == "processing":
                return CutoutState.process_trial
            return None
        if self.trial:  # signed in since: the preview is the account's to claim
            self._clear()
        if not self.job_id:
            return await self._claim_or_resume(account)
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

    async def _claim_or_resume(self, account: AccountSummary):  # type: ignore[no-untyped-def]
        """Take the photo this browser previewed before signing up (at full resolution, quoted
        like any upload), else pick up a recent job."""
        trial_job_id = cookie_value(self.router.headers.cookie, routes.TRIAL_COOKIE)[:64]
        if trial_job_id:
            view = await asyncio.to_thread(
                trial.claim_trial,
                db=runtime.db(),
                settings=runtime.settings(),
                clock=runtime.clock(),
                account_id=account.id,
                job_id=trial_job_id,
            )
            if view is not None:
                self._show(view)
                await self._quote(account.id, view)
                return None
        # A phone's tab that slept may come back with fresh state (reflex#6345): pick up the
        # job it was waiting for from the database instead of losing it.
        since = runtime.clock().now() - RESUME_WINDOW
        view = await asyncio.to_thread(
            cutouts.recent_job, db=runtime.db(), account_id=account.id, since=since
        )
        if view is None or view.status == JobStatus.failed or view.id == self._dismissed:
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

    def _clear(self) -> None:
        self.job_id = ""
        self.stage = ""
        self.error = ""
        self.upload_percent = 0
        self.trial = False

    @rx.event
    def start_over(self) -> None:
        """Back to a clean drop zone. The drop zone is mounted afresh, so there is no selection
        to clear (clearing an unmounted one is what threw a TypeError)."""
        if self.job_id:
            self._dismissed = self.job_id
        self._clear()

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
        upload = files[0]
        settings = runtime.settings()
        data = await upload.read(settings.max_upload_bytes + 1)
        self.stage = "checking"
        self.upload_percent = 100
        yield
        if account is None:
            async for update in self._try_free(upload.name or "photo", data):
                yield update
            return
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
                high_quality=self.high_quality,
                limits=runtime.limits(),
            )
        except ImageRejected as rejected:
            self.stage = "failed"
            self.error = rejected.message
            return
        except NotAllowed as refused:
            self.stage = "failed"
            self.error = str(refused)
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

    async def _try_free(self, filename: str, data: bytes):  # type: ignore[no-untyped-def]
        """A signed-out visitor's photo: a free small preview, limited per address per day."""
        try:
            view = await asyncio.to_thread(
                trial.submit_trial,
                db=runtime.db(),
                settings=runtime.settings(),
                clock=runtime.clock(),
                address=self._client_address(),
                filename=filename,
                data=data,
            )
        except ImageRejected as rejected:
            self.stage = "failed"
            self.error = rejected.message
            return
        self._show(view, trial_preview=True)
        self.stage = "processing"
        yield CutoutState.process_trial

    @rx.event
    async def try_sample(self, name: str):  # type: ignore[no-untyped-def]
        """A sample photo tapped instead of an upload: the same path as an upload."""
        if name not in SAMPLES or self.busy:
            return
        self.stage = "checking"
        self.error = ""
        yield
        data = await asyncio.to_thread((SAMPLES_DIR / f"{name}.jpg").read_bytes)
        account = await self.current_account()
        if account is None:
            async for update in self._try_free(f"{name}.jpg", data):
                yield update
            return
        try:
            view = await asyncio.to_thread(
                cutouts.submit_photo,
                db=runtime.db(),
                settings=runtime.settings(),
                clock=runtime.clock(),
                account_id=account.id,
                filename=f"{name}.jpg",
                data=data,
            )
        except ImageRejected as rejected:
            self.stage = "failed"
            self.error = rejected.message
            return
        self._show(view)
        await self._quote(account.id, view)

    @rx.event(background=True)
    async def process_trial(self):  # type: ignore[no-untyped-def]
        async with self:
            job_id = self.job_id if self.trial else ""
        if not job_id:
            return
        settings = runtime.settings()
        try:
            view = await run_in_pool(
                settings.workers,
                trial.process_trial,
                db=runtime.db(),
                settings=settings,
                clock=runtime.clock(),
                job_id=job_id,
            )
        except JobNotFound:
            async with self:
                if self.job_id == job_id:
                    self._clear()
            return
        if view.status == JobStatus.processing:  # another tab runs it: wait for that one
            for _ in range(2 * settings.reservation_timeout_seconds):
                await asyncio.sleep(1)
                try:
                    view = await asyncio.to_thread(trial.trial_job, db=runtime.db(), job_id=job_id)
                except JobNotFound:
                    return
                if view.status != JobStatus.processing:
                    break
        async with self:
            if self.job_id == job_id:
                self._show(view, trial_preview=True)
