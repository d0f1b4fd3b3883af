"""The API tests' server: Cutout's /v1.0 routes (uvicorn on 127.0.0.1, in a thread) with the
public-CORS wrapper, a real migrated SQLite database, the real model and a frozen clock."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as photos
from sqlalchemy import Engine
from starlette.applications import Starlette

from app.api.removebg import PublicApiCors, removebg_routes
from app.db import reading, writing
from app.models.ledger import LotScope, LotSource, Wallet
from app.services.api_limits import RateLimiter
from app.services.billing import ledger
from app.services.clock import FrozenClock
from app.services.identity.api_keys import create_api_key
from app.services.limits import LimitStore, MemoryLimitStore, RedisLimitStore
from app.settings import Settings
from tests.conftest import confirmed_account, free_port
from tests.integration.stripe_shop import serve


@dataclass
class ApiServer:
    url: str
    db: Engine
    clock: FrozenClock
    settings: Settings
    limiter: RateLimiter

    def account_with_key(self, email: str, *, api_credits: int = 0) -> tuple[int, str]:
        """A confirmed account (with the settings' trial), `api_credits` more API-only
        milli-credits, and a new key: (account id, raw key)."""
        summary = confirmed_account(self.db, self.clock, self.settings, email)
        with writing(self.db) as session:
            if api_credits:
                ledger.grant_credits(
                    session=session,
                    clock=self.clock,
                    account_id=summary.id,
                    amount=api_credits,
                    scope=LotScope.api,
                    source=LotSource.api_pack,
                    key=f"test-pack-{email}",
                )
            key = create_api_key(session=session, clock=self.clock, account_id=summary.id, name="t")
        return summary.id, key.raw_key

    def api_available(self, account_id: int) -> int:
        with reading(self.db) as session:
            wallets = ledger.balance(session=session, clock=self.clock, account_id=account_id)
            return wallets[Wallet.api].available


@contextmanager
def open_api(
    db: Engine, settings: Settings, clock: FrozenClock, **overrides: Any
) -> Iterator[ApiServer]:
    current = settings.model_copy(update=overrides)
    with ExitStack() as stack:
        if current.jobs == "celery":
            # Scaled: the model step runs on a real Celery worker sharing this data folder, and
            # the rate limit counts in Redis (under a prefix of this server's own).
            from tests.integration.scaled_stack import Workers

            workers = Workers(current, current.data_dir)
            stack.callback(workers.stop_all)
            current.data_dir.mkdir(parents=True, exist_ok=True)
            workers.start("api-worker")
            store: LimitStore = RedisLimitStore.from_url(
                current.redis_url, prefix=f"cutout:test:{uuid.uuid4().hex}:"
            )
        else:
            store = MemoryLimitStore()
        yield stack.enter_context(
            _serve(db, current, clock, RateLimiter(current.api_megapixel_images_per_minute, store))
        )


@contextmanager
def _serve(
    db: Engine, current: Settings, clock: FrozenClock, limiter: RateLimiter
) -> Iterator[ApiServer]:
    app = PublicApiCors(
        Starlette(
            routes=removebg_routes(
                db=lambda: db,
                clock=lambda: clock,
                settings=lambda: current,
                limiter=lambda: limiter,
            )
        )
    )
    with serve(app, free_port()) as url:
        yield ApiServer(url, db, clock, current, limiter)


def photo_bytes(name: str = "astronaut", *, size: tuple[int, int] | None = None) -> bytes:
    """A real photo from scikit-image as JPEG bytes, optionally resized."""
    image = Image.fromarray(np.asarray(getattr(photos, name)())).convert("RGB")
    if size:
        image = image.resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
