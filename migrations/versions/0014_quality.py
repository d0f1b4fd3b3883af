"""cutout_job.model: the model a person asked for ("High quality"), none for the configured one

Revision ID: 0014_quality
Revises: 0013_bulk
Create Date: 2026-11-25 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_quality"
down_revision: str | None = "0013_bulk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cutout_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cutout_job", schema=None) as batch_op:
        batch_op.drop_column("model")
