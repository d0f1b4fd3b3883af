"""bulk: batches of photos with shared options, and their items (one cutout job each)

Revision ID: 0013_bulk
Revises: 0008_ledger_audit
Create Date: 2026-11-25 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013_bulk"
down_revision: str | None = "0008_ledger_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_batch",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("hair", sa.Boolean(), nullable=False),
        sa.Column("background", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bulk_batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bulk_batch_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_bulk_batch_created_at"), ["created_at"])
        batch_op.create_index(batch_op.f("ix_bulk_batch_expires_at"), ["expires_at"])
    op.create_table(
        "bulk_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["bulk_batch.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["cutout_job.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    with op.batch_alter_table("bulk_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bulk_item_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_table("bulk_item")
    op.drop_table("bulk_batch")
