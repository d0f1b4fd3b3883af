"""Free previews for signed-out visitors: one row per preview, counted per address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class TrialPreview(SQLModel, table=True):
    """One free preview cutout made for a signed-out visitor.

    Kept apart from the job (which may be claimed, deleted or expire) so the daily limit per
    address holds whatever happens to the photo.
    """

    __tablename__ = "trial_preview"
    __table_args__ = (Index("ix_trial_preview_address_at", "address_key", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # sha256 of the client address: the limit needs equality, not the address itself.
    address_key: str = Field(max_length=64)
    job_id: str = Field(max_length=64)
    created_at: datetime
