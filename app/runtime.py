"""What the Reflex layer and the HTTP routes inject into use cases: settings, engine, clock."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

import stripe
from sqlalchemy import Engine

from app.db import engine_for
from app.services.api_limits import RateLimiter
from app.services.billing.stripe_billing import StripeConfig, make_client
from app.services.clock import Clock, SystemClock
from app.services.identity.oauth import OAuthConfig
from app.services.limits import LimitStore, MemoryLimitStore, RedisLimitStore
from app.services.mail import Outbox
from app.settings import Settings, get_settings

_clock: Clock = SystemClock()
T = TypeVar("T")
# Password hashing (argon2, tens of milliseconds of several cores each) gets threads of its own:
# in asyncio's shared default pool a storm of sign-ins would hold every thread, and each image
# load or page event would queue behind them.
_password_pool = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 1, thread_name_prefix="cutout-passwords"
)


async def password_work(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a use case that hashes or checks a password, off the event loop and the shared pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_password_pool, functools.partial(fn, **kwargs))


def settings() -> Settings:
    return get_settings()


def db() -> Engine:
    return engine_for(get_settings().db_url)


def clock() -> Clock:
    return _clock


@lru_cache(maxsize=1)
def outbox() -> Outbox:
    """The process's one outbox: mail is delivered by its worker thread, never by a request."""
    s = get_settings()
    return Outbox(smtp_url=s.smtp_url.get_secret_value(), sender=s.mail_sender)


def oauth_config() -> OAuthConfig:
    s = get_settings()
    return OAuthConfig(
        public_url=s.public_url,
        session_secret=s.session_secret.get_secret_value(),
        google_client_id=s.oauth_google_client_id,
        google_client_secret=s.oauth_google_client_secret.get_secret_value(),
        github_client_id=s.oauth_github_client_id,
        github_client_secret=s.oauth_github_client_secret.get_secret_value(),
        oidc_name=s.oidc_name,
        oidc_discovery_url=s.oidc_discovery_url,
        oidc_client_id=s.oidc_client_id,
        oidc_client_secret=s.oidc_client_secret.get_secret_value(),
    )


def stripe_client() -> stripe.StripeClient | None:
    """The Stripe client, or None while billing is not configured."""
    config = StripeConfig.from_settings(get_settings())
    return _stripe_client(config.secret_key, config.api_base) if config.enabled else None


@lru_cache(maxsize=2)
def _stripe_client(secret_key: str, api_base: str) -> stripe.StripeClient:
    # One client per process: it keeps its HTTP connections open between calls.
    return make_client(secret_key, api_base)


@lru_cache(maxsize=1)
def api_limiter() -> RateLimiter:
    """The API's per-minute counts, in the same store as the abuse counters (shared in Redis)."""
    return RateLimiter(get_settings().api_megapixel_images_per_minute, limits())


@lru_cache(maxsize=1)
def limits() -> LimitStore:
    """Abuse counters: in Redis when one is configured (every web worker shares them), else here."""
    url = get_settings().redis_url
    return RedisLimitStore.from_url(url) if url else MemoryLimitStore()
