"""Bulk batches: many photos with shared options, processed as one queue that outlives a tab."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class BatchStatus(StrEnum):
    open = "open"  # photos being added; nothing processed yet
    running = "running"
    paused = "paused"  # stopped on its own (credits ran out); "resume" continues
    cancelled = "cancelled"  # the person stopped it; photos not started stay unprocessed
    finished = "finished"


class BulkBatch(SQLModel, table=True):
    __tablename__ = "bulk_batch"

    # Unguessable, like a job id.
    id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(index=True, max_length=128)  # "account:<id>", as on cutout_job
    hair: bool = False  # hair refinement for every photo (priced per photo)
    background: str | None = Field(default=None, max_length=9)  # "#rrggbb"; None: transparent
    status: BatchStatus = Field(default=BatchStatus.open, max_length=16)
    stop_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(index=True)
    expires_at: datetime = Field(index=True)


class BulkItem(SQLModel, table=True):
    """One photo of a batch: its cutout job, in the order the person added it."""

    __tablename__ = "bulk_item"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="bulk_batch.id", index=True, ondelete="CASCADE")
    # The job goes when its retention ends; its place in the batch goes with it.
    job_id: str = Field(foreign_key="cutout_job.id", unique=True, ondelete="CASCADE")
    position: int = Field(ge=0)
    cancelled: bool = False  # stopped by "cancel the rest" before it started: never charged
