"""phone: free previews for signed-out visitors, counted per address

Revision ID: 0015_phone
Revises: 0014_quality
Create Date: 2026-11-25 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015_phone'
down_revision: str | None = '0014_quality'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'trial_preview',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('address_key', sa.String(length=64), nullable=False),
        sa.Column('job_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_trial_preview_address_at', 'trial_preview', ['address_key', 'created_at']
    )


def downgrade() -> None:
    op.drop_index('ix_trial_preview_address_at', table_name='trial_preview')
    op.drop_table('trial_preview')
