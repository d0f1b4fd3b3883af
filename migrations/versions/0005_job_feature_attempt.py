"""cutout_job.feature and cutout_job.attempt: what was asked for, and which try is charged

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cutout_job', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('feature', sa.String(length=32), nullable=False, server_default='background_removal')
        )
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('cutout_job', schema=None) as batch_op:
        batch_op.drop_column('attempt')
        batch_op.drop_column('feature')
