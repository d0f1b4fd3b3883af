"""stripe: payments (Checkout sessions and invoices), subscriptions, webhook events applied

Revision ID: 0010_stripe
Revises: 0006
Create Date: 2026-11-25 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010_stripe'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stripe_payment',
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payment_intent', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('lot_id', sa.Integer(), nullable=True),
    sa.Column('return_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['lot_id'], ['credit_lot.id'], ),
    sa.PrimaryKeyConstraint('ref')
    )
    with op.batch_alter_table('stripe_payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_payment_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_payment_payment_intent'), ['payment_intent'], unique=False)

    op.create_table('stripe_subscription',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('plan', sa.String(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('current_period_end', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('payment_failed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stripe_subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_subscription_account_id'), ['account_id'], unique=False)

    op.create_table('stripe_event',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('stripe_event')
    with op.batch_alter_table('stripe_subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_subscription_account_id'))
    op.drop_table('stripe_subscription')
    with op.batch_alter_table('stripe_payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_payment_payment_intent'))
        batch_op.drop_index(batch_op.f('ix_stripe_payment_account_id'))
    op.drop_table('stripe_payment')
