"""Signing in: browser sessions, OAuth identities, API keys and the sign-in throttle's log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class UserSession(SQLModel, table=True):
    """A signed-in browser. Only the token's hash is stored: a database leak signs nobody in."""

    __tablename__ = "user_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    created_at: datetime
    expires_at: datetime
    # Written at most every few minutes, so resolving a session is usually a pure read.
    last_seen_at: datetime
    revoked_at: datetime | None = None
    user_agent: str | None = Field(default=None, max_length=200)


class OAuthIdentity(SQLModel, table=True):
    """An account's login at an identity provider. (provider, subject) names one person there."""

    __tablename__ = "oauth_identity"
    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_oauth_identity_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    # The OIDC issuer URL (or "github"): subjects are only unique within one issuer.
    provider: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    account_id: int = Field(foreign_key="account.id", index=True)
    # The verified email the provider reported when the identity was linked, for support.
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime


class ApiKey(SQLModel, table=True):
    """A key for the HTTP API. The key itself is shown once; only its hash and prefix stay."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    name: str = Field(max_length=100)
    # The first characters of the key, so a person can tell their keys apart in a list.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SignInAttempt(SQLModel, table=True):
    """One password sign-in attempt, counted per email and per address to slow down guessing."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (Index("ix_sign_in_attempt_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # sha256 of "email:<email>" or "address:<ip>": the throttle needs equality, not the values.
    key: str = Field(max_length=64)
    at: datetime = Field(index=True)
    success: bool


class LinkPurpose(StrEnum):
    verify = "verify"  # confirms the address; grants the trial
    reset = "reset"  # sets a new password; revokes every session


class EmailLink(SQLModel, table=True):
    """A link mailed to an address: random, stored hashed, expiring, usable once."""

    __tablename__ = "email_link"
    __table_args__ = (Index("ix_email_link_email_created", "email", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    purpose: LinkPurpose = Field(max_length=16)
    # The address it was sent to: a link stops working once the account's email differs.
    email: str = Field(max_length=254)
    # The password hash it was issued against (verify links): a later sign-up for the same
    # unconfirmed address replaces the password and so voids earlier links.
    password_hash: str | None = Field(default=None, max_length=255)
    next_path: str = Field(default="/", max_length=500)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class TrialClaim(SQLModel, table=True):
    """An email address that has had its trial, as a salted hash: deleting the account and
    signing up again with the same address gives no second trial."""

    __tablename__ = "trial_claim"

    email_hash: str = Field(primary_key=True, max_length=64)
    claimed_at: datetime


class InstallSecret(SQLModel, table=True):
    """Random values made once per installation by the migrations (e.g. the trial-claim salt)."""

    __tablename__ = "install_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=255)
