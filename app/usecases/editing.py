"""The photo editor: mask edits kept per job, a quick preview on a reduced copy, and exports at
full resolution through the one pipeline.

Brush strokes, previews and re-exports are free. AI Cut and hair refinement are priced options:
each is charged once per photo, at the first export that uses it, through the ledger's two
phases (reserve before the work, capture after it, release if it fails). The quoted cost is
checked again when the export starts, so a person never pays other than what they were shown.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

import cv2
import numpy as np
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session

from app.db import reading, writing
from app.models.accounts import Account
from app.models.jobs import JobStatus
from app.models.ledger import ReservationStatus, Wallet
from app.services import errors
from app.services.billing import ledger
from app.services.billing.entitlements import entitlement
from app.services.billing.pricing import Feature, cost_of
from app.services.clock import Clock
from app.services.identity.auth import account_owner
from app.services.imaging import pipeline, retouch
from app.services.imaging.editor import BadParameter, EditSpec
from app.services.imaging.images import ImageRejected, load_image
from app.services.jobs import cutouts, edit_files, storage
from app.services.jobs.cutouts import JobNotFound, JobView
from app.services.jobs.edit_files import History
from app.services.jobs.storage import JobFile
from app.settings import Settings
from app.usecases.accounts import NotAllowed
from app.usecases.cutouts import limits_for

# The preview's working copy: long side in pixels. Big enough to judge an edge on a phone,
# small enough that every change renders in a fraction of a second.
PREVIEW_SIDE = 1024
BACKGROUND_SIDE = 4096  # an uploaded background is kept at most this large
PREVIEW_QUALITY = 80
EXPORT_FAILED = "The export failed (reference {}); nothing was charged."
TOO_SLOW = "The export took longer than its hold on your credits allowed; nothing was charged."


class NotEditable(NotAllowed):
    """The job has no finished cutout to edit (still queued, processing, or failed)."""


class PriceChanged(NotAllowed):
    def __init__(self, cost: int) -> None:
        super().__init__("The price of this export changed; check it and confirm again.")
        self.cost = cost


@dataclass(frozen=True)
class EditorView:
    job: JobView
    steps: int  # in effect
    redoable: int
    hair: bool
    paid: frozenset[Feature]
    has_background: bool
    look: edit_files.Look  # as the photo was last drawn


@dataclass(frozen=True)
class ExportQuote:
    cost: int  # milli-credits for the priced options not yet paid for this photo
    available: int
    unpaid: tuple[Feature, ...]

    @property
    def enough(self) -> bool:
        return self.available >= self.cost


@dataclass(frozen=True)
class ExportResult:
    name: str  # the file's name in the job's editor folder
    download_name: str
    width: int
    height: int
    charged: int  # milli-credits


@dataclass(frozen=True)
class PreviewDrawn:
    seconds: float
    width: int
    height: int


# --- what a job's edits are ------------------------------------------------------------


def _edits(history: History) -> retouch.MaskEdits:
    return retouch.MaskEdits(tuple(retouch.step_from(raw) for raw in history.active), history.hair)


def _editable(db: Engine, account_id: int, job_id: str) -> JobView:
    with reading(db) as session:
        job = cutouts.get_job(session=session, owner=account_owner(account_id), job_id=job_id)
    if job.status != JobStatus.done:
        raise NotEditable("This photo has no finished cutout to edit yet.")
    return job


def _charge_key(job_id: str, feature: Feature, attempt: int) -> str:
    return f"edit:{job_id}:{feature.value}:{attempt}"


def _paid(session: Session, account_id: int, job_id: str, history: History) -> frozenset[Feature]:
    paid = set()
    for feature in (Feature.ai_cut, Feature.hair):
        for attempt in range(history.attempt + 1):
            found = ledger.find_reservation(
                session=session, account_id=account_id, key=_charge_key(job_id, feature, attempt)
            )
            if found is not None and found.status == ReservationStatus.captured:
                paid.add(feature)
                break
    return frozenset(paid)


def surcharge(job: JobView, feature: Feature) -> int:
    """What one priced option adds to this photo, by the one price table."""
    return cost_of(job.width, job.height, (feature,)) - cost_of(job.width, job.height)


def _view(db: Engine, settings: Settings, account_id: int, job: JobView) -> EditorView:
    history = edit_files.load_history(settings, job.id)
    with reading(db) as session:
        paid = _paid(session, account_id, job.id, history)
    return EditorView(
        job=job,
        steps=history.position,
        redoable=len(history.steps) - history.position,
        hair=history.hair,
        paid=paid,
        has_background=edit_files.path(settings, job.id, edit_files.BACKGROUND).is_file(),
        look=edit_files.load_look(settings, job.id),
    )


def open_editor(*, db: Engine, settings: Settings, account_id: int, job_id: str) -> EditorView:
    """The account's finished job, ready to edit (its working copy made on first open)."""
    job = _editable(db, account_id, job_id)
    _work_copy(settings, job)
    return _view(db, settings, account_id, job)


