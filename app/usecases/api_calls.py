"""The remove.bg-compatible API's calls: who is calling, what their API wallet holds, one cutout.

A call is charged like a web job, in two phases around the work: the most the result can cost
is held from the API wallet in one unit of work, the pipeline runs outside any, and the real
cost (by the result's resolution) is captured in one more. Any refusal or failure releases the
hold: an error never costs credits.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from dataclasses import dataclass
from typing import Any

from PIL import Image
from sqlalchemy import Engine

from app.db import reading, writing
from app.models.accounts import Account
from app.models.ledger import LotSource, Wallet
from app.services import api_limits
from app.services.billing import ledger
from app.services.billing.entitlements import entitlement
from app.services.billing.pricing import MILLI, Feature, cost_of
from app.services.clock import Clock
from app.services.identity import api_keys
from app.services.imaging import engine, pipeline, removebg_layout
from app.services.imaging.editor import Exported
from app.services.imaging.images import ImageRejected, Limits, load_image
from app.services.imaging.removebg_options import OptionError, Options
from app.services.jobs import dispatch
from app.settings import Settings
from app.usecases import charges


class ApiRefused(Exception):
    """A call refused before any work: `status` and remove.bg's `code` say why."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Caller:
    account_id: int


@dataclass(frozen=True)
class ApiResult:
    exported: Exported
    charged: int  # milli-credits
    type: str
    rate: api_limits.RateState


@dataclass(frozen=True)
class ApiCredits:
    """The API wallet as remove.bg's account endpoint reports it (milli-credits)."""

    total: int
    subscription: int
    payg: int
    enterprise: int


def credits_text(milli: int) -> str:
    """Milli-credits as remove.bg writes credits in X-Credits-Charged: '0.5', '1.1', '2'."""
    whole, rest = divmod(milli, MILLI)
    return f"{whole}.{rest:03d}".rstrip("0").rstrip(".") if rest else str(whole)


def authenticate(*, db: Engine, clock: Clock, raw_key: str | None) -> Caller:
    """The account behind an X-Api-Key value; ApiRefused(403) for a missing or bad key."""
    if not raw_key:
        raise ApiRefused(403, "auth_failed", "Missing API key", "send your key in X-Api-Key")
    try:
        with writing(db) as session:  # records when the key was last used
            account = api_keys.authenticate_api_key(
                session=session, clock=clock, raw_key=raw_key.strip()
            )
    except api_keys.InvalidApiKey:
        raise ApiRefused(
            403, "auth_failed", "Invalid API key", "the key is wrong or revoked"
        ) from None
    assert account.id is not None
    return Caller(account.id)


def api_credits(*, db: Engine, clock: Clock, caller: Caller) -> ApiCredits:
    with reading(db) as session:
        wallet = ledger.balance(session=session, clock=clock, account_id=caller.account_id)[
            Wallet.api
        ]
    subscription = sum(
        lot.remaining - lot.reserved for lot in wallet.lots if lot.source == LotSource.subscription
    )
    total = wallet.available
    return ApiCredits(
        total=total, subscription=subscription, payg=total - subscription, enterprise=0
    )


def check_image(data: bytes, *, settings: Settings, field: str) -> Image.Image:
    """Decode an uploaded or fetched image, or ApiRefused with remove.bg's code."""
    if len(data) > settings.max_upload_bytes:
        raise OptionError(
            "file_too_large",
            f"{field} is {len(data) / 2**20:.1f} MB; the limit is "
            f"{settings.max_upload_bytes / 2**20:.0f} MB",
        )
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # noqa: BLE001 - anything Pillow cannot open is the caller's bad file
        width = height = 0
    if width * height > settings.max_pixels:
        raise OptionError(
            "resolution_too_high",
            f"{field} is {width}x{height}; the limit is {settings.max_megapixels:g} megapixels",
        )
    code = "failed_to_read_image" if field.startswith("image") else "failed_to_read_bg_image"
    try:
        limits = Limits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        return load_image(data, filename=field, limits=limits).image
    except ImageRejected as rejected:
        raise OptionError(code, rejected.message) from None


@dataclass(frozen=True)
class Reserved:
    """A call accepted and its most possible cost held: what settling it needs."""

    caller: Caller
    key: str  # the hold's key: capture or release happens once, whoever asks twice
    hold: int  # milli-credits
    rate: api_limits.RateState
    options: Options


