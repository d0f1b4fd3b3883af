"""ledger: accounts, credit lots, reservations, append-only entries, feature flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:05:43.652140
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Entries are the ledger's history: the database itself refuses to edit or delete one, so a
# mistake can only be fixed by a correcting entry.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_entry
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_entry_no_delete BEFORE DELETE ON ledger_entry
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
]
POSTGRES_TRIGGERS = [
    """CREATE FUNCTION ledger_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END $$""",
    """CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_append_only()""",
]
ENUM_TYPES = ["entrykind", "reservationstatus", "wallet", "lotscope", "lotsource", "plan"]


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('plan', sa.Enum('free', 'basic', 'standard', name='plan'), nullable=False),
    sa.Column('stripe_customer_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('deleted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('stripe_customer_id')
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_email'), ['email'], unique=True)

    op.create_table('feature_flag',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('credit_lot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('trial', 'subscription', 'top_up', 'api_pack', 'adjustment', name='lotsource'), nullable=False),
    sa.Column('scope', sa.Enum('web', 'api', 'both', name='lotscope'), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('grant_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('expired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('voided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.CheckConstraint('amount > 0', name='lot_amount_positive'),
    sa.CheckConstraint('expires_at > issued_at', name='lot_expires_after_issue'),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name='lot_remaining_in_range'),
    sa.CheckConstraint('reserved >= 0 AND reserved <= remaining', name='lot_reserved_in_range'),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'grant_key', name='uq_credit_lot_grant_key')
    )
    with op.batch_alter_table('credit_lot', schema=None) as batch_op:
        batch_op.create_index('ix_credit_lot_draw_order', ['account_id', 'expires_at', 'issued_at', 'id'], unique=False)

    op.create_table('credit_reservation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('wallet', sa.Enum('web', 'api', name='wallet'), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('captured', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'captured', 'released', 'timed_out', name='reservationstatus'), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.CheckConstraint('amount > 0', name='reservation_amount_positive'),
    sa.CheckConstraint('captured >= 0 AND captured <= amount', name='reservation_captured_in_range'),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'key', name='uq_credit_reservation_key')
    )
    with op.batch_alter_table('credit_reservation', schema=None) as batch_op:
        batch_op.create_index('ix_credit_reservation_open_deadline', ['status', 'expires_at'], unique=False)

    op.create_table('ledger_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('reservation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('grant', 'hold', 'capture', 'release', 'expire', 'void', name='entrykind'), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('op_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.CheckConstraint('amount > 0', name='entry_amount_positive'),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['lot_id'], ['credit_lot.id'], ),
    sa.ForeignKeyConstraint(['reservation_id'], ['credit_reservation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entry_account_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_ledger_entry_account_op', ['account_id', 'op_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_reservation_id'), ['reservation_id'], unique=False)

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER ledger_entry_no_update")
        op.execute("DROP TRIGGER ledger_entry_no_delete")
    else:
        op.execute("DROP TRIGGER ledger_entry_append_only ON ledger_entry")
        op.execute("DROP FUNCTION ledger_entry_append_only()")
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entry_reservation_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_lot_id'))
        batch_op.drop_index('ix_ledger_entry_account_op')
        batch_op.drop_index('ix_ledger_entry_account_id')

    op.drop_table('ledger_entry')
    with op.batch_alter_table('credit_reservation', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_reservation_open_deadline')

    op.drop_table('credit_reservation')
    with op.batch_alter_table('credit_lot', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_lot_draw_order')

    op.drop_table('credit_lot')
    op.drop_table('feature_flag')
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_email'))

    op.drop_table('account')
    if dialect == "postgresql":
        # drop_table does not know the columns, so it leaves PostgreSQL's enum types behind.
        for name in ENUM_TYPES:
            op.execute(f"DROP TYPE IF EXISTS {name}")
