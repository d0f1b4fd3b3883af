"""Cutout's configuration: one settings class read from the environment (see README)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.services.billing.pricing import MEGAPIXEL, PRICE_TABLE

MB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob Cutout has. Nothing else in the code reads ``os.environ``."""

    model_config = SettingsConfigDict(env_prefix="CUTOUT_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path("data"), description="Root of everything Cutout stores.")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "CUTOUT_DATABASE_URL"),
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/cutout.db.",
    )
    models_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("U2NET_HOME", "CUTOUT_MODELS_DIR"),
        description="Folder holding the .onnx model files; default <data_dir>/models.",
    )
    model_name: str = Field(default="u2netp", description="rembg model name to load.")
    onnx_threads: int = Field(
        default=0, ge=0, description="onnxruntime intra-op threads; 0 = cores."
    )
    # As many images in flight as cores, as `cutout batch` runs them: one image's decoding and
    # encoding (single-threaded) overlap another's model run, so a bulk batch keeps pace with it.
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="Images processed at once per process; default: cores.",
    )
    jobs_per_account: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Images one account may have processing at once; 0 = all workers.",
    )
    bulk_max_files: int = Field(default=50, ge=1, le=500, description="Photos per bulk batch.")
    max_upload_bytes: int = Field(default=22 * MB, gt=0)
    max_megapixels: float = Field(default=25.0, gt=0)
    retention_hours: float = Field(default=24.0, gt=0)
    sweep_interval_seconds: float = Field(default=600.0, gt=0)

    # Plans and credits (credits in whole credits; the ledger keeps milli-credits).
    basic_price_cents: int = Field(default=3000, ge=0)
    basic_credits: int = Field(default=1000, ge=0)
    standard_price_cents: int = Field(default=4500, ge=0)
    standard_credits: int = Field(default=1000, ge=0)
    trial_credits: int = Field(default=10, ge=0)
    topup_credits: int = Field(default=250, gt=0)
    topup_price_cents: int = Field(default=1000, ge=0)
    api_pack_credits: int = Field(default=1000, gt=0)
    api_pack_price_cents: int = Field(default=3500, ge=0)
    lot_valid_days: int = Field(default=90, ge=1, le=3660)
    reservation_timeout_seconds: int = Field(default=600, ge=10)
    currency: str = Field(default="usd", min_length=3, max_length=3)

    # Accounts and sign-in.
    public_url: str = Field(default="http://localhost:3000", description="Base URL people use.")
    session_secret: SecretStr = Field(default=SecretStr(""), description="Signs OAuth state.")
    session_days: int = Field(default=30, ge=1, le=400)
    oauth_google_client_id: str = ""
    oauth_google_client_secret: SecretStr = SecretStr("")
    oauth_github_client_id: str = ""
    oauth_github_client_secret: SecretStr = SecretStr("")
    oidc_name: str = ""
    oidc_discovery_url: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")

    # Mail, email links and abuse limits.
    smtp_url: SecretStr = Field(
        default=SecretStr(""),
        description="smtp://, smtp+starttls:// or smtps://user:pw@host:port; empty: log links.",
    )
    mail_from: str = Field(default="", description="Sender address; default cutout@<public host>.")
    verify_link_hours: int = Field(default=48, ge=1, le=24 * 30)
    reset_link_minutes: int = Field(default=60, ge=5, le=24 * 60)
    trusted_proxy_hops: int = Field(
        default=0, ge=0, le=10, description="Reverse proxies whose X-Forwarded-For is trusted."
    )
    signups_per_hour: int = Field(
        default=10, ge=1, description="Sign-ups (and other mail-sending requests) per address."
    )
    uploads_per_minute: int = Field(default=60, ge=1, description="Uploads per account.")
    max_pending_uploads: int = Field(
        default=100, ge=1, description="Stored-but-unprocessed uploads per account."
    )
    # Try before signing up: a signed-out visitor's free preview cutout.
    trial_previews_per_day: int = Field(
        default=1, ge=0, description="Free previews per client address per day; 0 turns off."
    )
    trial_preview_megapixels: float = Field(
        default=0.25, gt=0, le=4, description="Size of a free preview cutout."
    )

    # The remove.bg-compatible HTTP API (/v1.0).
    api_megapixel_images_per_minute: int = Field(
        default=500, ge=1, description="API rate limit per account: images x started megapixels."
    )
    api_fetch_timeout_seconds: float = Field(
        default=15.0, gt=0, le=120, description="Time limit for fetching an image_url."
    )
    api_allow_private_urls: bool = Field(
        default=False,
        description="Let image_url reach loopback, private and link-local addresses (tests).",
    )

    # Stripe billing: off while the secret key or the webhook secret is empty.
    stripe_secret_key: SecretStr = Field(default=SecretStr(""), description="sk_live_/sk_test_")
    stripe_webhook_secret: SecretStr = Field(default=SecretStr(""), description="whsec_")
    stripe_api_base: str = Field(
        default="https://api.stripe.com", description="Stripe's API; tests use localstripe."
    )
    # Price ids; an empty one is looked up by its lookup key (see `cutout-admin stripe sync`).
    stripe_price_basic: str = ""
    stripe_price_standard: str = ""
    stripe_price_topup: str = ""
    stripe_price_api_pack: str = ""

    # Scaling out (README "Running at scale"): all empty, everything stays in one process.
    redis_url: str = Field(
        default="",
        validation_alias=AliasChoices("REFLEX_REDIS_URL", "CUTOUT_REDIS_URL"),
        description="redis://host:port/db: Reflex's shared state, rate limits, Celery's broker.",
    )
    jobs: Literal["inprocess", "celery"] = Field(
        default="inprocess", description="Where image work runs: this process's pool or Celery."
    )
    results_folder: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CUTOUT_RESULTS_DIR", "results_folder"),
        description="Shared folder for uploads and results; default <data_dir>/results.",
    )
    celery_queue: str = Field(
        default="cutout", min_length=1, max_length=64, description="Celery queue for image work."
    )
    celery_redeliver_seconds: int = Field(
        default=0,
        ge=0,
        description="Unacknowledged Celery jobs go back to the queue after this; 0: derived.",
    )

    @model_validator(mode="after")
    def _celery_needs_redis(self) -> Settings:
        if self.jobs == "celery" and not self.redis_url:
            raise ValueError("CUTOUT_JOBS=celery needs REFLEX_REDIS_URL (Celery's broker)")
        return self

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("max_megapixels", mode="after")
    @classmethod
    def _priced_megapixels(cls, value: float) -> float:
        # Refused at start-up, not at the first large upload that could not be priced.
        if value * MEGAPIXEL > PRICE_TABLE.max_pixels:
            raise ValueError(
                f"{value:g} megapixels is more than the price table covers "
                f"({PRICE_TABLE.max_pixels / MEGAPIXEL:g}); set it to at most that"
            )
        return value

    @property
    def models_path(self) -> Path:
        return (self.models_dir or self.data_dir / "models").expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cutout.db'}"

    @property
    def results_dir(self) -> Path:
        return (self.results_folder or self.data_dir / "results").expanduser().resolve()

    @property
    def redelivery_seconds(self) -> int:
        """How long a Celery job may stay unacknowledged before it is handed out again: past
        its reservation's lifetime, when the first worker can no longer capture anything."""
        return self.celery_redeliver_seconds or self.reservation_timeout_seconds + 60

    @property
    def billing_enabled(self) -> bool:
        """Stripe takes payments only with both secrets: without the webhook's, no renewal,
        refund or failed payment would ever reach the ledger."""
        return bool(
            self.stripe_secret_key.get_secret_value()
            and self.stripe_webhook_secret.get_secret_value()
        )

    @property
    def mail_sender(self) -> str:
        host = urlsplit(self.public_url).hostname or "localhost"
        return self.mail_from or f"Cutout <cutout@{host}>"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry Secure whenever people reach Cutout over https."""
        return self.public_url.lower().startswith("https://")

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    @property
    def onnx_thread_count(self) -> int:
        return self.onnx_threads or os.cpu_count() or 1


def describe_invalid(error: ValidationError) -> str:
    """One line naming each bad variable and why, for start-up messages (no traceback)."""

    def named(problem: Any) -> str:
        what = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a check across settings names them itself
            return what
        return f"CUTOUT_{'_'.join(str(part) for part in problem['loc']).upper()}: {what}"

    return "; ".join(named(problem) for problem in error.errors())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
