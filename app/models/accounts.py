"""Accounts: who owns credits, on which plan, and whether their email address is confirmed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class Plan(StrEnum):
    free = "free"
    basic = "basic"
    standard = "standard"


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    # Stored normalised (stripped, lower-case) so uniqueness cannot be dodged by case.
    email: str = Field(max_length=254, unique=True, index=True)
    # argon2id hash; None for accounts that only sign in through OAuth.
    password_hash: str | None = Field(default=None, max_length=255)
    plan: Plan = Field(default=Plan.free, max_length=16)
    stripe_customer_id: str | None = Field(default=None, max_length=255, unique=True)
    created_at: datetime
    # None until the person follows the link mailed at sign-up (or a provider vouches for it);
    # an unverified password account cannot sign in and holds no trial.
    email_verified_at: datetime | None = None
    deleted_at: datetime | None = None