def add_step(
    *, db: Engine, settings: Settings, account_id: int, job_id: str, step: retouch.Step
) -> EditorView:
    """Append a brush stroke or an AI Cut (dropping anything that could be redone)."""
    job = _editable(db, account_id, job_id)
    retouch.check(retouch.MaskEdits((step,)), job.width, job.height)
    history = edit_files.load_history(settings, job.id)
    history.steps = history.active + [retouch.step_data(step)]
    history.position = len(history.steps)
    edit_files.save_history(settings, job.id, history)
    return _view(db, settings, account_id, job)


def move_in_history(
    *, db: Engine, settings: Settings, account_id: int, job_id: str, by: int
) -> EditorView:
    """Undo (by=-1) or redo (by=+1); at either end nothing changes."""
    job = _editable(db, account_id, job_id)
    history = edit_files.load_history(settings, job.id)
    history.position = min(max(history.position + by, 0), len(history.steps))
    edit_files.save_history(settings, job.id, history)
    return _view(db, settings, account_id, job)


def set_hair(
    *, db: Engine, settings: Settings, account_id: int, job_id: str, on: bool
) -> EditorView:
    job = _editable(db, account_id, job_id)
    history = edit_files.load_history(settings, job.id)
    history.hair = on
    edit_files.save_history(settings, job.id, history)
    return _view(db, settings, account_id, job)


def save_background(
    *,
    db: Engine,
    settings: Settings,
    account_id: int,
    job_id: str,
    filename: str,
    data: bytes,
) -> EditorView:
    """Check and keep an uploaded background photo; ImageRejected says why not."""
    job = _editable(db, account_id, job_id)
    loaded = load_image(data, filename=filename, limits=limits_for(settings))
    picture = loaded.image.convert("RGB")
    picture.thumbnail((BACKGROUND_SIDE, BACKGROUND_SIDE), Image.Resampling.LANCZOS)
    edit_files.write_atomic(
        edit_files.path(settings, job.id, edit_files.BACKGROUND), _jpeg(picture, 92)
    )
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    edit_files.write_atomic(
        edit_files.path(settings, job.id, edit_files.BACKGROUND_SMALL), _jpeg(picture, 85)
    )
    return _view(db, settings, account_id, job)


def _jpeg(picture: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- the quick preview -----------------------------------------------------------------


@dataclass(frozen=True)
class _Work:
    rgb: np.ndarray
    alpha: np.ndarray
    factor: float  # the copy's size over the photo's


_lock = threading.Lock()
_works: OrderedDict[str, _Work] = OrderedDict()
_masks: OrderedDict[tuple[str, retouch.MaskEdits], np.ndarray] = OrderedDict()
_KEEP_WORKS = 8
_KEEP_MASKS = 48


def _remember(cache: OrderedDict, key: object, value: object, keep: int) -> None:  # type: ignore[type-arg]
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > keep:
            cache.popitem(last=False)


def _recall(cache: OrderedDict, key: object) -> object | None:  # type: ignore[type-arg]
    with _lock:
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
        return found


def _full_size(settings: Settings, job: JobView) -> tuple[Image.Image, np.ndarray]:
    """The photo as uploaded (upright) and the model's mask from the paid-for cutout."""
    original = load_image(
        storage.read_original(settings, job.id),
        filename=job.original_name,
        limits=limits_for(settings),
    ).image
    with Image.open(storage.file_path(settings, job.id, JobFile.cutout)) as cutout:
        alpha = np.asarray(cutout.getchannel("A"))
    return original, alpha


def _work_copy(settings: Settings, job: JobView) -> _Work:
    found = _recall(_works, job.id)
    if isinstance(found, _Work):
        return found
    stored = edit_files.path(settings, job.id, edit_files.WORK)
    if stored.is_file():
        pixels = np.asarray(Image.open(stored).convert("RGBA"))
    else:
        original, alpha = _full_size(settings, job)
        factor = min(1.0, PREVIEW_SIDE / max(job.width, job.height))
        size = (max(1, round(job.width * factor)), max(1, round(job.height * factor)))
        rgb = cv2.resize(np.asarray(original.convert("RGB")), size, interpolation=cv2.INTER_AREA)
        small_alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        pixels = np.dstack([rgb, small_alpha])
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="RGBA").save(buffer, format="PNG", compress_level=1)
        edit_files.write_atomic(stored, buffer.getvalue())
    work = _Work(
        np.ascontiguousarray(pixels[..., :3]),
        np.ascontiguousarray(pixels[..., 3]),
        pixels.shape[1] / job.width,
    )
    _remember(_works, job.id, work, _KEEP_WORKS)
    return work


