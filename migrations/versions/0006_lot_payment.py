"""credit_lot: the money behind a purchased lot, and who granted an operator's lot

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('credit_lot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paid_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('paid_currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('payment_ref', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('granted_by', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('credit_lot', schema=None) as batch_op:
        batch_op.drop_column('granted_by')
        batch_op.drop_column('payment_ref')
        batch_op.drop_column('paid_currency')
        batch_op.drop_column('paid_amount')
