"""Cutout jobs: one uploaded image on its way to a cutout, and the files it left behind."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class JobStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    done = "done"
    failed = "failed"


class CutoutJob(SQLModel, table=True):
    __tablename__ = "cutout_job"

    # Unguessable: knowing one id tells nothing about any other.
    id: str = Field(primary_key=True, max_length=64)
    # Who may see it: "account:<id>".
    owner: str = Field(index=True, max_length=128)
    original_name: str = Field(max_length=255)
    status: JobStatus = Field(default=JobStatus.queued, max_length=16)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    error: str | None = Field(default=None, max_length=500)
    # What the person asked for (a pricing Feature's value): the cost and the pipeline follow it.
    feature: str = Field(default="background_removal", max_length=32)
    # The model asked for ("High quality": u2net); None runs the configured one.
    model: str | None = Field(default=None, max_length=32)
    # Bumped when a failed job is tried again, so each attempt has its own charge.
    attempt: int = Field(default=0, ge=0)
    created_at: datetime = Field(index=True)
    started_at: datetime | None = None  # when a worker took it; a stalled job is judged by this
    finished_at: datetime | None = None
    # CUTOUT_JOBS=celery: the task id carrying this attempt, and when a worker picked it up. A
    # message delivered again to a picked-up attempt means its first worker died mid-job.
    runner: str | None = Field(default=None, max_length=64)
    picked_up_at: datetime | None = None
    expires_at: datetime = Field(index=True)