@dataclass(frozen=True)
class Checked:
    """The decoded photo and background of an accepted call."""

    original: Image.Image
    background: Image.Image | None


def reserve_call(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    limiter: api_limits.RateLimiter,
    caller: Caller,
    image_data: bytes,
    options: Options,
    background_data: bytes | None = None,
) -> tuple[Reserved, Checked]:
    """Check the images, count the rate limit and hold the most the result can cost.

    Raises OptionError (400), api_limits.RateLimited (429) or ApiRefused (402, 403) with
    nothing charged and nothing held.
    """
    original = check_image(image_data, settings=settings, field="image_file")
    options.roi_box(original.width, original.height)  # refuses a roi outside the photo now
    background = (
        check_image(background_data, settings=settings, field="bg_image_file")
        if background_data is not None
        else None
    )
    fitted_w, fitted_h = removebg_layout.fitted_size(
        original.width, original.height, options.max_pixels
    )
    rate = limiter.take(caller.account_id, api_limits.units_of(fitted_w, fitted_h), clock.now())
    hold = cost_of(*removebg_layout.largest_output(fitted_w, fitted_h, options), (Feature.api,))
    key = f"api:{secrets.token_urlsafe(18)}"
    _reserve(db, settings, clock, caller, hold, key)
    return Reserved(caller, key, hold, rate, options), Checked(original, background)


def run_model(*, settings: Settings, checked: Checked, options: Options) -> Exported:
    """The model step of a call, wherever it runs (the web's pool or a Celery worker)."""
    original = checked.original
    roi = options.roi_box(original.width, original.height)  # in the photo's own pixels
    image = pipeline.fit_to(original, options.max_pixels)
    model = engine.load_session(
        settings.models_path, settings.model_name, settings.onnx_thread_count
    )
    return pipeline.run_removebg(
        model,
        image,
        options,
        roi=removebg_layout.scaled_box(
            roi,
            image.width / original.width,
            image.height / original.height,
            image.width,
            image.height,
        ),
        background=checked.background,
    )


def run_model_on(
    *, settings: Settings, image_data: bytes, options: Options, background_data: bytes | None
) -> Exported:
    """The model step from the images' bytes (a Celery worker's side of a queued call)."""
    checked = Checked(
        check_image(image_data, settings=settings, field="image_file"),
        check_image(background_data, settings=settings, field="bg_image_file")
        if background_data is not None
        else None,
    )
    return run_model(settings=settings, checked=checked, options=options)


def settle_call(*, db: Engine, clock: Clock, reserved: Reserved, exported: Exported) -> ApiResult:
    """Capture what the result costs (never more than was held); the rest goes back."""
    charged = min(reserved.hold, cost_of(exported.width, exported.height, (Feature.api,)))
    charges.capture(
        db=db, clock=clock, account_id=reserved.caller.account_id, key=reserved.key, amount=charged
    )
    options = reserved.options
    reported_type = options.type if options.type != "auto" else "other"
    return ApiResult(exported=exported, charged=charged, type=reported_type, rate=reserved.rate)


def release_call(*, db: Engine, clock: Clock, reserved: Reserved) -> None:
    """Hand a failed call's hold back (nothing when it was settled or lapsed already)."""
    _release(db, clock, reserved.caller, reserved.key)


def remove_background(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    limiter: api_limits.RateLimiter,
    caller: Caller,
    image_data: bytes,
    options: Options,
    background_data: bytes | None = None,
) -> ApiResult:
    """One call, start to finish, in this process; blocking (run it on the worker pool).

    Raises OptionError (400), api_limits.RateLimited (429) or ApiRefused (402, 403) with
    nothing charged.
    """
    reserved, checked = reserve_call(
        db=db,
        settings=settings,
        clock=clock,
        limiter=limiter,
        caller=caller,
        image_data=image_data,
        options=options,
        background_data=background_data,
    )
    try:
        exported = run_model(settings=settings, checked=checked, options=options)
    except BaseException:
        release_call(db=db, clock=clock, reserved=reserved)
        raise
    return settle_call(db=db, clock=clock, reserved=reserved, exported=exported)


