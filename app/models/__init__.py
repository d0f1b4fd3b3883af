"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models.jobs import CutoutJob, JobStatus

__all__ = ["CutoutJob", "JobStatus"]