def _preview_mask(job_id: str, work: _Work, edits: retouch.MaskEdits) -> np.ndarray:
    """The edited mask at preview size, from the longest already-computed run of steps: after
    a new stroke only that stroke is drawn, and undo finds its answer waiting."""
    height, width = work.alpha.shape
    scaled = retouch.scaled(edits, work.factor, width, height)
    done = len(scaled.steps)
    while done >= 0:
        found = _recall(_masks, (job_id, replace(scaled, steps=scaled.steps[:done])))
        if isinstance(found, np.ndarray):
            mask = found
            break
        done -= 1
    else:
        base = replace(scaled, steps=())
        mask = retouch.apply(work.rgb, work.alpha, base)
        _remember(_masks, (job_id, base), mask, _KEEP_MASKS)
        done = 0
    for index in range(done, len(scaled.steps)):
        mask = retouch.apply_step(work.rgb, mask, scaled.steps[index], scaled.steps[:index])
        key = (job_id, replace(scaled, steps=scaled.steps[: index + 1]))
        _remember(_masks, key, mask, _KEEP_MASKS)
    return mask


def editing_view(spec: EditSpec) -> EditSpec:
    """The spec without its layout: while brushing, the preview keeps the photo's geometry so
    a finger on the screen is a point on the photo."""
    return replace(spec, crop=False, canvas="original", position=None, scale=1.0, margin=0)


def render_preview(
    *,
    db: Engine,
    settings: Settings,
    account_id: int,
    job_id: str,
    spec: EditSpec,
    look: edit_files.Look | None = None,
) -> PreviewDrawn:
    """Draw the preview of `spec` and the job's edits; once drawn, `look` (the controls that
    made `spec`) is kept, so the photo reopens as it was left."""
    started = time.perf_counter()
    job = _editable(db, account_id, job_id)
    work = _work_copy(settings, job)
    history = edit_files.load_history(settings, job.id)
    mask = _preview_mask(job.id, work, _edits(history))
    small = replace(
        spec,
        margin=round(spec.margin * work.factor),
        format="webp",
        quality=PREVIEW_QUALITY,
        max_side=None,
    )
    result = pipeline.edit(
        work.rgb,
        mask,
        retouch.MaskEdits(),
        pipeline.CutoutRequest(spec=small, background=_background(settings, job.id, small=True)),
    )
    edit_files.write_atomic(edit_files.path(settings, job.id, edit_files.PREVIEW), result.data)
    if look is not None:
        edit_files.save_look(settings, job.id, look)
    return PreviewDrawn(time.perf_counter() - started, result.width, result.height)


def _background(settings: Settings, job_id: str, *, small: bool) -> Image.Image | None:
    name = edit_files.BACKGROUND_SMALL if small else edit_files.BACKGROUND
    stored = edit_files.path(settings, job_id, name)
    if not stored.is_file():
        return None
    with Image.open(stored) as picture:
        return picture.convert("RGB")


# --- exporting -------------------------------------------------------------------------


def export_quote(
    *, db: Engine, settings: Settings, clock: Clock, account_id: int, job_id: str
) -> ExportQuote:
    """What exporting the job's current edits costs now: the priced options it uses that
    this photo has not paid for yet. Nothing else (re-exports, other formats) costs anything."""
    job = _editable(db, account_id, job_id)
    history = edit_files.load_history(settings, job.id)
    used = _edits(history).charged
    with reading(db) as session:
        paid = _paid(session, account_id, job.id, history)
        available = ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available
    unpaid = tuple(sorted(used - paid))
    return ExportQuote(sum(surcharge(job, f) for f in unpaid), available, unpaid)