async def remove_background_queued(
    *,
    db: Engine,
    settings: Settings,
    clock: Clock,
    limiter: api_limits.RateLimiter,
    caller: Caller,
    image_data: bytes,
    options: Options,
    background_data: bytes | None = None,
    queue: dispatch.ApiQueue,
) -> ApiResult:
    """One call with its model step on a Celery worker (CUTOUT_JOBS=celery).

    Refusals come from this process before anything is queued, as with the pool. The images
    travel through the shared result store, never through the broker; the worker hands back
    the exported file the same way. Any failure or timeout releases the hold: only this
    function captures, once, under the hold's key, so a worker that dies mid-call (and whose
    task is delivered again) can never charge twice.
    """
    reserved, _ = await asyncio.to_thread(
        reserve_call,
        db=db,
        settings=settings,
        clock=clock,
        limiter=limiter,
        caller=caller,
        image_data=image_data,
        options=options,
        background_data=background_data,
    )
    call = dispatch.DispatchedApiCall(
        call_id=dispatch.new_api_call_id(),
        options=dispatch.options_to_plain(options),
        has_background=background_data is not None,
    )
    try:
        await asyncio.to_thread(
            dispatch.stage_api_inputs, settings, call, image_data, background_data
        )
        exported = await queue.run(settings, call)
        return await asyncio.to_thread(
            settle_call, db=db, clock=clock, reserved=reserved, exported=exported
        )
    except BaseException:
        await asyncio.shield(asyncio.to_thread(release_call, db=db, clock=clock, reserved=reserved))
        raise
    finally:
        await asyncio.shield(asyncio.to_thread(dispatch.discard_api_files, settings, call))


def run_queued_call(*, settings: Settings, call: dispatch.DispatchedApiCall) -> dict[str, Any]:
    """A Celery worker's side of a queued call: the model on the staged images, the exported
    file written back to the store. Answers the result's description, or the 400 to send."""
    image_data, background_data = dispatch.read_api_inputs(settings, call)
    try:
        exported = run_model_on(
            settings=settings,
            image_data=image_data,
            options=dispatch.options_from_plain(call.options),
            background_data=background_data,
        )
    except OptionError as bad:
        return {"error": {"code": bad.code, "detail": bad.detail}}
    return dispatch.save_api_result(settings, call, exported)


def _reserve(
    db: Engine, settings: Settings, clock: Clock, caller: Caller, amount: int, key: str
) -> None:
    gone = ApiRefused(403, "auth_failed", "Invalid API key", "the account is gone")
    # The hold is a unit of work of its own (one database call on PostgreSQL). Reading the
    # entitlement first in a separate unit changes nothing there: PostgreSQL's reads take no
    # locks, and the ledger re-checks the account and its credits under the account's lock.
    with reading(db) as session:
        account = session.get(Account, caller.account_id)
        if account is None:
            raise gone
        allowed = entitlement(session=session, account=account, feature=Feature.api, clock=clock)
    if not allowed.allowed or allowed.wallet is None:
        raise ApiRefused(403, "not_allowed", "Not allowed", allowed.reason)
    try:
        charges.reserve(
            db=db,
            clock=clock,
            account_id=caller.account_id,
            wallet=allowed.wallet,
            amount=amount,
            key=key,
            timeout_seconds=settings.reservation_timeout_seconds,
            sources=allowed.sources,
        )
    except ledger.AccountNotFound:
        raise gone from None
    except ledger.InsufficientCredits as short:
        raise ApiRefused(
            402,
            "insufficient_credits",
            "Insufficient credits",
            f"this call needs up to {credits_text(short.needed)} API credits; "
            f"{credits_text(short.available)} are available",
        ) from None


def _release(db: Engine, clock: Clock, caller: Caller, key: str) -> None:
    with writing(db) as session:
        reservation = ledger.find_reservation(
            session=session, account_id=caller.account_id, key=key
        )
        if reservation is not None and ledger.is_live(reservation, clock.now()):
            ledger.release_reservation(
                session=session, clock=clock, account_id=caller.account_id, key=key
            )


def keys_of(*, db: Engine, account_id: int) -> list[api_keys.ApiKeyView]:
    """The account's usable keys (never the keys themselves), for the API page."""
    with reading(db) as session:
        return api_keys.list_api_keys(session=session, account_id=account_id)
