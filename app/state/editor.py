"""Editor page state: the controls' values, the preview's address, and the export's cost.

Images never enter this state: the preview is a file the page loads by address, and the
edits (strokes, cuts) live with the job on the server, so a reloaded tab finds them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import fields
from typing import Any

import reflex as rx

from app import routes, runtime
from app.services.billing.ledger import InsufficientCredits
from app.services.billing.pricing import FEATURE_LABELS, format_credits
from app.services.imaging import aicut, retouch
from app.services.imaging.editor import BACKGROUNDS, BadParameter, EditSpec, parse_color
from app.services.imaging.images import ImageRejected
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.edit_files import Look
from app.services.jobs.storage import JobFile
from app.services.jobs.workers import run_in_pool
from app.state.auth import AuthState
from app.usecases import editing
from app.usecases.accounts import NotAllowed
from app.usecases.editing import EditorView, PriceChanged

log = logging.getLogger("cutout")

BACKGROUND_UPLOAD_ID = "editor-background"
BRUSH_MODES = ("erase", "restore")
MARK_MODES = ("keep", "remove", "box")
# Canvas presets: (canvas, crop to subject, subject's share of the canvas).
PRESETS: dict[str, tuple[str, bool, float]] = {
    "original": ("original", False, 1.0),
    "1:1": ("1:1", False, 1.0),
    "4:5": ("4:5", False, 1.0),
    "16:9": ("16:9", False, 1.0),
    # Marketplaces (Amazon, eBay, Etsy) ask for a white square with the product filling most of it.
    "marketplace": ("1:1", True, 0.85),
}
SIZES = {"full": None, "2048": 2048, "1024": 1024}
EXPORT_FORMATS = ("png", "jpeg", "webp")
CONTROL_DEFAULTS: dict[str, Any] = {
    "mode": "compare",
    "background": "transparent",
    "color": "#ffffff",
    "shadow": False,
    "crop": False,
    "margin": 0,
    "preset": "original",
    "position_x": 50,
    "position_y": 50,
    "marks": [],
    "export_url": "",
    "export_name": "",
    "notice": "",
}
MAX_MARKS = 40  # AI Cut marks waiting to be applied
NOT_FOUND = "This photo is not in your account (or its retention ended)."


class EditorState(AuthState):
    job_id: str = ""
    original_name: str = ""
    size_label: str = ""
    photo_width: int = 0
    photo_height: int = 0
    ready: bool = False
    error: str = ""
    notice: str = ""

    mode: str = "compare"  # compare, erase, restore, keep, remove, box
    brush: int = 20  # screen pixels (radius)
    background: str = "transparent"
    color: str = "#ffffff"
    has_background_image: bool = False
    loading_background: bool = False
    hair: bool = False
    shadow: bool = False
    crop: bool = False
    margin: int = 0  # photo pixels
    preset: str = "original"
    position_x: int = 50
    position_y: int = 50
    steps: int = 0
    redoable: int = 0
    marks: list[dict[str, Any]] = []

    preview_version: int = 0
    previewing: bool = False
    preview_ms: int = 0
    view_width: int = 1  # the preview's size: the stage takes its shape
    view_height: int = 1
    _wanted: int = 0

    export_format: str = "png"
    quality: int = 90
    export_size: str = "full"
    cost: int = 0
    cost_label: str = "0"
    unpaid_label: str = ""
    balance_label: str = ""
    can_afford: bool = True
    short_of_credits: bool = False
    exporting: bool = False
    export_url: str = ""
    export_name: str = ""

    @rx.var
    def before_url(self) -> str:
        return routes.file_url(self.job_id, JobFile.before) if self.job_id else ""

    @rx.var
    def preview_url(self) -> str:
        if not self.job_id or not self.preview_version:
            return ""
        return routes.editor_file_url(self.job_id, "preview.webp", version=self.preview_version)

    @rx.var
    def view_ratio(self) -> str:
        return f"{self.view_width} / {self.view_height}"

    @rx.var
    def stage_width(self) -> str:
        """As wide as the column, but never taller than most of a phone's screen."""
        return f"min(100%, calc(62vh * {self.view_width / max(1, self.view_height):.4f}))"

    @rx.var
    def marking(self) -> bool:
        return self.mode in MARK_MODES

    @rx.var
    def export_label(self) -> str:
        kind = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}.get(self.export_format, "")
        price = "free" if self.cost == 0 else f"{self.cost_label} credits"
        return f"Export {kind} · {price}"

    # --- loading -------------------------------------------------------------------------

    def _job_from_url(self) -> str:
        return self.router.url.path.rstrip("/").rpartition("/")[2]

    def _show(self, view: EditorView) -> None:
        self.job_id = view.job.id
        self.original_name = view.job.original_name
        self.photo_width = view.job.width
        self.photo_height = view.job.height
        self.size_label = f"{view.job.width} × {view.job.height} px"
        self.steps = view.steps
        self.redoable = view.redoable
        self.hair = view.hair
        self.has_background_image = view.has_background

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.sign_in_url(self.router.url.path or routes.HOME))
        job_id = self._job_from_url()
        if job_id != self.job_id:
            self.reset_controls()
        self.ready = False
        self.error = ""
        try:
            view = await asyncio.to_thread(
                editing.open_editor,
                db=runtime.db(),
                settings=runtime.settings(),
                account_id=account.id,
                job_id=job_id,
            )
        except JobNotFound:
            self.job_id = ""
            self.error = NOT_FOUND
            return None
        except NotAllowed as refused:
            self.job_id = ""
            self.error = str(refused)
            return None
        self._show(view)
        self._apply_look(view.look)
        self.ready = True
        return [EditorState.changed, EditorState.refresh_quote]

    def _apply_look(self, look: Look) -> None:
        """The photo as it was last drawn (a reloaded tab, a photo opened again). Anything the
        controls would not offer keeps its default."""
        if look.background in BACKGROUNDS and (
            look.background != "image" or self.has_background_image
        ):
            self.background = look.background
        try:
            parse_color(look.color)
            self.color = look.color
        except BadParameter:
            pass
        self.shadow, self.crop = look.shadow, look.crop
        self.margin = max(0, look.margin)
        if look.preset in PRESETS:
            self.preset = look.preset
        self.position_x = max(0, min(100, look.position_x))
        self.position_y = max(0, min(100, look.position_y))
        if look.export_format in EXPORT_FORMATS:
            self.export_format = look.export_format
        self.quality = max(1, min(100, look.quality))
        if look.export_size in SIZES:
            self.export_size = look.export_size

    def _look(self) -> Look:
        """The controls a Look keeps, read from the state vars of the same names."""
        return Look(**{control.name: getattr(self, control.name) for control in fields(Look)})

    def reset_controls(self) -> None:
        """Another photo: the controls start again (its edits come back from the server)."""
        for name, value in CONTROL_DEFAULTS.items():
            setattr(self, name, value)

    # --- the preview ---------------------------------------------------------------------

    def _spec(self, *, export: bool = False) -> EditSpec:
        canvas, preset_crop, scale = PRESETS.get(self.preset, PRESETS["original"])
        background, color = self.background, self.color
        if self.preset == "marketplace":
            background, color = "color", "#ffffff"
        return EditSpec(
            background=background,
            color=color,
            shadow=self.shadow,
            crop=self.crop or preset_crop,
            margin=self.margin if (self.crop or preset_crop) else 0,
            canvas=canvas,
            scale=scale,
            position=(self.position_x / 100, self.position_y / 100),
            format=self.export_format if export else "png",
            quality=self.quality,
            max_side=SIZES.get(self.export_size) if export else None,
        )

    @rx.event
    def changed(self):  # type: ignore[no-untyped-def]
        """Something the preview shows changed: draw it again (coalescing fast changes).
        The person moved on, so the last refusal's message goes."""
        self.error = ""
        self._wanted += 1
        if not self.previewing:
            self.previewing = True
            return EditorState.draw_preview
        return None

    @rx.event(background=True)
    async def draw_preview(self):  # type: ignore[no-untyped-def]
        while True:
            async with self:
                wanted = self._wanted
                job_id = self.job_id
                account = await self.current_account()
                try:
                    spec, look = self._spec(), self._look()
                except BadParameter as bad:
                    self.error = str(bad)
                    self.previewing = False
                    return
                if self.mode != "compare":
                    spec = editing.editing_view(spec)
            if account is None or not job_id:
                async with self:
                    self.previewing = False
                return
            try:
                drawn = await asyncio.to_thread(
                    editing.render_preview,
                    db=runtime.db(),
                    settings=runtime.settings(),
                    account_id=account.id,
                    job_id=job_id,
                    spec=spec,
                    look=look,
                )
            except (BadParameter, NotAllowed) as refused:
                async with self:
                    self.error = str(refused)
                    self.previewing = False
                return
            except JobNotFound:
                async with self:
                    self.error = NOT_FOUND
                    self.previewing = False
                return
            async with self:
                if self.job_id != job_id:
                    self.previewing = False
                    return
                self.preview_version += 1
                self.preview_ms = round(drawn.seconds * 1000)
                self.view_width, self.view_height = drawn.width, drawn.height
                if self._wanted == wanted:
                    self.previewing = False
                    return

    # --- controls ------------------------------------------------------------------------

    @rx.event
    def set_mode(self, mode: str):  # type: ignore[no-untyped-def]
        if mode not in ("compare", *BRUSH_MODES, *MARK_MODES):
            return None
        geometry_changes = (self.mode == "compare") != (mode == "compare")
        self.mode = mode
        return EditorState.changed if geometry_changes else None

    @rx.event
    def set_brush(self, value: list[int | float]) -> None:
        self.brush = max(2, min(120, int(value[0])))

    @rx.event
    def set_background(self, kind: str):  # type: ignore[no-untyped-def]
        if kind == "image" and not self.has_background_image:
            self.error = "Upload a background photo first."
            return None
        if kind not in ("transparent", "color", "image", "blur"):
            return None
        self.error = ""
        self.background = kind
        if self.preset == "marketplace" and kind != "color":
            self.preset = "original"
        return EditorState.changed

    @rx.event
    def set_color(self, color: str):  # type: ignore[no-untyped-def]
        self.color = color
        self.background = "color"
        return EditorState.changed

    @rx.event
    def toggle_shadow(self, on: bool):  # type: ignore[no-untyped-def]
        self.shadow = on
        return EditorState.changed

    @rx.event
    def toggle_crop(self, on: bool):  # type: ignore[no-untyped-def]
        self.crop = on
        return EditorState.changed

    @rx.event
    def set_margin(self, value: list[int | float]):  # type: ignore[no-untyped-def]
        self.margin = max(0, int(value[0]))
        return EditorState.changed

    @rx.event
    def set_preset(self, preset: str):  # type: ignore[no-untyped-def]
        if preset not in PRESETS:
            return None
        self.preset = preset
        if self.mode != "compare":
            self.mode = "compare"  # a layout is seen whole, not while brushing
        return EditorState.changed

    @rx.event
    def set_position_x(self, value: list[int | float]):  # type: ignore[no-untyped-def]
        self.position_x = max(0, min(100, int(value[0])))
        return EditorState.changed

    @rx.event
    def set_position_y(self, value: list[int | float]):  # type: ignore[no-untyped-def]
        self.position_y = max(0, min(100, int(value[0])))
        return EditorState.changed

    @rx.event
    def set_export_format(self, value: str) -> None:
        if value in EXPORT_FORMATS:
            self.export_format = value

    @rx.event
    def set_quality(self, value: list[int | float]) -> None:
        self.quality = max(1, min(100, int(value[0])))

    @rx.event
    def set_export_size(self, value: str) -> None:
        if value in SIZES:
            self.export_size = value

    # --- edits kept on the server --------------------------------------------------------

    async def _edit(self, call: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None or not self.job_id:
            self.error = "Your session ended. Sign in again; nothing was charged."
            return None
        try:
            view = await asyncio.to_thread(
                call,
                db=runtime.db(),
                settings=runtime.settings(),
                account_id=account.id,
                job_id=self.job_id,
                **kwargs,
            )
        except (BadParameter, NotAllowed) as refused:
            self.error = str(refused)
            return None
        except JobNotFound:
            self.error = NOT_FOUND
            return None
        self.error = ""
        self._show(view)
        return [EditorState.changed, EditorState.refresh_quote]

    @rx.event
    async def receive_marks(self, payload: str):  # type: ignore[no-untyped-def]
        """Strokes and boxes the canvas script drew (fractions of the photo's size)."""
        try:
            marks = json.loads(payload) if payload else []
        except ValueError:
            return None
        brushed: list[retouch.Step] = []
        for mark in marks[:50] if isinstance(marks, list) else []:
            if not isinstance(mark, dict):
                continue
            if mark.get("kind") in BRUSH_MODES:
                try:
                    brushed.append(self._brush(mark))
                except (KeyError, TypeError, ValueError):
                    continue
            elif mark.get("kind") in MARK_MODES:
                if len(self.marks) >= MAX_MARKS:
                    self.error = f"Apply AI Cut or clear the marks: {MAX_MARKS} is the most."
                    return None
                self.marks = [m for m in self.marks if mark["kind"] != "box" or m["kind"] != "box"]
                self.marks.append(mark)
        events: list[Any] = []
        for step in brushed:
            result = await self._edit(editing.add_step, step=step)
            if result is None:
                return None
            events = result
        return events or None

    def _brush(self, mark: dict[str, Any]) -> retouch.Brush:
        width, height = self.photo_width, self.photo_height
        points = tuple((float(x) * width, float(y) * height) for x, y in mark["points"])
        return retouch.Brush(mark["kind"], points, float(mark["radius"]) * width)

    def _cut(self) -> retouch.Cut:
        width, height = self.photo_width, self.photo_height
        box = None
        keep: list[aicut.Stroke] = []
        remove: list[aicut.Stroke] = []
        for mark in self.marks:
            if mark["kind"] == "box":
                left, top, right, bottom = mark["box"]
                box = (
                    int(left * width),
                    int(top * height),
                    max(int(left * width) + 1, min(width, round(right * width))),
                    max(int(top * height) + 1, min(height, round(bottom * height))),
                )
                continue
            points = tuple(
                (min(float(x) * width, width - 1), min(float(y) * height, height - 1))
                for x, y in mark["points"]
            )
            stroke = aicut.Stroke(points, max(1.0, float(mark["radius"]) * width))
            (keep if mark["kind"] == "keep" else remove).append(stroke)
        return retouch.Cut(aicut.Marks(box=box, keep=tuple(keep), remove=tuple(remove)))

    @rx.event
    async def apply_cut(self):  # type: ignore[no-untyped-def]
        if not self.marks:
            self.error = "Draw a box, or a keep or remove stroke, before applying AI Cut."
            return None
        try:
            step = self._cut()
        except (KeyError, TypeError, ValueError):
            self.error = "Those marks could not be read; clear them and draw again."
            return None
        result = await self._edit(editing.add_step, step=step)
        if result is None:
            return None
        self.marks = []
        self.notice = "AI Cut applied. It is charged once, when you export."
        return result

    @rx.event
    def clear_marks(self) -> None:
        self.marks = []  # the canvas script sees data-marks="0" and wipes its drawing

    @rx.event
    async def undo(self):  # type: ignore[no-untyped-def]
        return await self._edit(editing.move_in_history, by=-1)

    @rx.event
    async def redo(self):  # type: ignore[no-untyped-def]
        return await self._edit(editing.move_in_history, by=1)

    @rx.event
    async def toggle_hair(self, on: bool):  # type: ignore[no-untyped-def]
        return await self._edit(editing.set_hair, on=on)

    @rx.event
    async def upload_background(self, files: list[rx.UploadFile]):  # type: ignore[no-untyped-def]
        if not files:
            return
        settings = runtime.settings()
        upload = files[0]
        data = await upload.read(settings.max_upload_bytes + 1)
        self.loading_background = True
        yield
        try:
            result = await self._edit(
                editing.save_background, filename=upload.name or "background", data=data
            )
        except ImageRejected as rejected:
            self.error = rejected.message
            return
        finally:
            self.loading_background = False
        if result is not None:
            self.background = "image"
            if self.preset == "marketplace":
                self.preset = "original"
            yield result

    # --- cost and export -----------------------------------------------------------------

    @rx.event
    async def refresh_quote(self) -> None:
        account = await self.current_account()
        if account is None or not self.job_id:
            return
        try:
            quote = await asyncio.to_thread(
                editing.export_quote,
                db=runtime.db(),
                settings=runtime.settings(),
                clock=runtime.clock(),
                account_id=account.id,
                job_id=self.job_id,
            )
        except (NotAllowed, JobNotFound):
            return
        self.cost = quote.cost
        self.cost_label = format_credits(quote.cost)
        self.balance_label = format_credits(quote.available)
        self.can_afford = quote.enough
        self.unpaid_label = " + ".join(FEATURE_LABELS[f] for f in quote.unpaid)

    @rx.event
    def start_export(self):  # type: ignore[no-untyped-def]
        if self.exporting or not self.ready:
            return None
        try:
            self._spec(export=True)
        except BadParameter as bad:
            self.error = str(bad)
            return None
        self.exporting = True
        self.error = ""
        self.short_of_credits = False
        self.export_url = ""
        return EditorState.run_export

    @rx.event(background=True)
    async def run_export(self):  # type: ignore[no-untyped-def]
        async with self:
            job_id = self.job_id
            expected = self.cost
            spec, look = self._spec(export=True), self._look()
            account = await self.current_account()
        if account is None:
            async with self:
                self.exporting = False
                self.error = "Your session ended. Sign in again; nothing was charged."
            return
        settings = runtime.settings()
        try:
            result = await run_in_pool(
                settings.workers,
                editing.export_edit,
                db=runtime.db(),
                settings=settings,
                clock=runtime.clock(),
                account_id=account.id,
                job_id=job_id,
                spec=spec,
                expected_cost=expected,
                look=look,
            )
        except InsufficientCredits as short:
            async with self:
                self.exporting = False
                self.short_of_credits = True
                self.can_afford = False
                self.balance_label = format_credits(short.available)
                self.error = (
                    f"This export costs {format_credits(expected)} credits and you have "
                    f"{format_credits(short.available)}. Nothing was charged."
                )
            return
        except PriceChanged as changed:
            async with self:
                self.exporting = False
                self.error = f"{changed} It is now {format_credits(changed.cost)} credits."
            yield EditorState.refresh_quote
            return
        except (NotAllowed, JobNotFound, BadParameter) as refused:
            async with self:
                self.exporting = False
                self.error = str(refused) or NOT_FOUND
            return
        except Exception:
            log.exception("export of job %s failed", job_id)
            async with self:
                self.exporting = False
                self.error = "The export failed; nothing was charged. Try again."
            return
        url = routes.editor_file_url(job_id, result.name, download=True)
        async with self:
            self.exporting = False
            self.export_name = result.download_name
            self.export_url = url
            charged = format_credits(result.charged)
            self.notice = f"Exported {result.width} × {result.height} px" + (
                f", {charged} credits charged." if result.charged else ", nothing charged."
            )
            await self.current_account()
        yield EditorState.refresh_quote
        yield rx.download(url=url, filename=result.download_name)