def export_edit(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    account_id: int,
    job_id: str,
    spec: EditSpec,
    expected_cost: int,
    look: edit_files.Look | None = None,
) -> ExportResult:
    """Render the edits at full resolution in the asked format, charging what was quoted;
    once exported, `look` (the controls that made `spec`) is kept with the photo.

    Blocking (hair refinement and a 25 MP render take seconds): call it from the worker pool.
    Raises PriceChanged, InsufficientCredits or NotAllowed before anything is charged, and
    NotAllowed (with a reference) if the work fails, after releasing the hold.
    """
    quote = export_quote(
        db=db, settings=settings, clock=clock, account_id=account_id, job_id=job_id
    )
    if quote.cost != expected_cost:
        raise PriceChanged(quote.cost)
    job = _editable(db, account_id, job_id)
    history = edit_files.load_history(settings, job.id)
    keys: list[tuple[str, int]] = []
    if quote.unpaid:
        history.attempt += 1  # fresh keys: an earlier attempt's closed holds stay closed
        edit_files.save_history(settings, job.id, history)
        keys = [(_charge_key(job.id, f, history.attempt), surcharge(job, f)) for f in quote.unpaid]
        with writing(db) as session:
            _refuse_overlap(session, clock, account_id, job.id, history)
            for feature, (key, amount) in zip(quote.unpaid, keys, strict=True):
                allowed = _entitled(session, clock, account_id, feature)
                ledger.reserve_credits(
                    session=session,
                    clock=clock,
                    account_id=account_id,
                    wallet=allowed[0],
                    amount=amount,
                    key=key,
                    timeout_seconds=settings.reservation_timeout_seconds,
                    sources=allowed[1],
                )
    try:
        original, alpha = _full_size(settings, job)
        background = _background(settings, job.id, small=False)
        result = pipeline.edit(
            original,
            alpha,
            _edits(history),
            pipeline.CutoutRequest(spec=spec, background=background),
        )
        name = edit_files.export_name(result.extension)
        target = edit_files.path(settings, job.id, name)
        staged = edit_files.stage(target, result.data)
    except (BadParameter, ImageRejected) as refused:
        _release(db, clock, account_id, keys)
        raise NotAllowed(str(refused)) from None
    except Exception as error:
        ref = errors.report(error, f"export of job {job.id}")
        _release(db, clock, account_id, keys)
        raise NotAllowed(EXPORT_FAILED.format(ref)) from None
    if keys:
        try:
            with writing(db) as session:
                for key, amount in keys:
                    ledger.capture_reservation(
                        session=session, clock=clock, account_id=account_id, key=key, amount=amount
                    )
        except ledger.ReservationClosed:
            staged.unlink(missing_ok=True)
            _release(db, clock, account_id, keys)
            raise NotAllowed(TOO_SLOW) from None
    staged.replace(target)
    if look is not None:
        edit_files.save_look(settings, job.id, look)
    return ExportResult(
        name=name,
        download_name=export_download_name(job, result.extension),
        width=result.width,
        height=result.height,
        charged=sum(amount for _, amount in keys),
    )


def export_download_name(job: JobView, extension: str) -> str:
    return f"{PurePath(job.download_name).stem}-edited.{extension}"


def _entitled(
    session: Session, clock: Clock, account_id: int, feature: Feature
) -> tuple[Wallet, tuple | None]:  # type: ignore[type-arg]
    account = session.get(Account, account_id)
    if account is None:
        raise NotAllowed("This account no longer exists.")
    allowed = entitlement(session=session, account=account, feature=feature, clock=clock)
    if not allowed.allowed or allowed.wallet is None:
        raise NotAllowed(allowed.reason)
    return allowed.wallet, allowed.sources


def _refuse_overlap(
    session: Session, clock: Clock, account_id: int, job_id: str, history: History
) -> None:
    """Under the write lock: a second charged export of the same photo while one holds credits
    (two tabs, a double tap) would pay twice; it waits for the first instead."""
    for feature in (Feature.ai_cut, Feature.hair):
        for attempt in range(history.attempt):
            held = ledger.find_reservation(
                session=session, account_id=account_id, key=_charge_key(job_id, feature, attempt)
            )
            if held is not None and ledger.is_live(held, clock.now()):
                raise NotAllowed("An export of this photo is already under way; wait for it.")
            if held is not None and held.status == ReservationStatus.captured:
                raise PriceChanged(0)


def _release(db: Engine, clock: Clock, account_id: int, keys: list[tuple[str, int]]) -> None:
    if not keys:
        return
    with writing(db) as session:
        for key, _ in keys:
            found = ledger.find_reservation(session=session, account_id=account_id, key=key)
            if found is not None and ledger.is_live(found, clock.now()):
                ledger.release_reservation(
                    session=session, clock=clock, account_id=account_id, key=key
                )


EDITOR_FILES = frozenset({edit_files.PREVIEW}) | {
    edit_files.export_name(ext) for ext in ("png", "jpg", "webp")
}


def editor_file(
    *, db: Engine, settings: Settings, account_id: int, job_id: str, name: str
) -> tuple[Path, JobView]:
    """A job's preview or export, for its owner only; JobNotFound for anything else."""
    if name not in EDITOR_FILES:
        raise JobNotFound(job_id)
    with reading(db) as session:
        job = cutouts.get_job(session=session, owner=account_owner(account_id), job_id=job_id)
    found = edit_files.path(settings, job_id, name)
    if not found.is_file():
        raise JobNotFound(job_id)
    return found, job
