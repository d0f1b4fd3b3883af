"""scale: which dispatched task carries a job's attempt, and when a worker picked it up

A Celery message that comes back (its worker died mid-job) must tell "my earlier delivery died"
from "someone else's attempt": the task id (runner) and the pick-up time say which.

Revision ID: 0016_scale
Revises: 0015_phone
Create Date: 2026-11-25 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0016_scale'
down_revision: str | None = '0015_phone'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cutout_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('picked_up_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cutout_job', schema=None) as batch_op:
        batch_op.drop_column('picked_up_at')
        batch_op.drop_column('runner')
