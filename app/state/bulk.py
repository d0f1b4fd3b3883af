"""Bulk page state: a batch of photos from drop zone to ZIP, mirrored from the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import reflex as rx

from app import routes, runtime
from app.models.bulk import BatchStatus
from app.services.billing.pricing import format_credits
from app.services.imaging.images import ImageRejected
from app.services.jobs.bulk import BatchFull, BatchNotFound, BatchView, Phase
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.storage import JobFile
from app.state.auth import AuthState
from app.usecases import bulk
from app.usecases.accounts import NotAllowed

UPLOAD_ID = "bulk"
# How far back a reloaded page looks for the account's batch to show again.
RESUME_WINDOW = timedelta(hours=24)
POLL_SECONDS = 1.0


class BulkState(AuthState):
    batch_id: str = ""
    # "", open, running, paused, cancelled, finished (BatchStatus values)
    status: str = ""
    items: list[dict[str, str]] = []
    hair: bool = False
    background: str = ""  # "" transparent, else #rrggbb
    stop_reason: str = ""
    error: str = ""
    upload_percent: int = 0
    uploading: bool = False
    total_cost: str = ""
    balance: str = ""
    can_afford_all: bool = True
    watching: bool = False

    @rx.var
    def count(self) -> int:
        return len(self.items)

    @rx.var
    def finished_count(self) -> int:
        return sum(1 for item in self.items if item["phase"] in (Phase.done, Phase.failed))

    @rx.var
    def done_count(self) -> int:
        return sum(1 for item in self.items if item["phase"] == Phase.done)

    @rx.var
    def failed_count(self) -> int:
        return sum(1 for item in self.items if item["phase"] == Phase.failed)

    @rx.var
    def not_started_count(self) -> int:
        return sum(1 for item in self.items if item["phase"] == Phase.not_started)

    @rx.var
    def progress_percent(self) -> int:
        return round(100 * self.finished_count / len(self.items)) if self.items else 0

    @rx.var
    def zip_url(self) -> str:
        return routes.bulk_zip_url(self.batch_id) if self.batch_id and self.done_count else ""

    @rx.var
    def max_files(self) -> int:
        return runtime.settings().bulk_max_files

    def _show(self, view: BatchView | None, available: int) -> None:
        self.balance = format_credits(available)
        if view is None:
            self.batch_id = ""
            self.status = ""
            self.items = []
            self.stop_reason = ""
            self.total_cost = ""
            self.can_afford_all = True
            return
        self.batch_id = view.id
        self.status = view.status.value
        self.hair = view.hair
        self.background = view.background or ""
        self.stop_reason = view.stop_reason
        self.total_cost = format_credits(view.total_cost)
        self.can_afford_all = view.total_cost <= available
        self.items = [
            {
                "job_id": item.job_id,
                "name": item.name,
                "phase": item.phase,
                "cost": format_credits(item.cost),
                "size": f"{item.width} × {item.height}",
                "error": item.error,
                "thumb": routes.file_url(item.job_id, JobFile.before),
                "download": routes.file_url(item.job_id, JobFile.cutout, download=True)
                if item.phase == Phase.done
                else "",
                "download_name": item.download_name,
                "editor": routes.editor_url(item.job_id),
            }
            for item in view.items
        ]

    async def _reload(self, account_id: int) -> None:
        found = await asyncio.to_thread(
            bulk.overview,
            db=runtime.db(),
            clock=runtime.clock(),
            account_id=account_id,
            batch_id=self.batch_id or None,
            since=runtime.clock().now() - RESUME_WINDOW,
        )
        self._show(found.batch, found.available)

    def _drive(self, account_id: int) -> None:
        bulk.ensure_driven(
            db=runtime.db(),
            settings=runtime.settings(),
            clock=runtime.clock(),
            account_id=account_id,
            batch_id=self.batch_id,
        )

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.sign_in_url(routes.BULK))
        self.error = ""
        try:
            await self._reload(account.id)
        except BatchNotFound:
            self.batch_id = ""
            await self._reload(account.id)
        if self.status == BatchStatus.running:
            # Back after a reload or a sleeping tab: make sure the queue is still moving.
            self._drive(account.id)
            return BulkState.watch
        return None

    @rx.event(background=True)
    async def watch(self):  # type: ignore[no-untyped-def]
        """Follow the queue from the database while it runs (one watcher per tab)."""
        async with self:
            if self.watching:
                return
            self.watching = True
        try:
            while True:
                await asyncio.sleep(POLL_SECONDS)
                async with self:
                    account = await self.current_account()
                    if account is None or not self.batch_id:
                        return
                    await self._reload(account.id)
                    moving = self.status == BatchStatus.running or any(
                        item["phase"] == Phase.processing for item in self.items
                    )
                    if not moving:
                        return
        finally:
            async with self:
                self.watching = False

    @rx.event
    def upload_progress(self, progress: dict) -> None:
        fraction = float(progress.get("progress", 0))
        if fraction < 1:
            self.uploading = True
            self.upload_percent = round(fraction * 100)

    @rx.event
    def drop_rejected(self, rejected: list[str]) -> None:
        limit = runtime.settings().max_upload_bytes // (1024 * 1024)
        reasons = []
        for item in rejected[:5]:
            name, _, codes = item.rpartition("|")
            name = name.lstrip("./") or "A file"
            if "too-many-files" in codes:
                reasons.append(f"Drop at most {self.max_files} photos at once.")
                break
            if "file-too-large" in codes:
                reasons.append(f"{name} is over {limit} MB, the limit per photo.")
            elif "file-invalid-type" in codes:
                reasons.append(f"{name} is not a photo Cutout reads.")
            else:
                reasons.append(f"{name} was not accepted.")
        self.error = " ".join(reasons) or "Those files were not accepted."

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):  # type: ignore[no-untyped-def]
        self.uploading = False
        if not files:
            return
        account = await self.current_account()
        if account is None:
            self.error = "Sign in to process photos."
            return
        settings = runtime.settings()
        db, clock = runtime.db(), runtime.clock()
        if self.status not in ("", BatchStatus.open):
            self.batch_id = ""  # the last batch has started: these photos begin a new one
        if not self.batch_id:
            self.batch_id = await asyncio.to_thread(
                bulk.new_batch, db=db, settings=settings, clock=clock, account_id=account.id
            )
            self.status = BatchStatus.open.value
            self.items = []
        room = settings.bulk_max_files - len(self.items)
        problems: list[str] = []
        if len(files) > room:
            problems.append(
                f"A batch holds {settings.bulk_max_files} photos: "
                f"{len(files) - room} of these were left out."
            )
            files = files[: max(room, 0)]
        pending = [
            {"job_id": "", "name": upload.name or "photo", "phase": Phase.uploading}
            for upload in files
        ]
        shown = list(self.items)
        self.items = shown + [_placeholder(p) for p in pending]
        self.error = ""
        yield
        for index, upload in enumerate(files):
            data = await upload.read(settings.max_upload_bytes + 1)
            try:
                # Decoding a 25 MP photo is CPU work: off the event loop.
                await asyncio.to_thread(
                    bulk.add_photo,
                    db=db,
                    settings=settings,
                    clock=clock,
                    account_id=account.id,
                    batch_id=self.batch_id,
                    filename=upload.name or "photo",
                    data=data,
                )
            except (ImageRejected, BatchFull) as refused:
                message = getattr(refused, "message", None) or str(refused)
                problems.append(f"{upload.name or 'A photo'}: {message}")
            await self._reload(account.id)
            self.items = self.items + [_placeholder(p) for p in pending[index + 1 :]]
            yield
        self.error = " ".join(problems)

    @rx.event
    async def set_hair(self, value: bool):  # type: ignore[no-untyped-def]
        await self._set_options(hair=bool(value), background=self.background or None)

    @rx.event
    async def set_background(self, value: str):  # type: ignore[no-untyped-def]
        await self._set_options(hair=self.hair, background=value or None)

    async def _set_options(self, *, hair: bool, background: str | None) -> None:
        account = await self.current_account()
        if account is None:
            return
        if not self.batch_id or self.status != BatchStatus.open:
            self.hair, self.background = hair, background or ""
            return
        try:
            await asyncio.to_thread(
                bulk.set_options,
                db=runtime.db(),
                account_id=account.id,
                batch_id=self.batch_id,
                hair=hair,
                background=background,
            )
        except (ValueError, BatchNotFound) as refused:
            self.error = str(refused)
        await self._reload(account.id)

    @rx.event
    async def start(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None or not self.batch_id:
            return None
        try:
            await asyncio.to_thread(
                bulk.start, db=runtime.db(), account_id=account.id, batch_id=self.batch_id
            )
        except (NotAllowed, BatchNotFound) as refused:
            self.error = str(refused)
            return None
        await self._reload(account.id)
        self._drive(account.id)
        return BulkState.watch

    @rx.event
    async def cancel_rest(self) -> None:
        account = await self.current_account()
        if account is None or not self.batch_id:
            return
        try:
            await asyncio.to_thread(
                bulk.cancel_rest, db=runtime.db(), account_id=account.id, batch_id=self.batch_id
            )
        except BatchNotFound:
            self.batch_id = ""
        await self._reload(account.id)

    @rx.event
    async def resume(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None or not self.batch_id:
            return None
        try:
            await asyncio.to_thread(
                bulk.resume, db=runtime.db(), account_id=account.id, batch_id=self.batch_id
            )
        except BatchNotFound:
            self.batch_id = ""
            return None
        await self._reload(account.id)
        self._drive(account.id)
        return BulkState.watch

    @rx.event
    async def retry(self, job_id: str):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None or not self.batch_id:
            return None
        try:
            await asyncio.to_thread(
                bulk.retry,
                db=runtime.db(),
                account_id=account.id,
                batch_id=self.batch_id,
                job_id=job_id,
            )
        except (BatchNotFound, JobNotFound):
            self.error = "That photo is no longer in this batch."
            return None
        await self._reload(account.id)
        self._drive(account.id)
        return BulkState.watch

    @rx.event
    def new_batch(self) -> rx.event.EventSpec:
        """Leave the shown batch as it is (it stays in the database) and start an empty one."""
        self.batch_id = ""
        self.status = ""
        self.items = []
        self.stop_reason = ""
        self.error = ""
        self.total_cost = ""
        return rx.clear_selected_files(UPLOAD_ID)


def _placeholder(pending: dict[str, str]) -> dict[str, str]:
    return {
        "job_id": "",
        "name": pending["name"],
        "phase": pending["phase"],
        "cost": "",
        "size": "",
        "error": "",
        "thumb": "",
        "download": "",
        "download_name": "",
        "editor": "",
    }
