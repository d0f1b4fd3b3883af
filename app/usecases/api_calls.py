"""The remove.bg-compatible API's calls: who is calling, what their API wallet holds, one cutout.

A call is charged like a web job, in two phases around the work: the most the result can cost
is held from the API wallet in one unit of work, the pipeline runs outside any, and the real
cost (by the result's resolution) is captured in one more. Any refusal or failure releases the
hold: an error never costs credits.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass

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
from app.settings import Settings


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
        lot.remaining - lot.reserved
        for lot in wallet.lots
        if lot.source == LotSource.subscription
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
    """One call, start to finish; blocking (run it on the worker pool).

    Raises OptionError (400), api_limits.RateLimited (429) or ApiRefused (402, 403) with
    nothing charged.
    """
    original = check_image(image_data, settings=settings, field="image_file")
    roi = options.roi_box(original.width, original.height)  # in the photo's own pixels
    background = (
        check_image(background_data, settings=settings, field="bg_image_file")
        if background_data is not None
        else None
    )
    fitted_w, fitted_h = removebg_layout.fitted_size(
        original.width, original.height, options.max_pixels
    )
    rate = limiter.take(
        caller.account_id, api_limits.units_of(fitted_w, fitted_h), clock.now()
    )
    hold = cost_of(*removebg_layout.largest_output(fitted_w, fitted_h, options), (Feature.api,))
    key = f"api:{secrets.token_urlsafe(18)}"
    _reserve(db, settings, clock, caller, hold, key)
    try:
        image = pipeline.fit_to(original, options.max_pixels)
        model = engine.load_session(
            settings.models_path, settings.model_name, settings.onnx_thread_count
        )
        exported = pipeline.run_removebg(
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
            background=background,
        )
        charged = min(hold, cost_of(exported.width, exported.height, (Feature.api,)))
    except BaseException:
        _release(db, clock, caller, key)
        raise
    with writing(db) as session:
        ledger.capture_reservation(
            session=session, clock=clock, account_id=caller.account_id, key=key, amount=charged
        )
    reported_type = options.type if options.type != "auto" else "other"
    return ApiResult(exported=exported, charged=charged, type=reported_type, rate=rate)


def _reserve(
    db: Engine, settings: Settings, clock: Clock, caller: Caller, amount: int, key: str
) -> None:
    with writing(db) as session:
        account = session.get(Account, caller.account_id)
        if account is None:
            raise ApiRefused(403, "auth_failed", "Invalid API key", "the account is gone")
        allowed = entitlement(session=session, account=account, feature=Feature.api, clock=clock)
        if not allowed.allowed or allowed.wallet is None:
            raise ApiRefused(403, "not_allowed", "Not allowed", allowed.reason)
        try:
            ledger.reserve_credits(
                session=session,
                clock=clock,
                account_id=caller.account_id,
                wallet=allowed.wallet,
                amount=amount,
                key=key,
                timeout_seconds=settings.reservation_timeout_seconds,
                sources=allowed.sources,
            )
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
