"""ledger audit: 64-bit amounts, grant entries that record their lot, lots' fixed columns guarded

Revision ID: 0008_ledger_audit
Revises: 0007_security
Create Date: 2026-11-25 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008_ledger_audit'
down_revision: str | None = '0007_security'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Amounts of milli-credits: a 32-bit column overflows at 2,147,483 credits on PostgreSQL.
AMOUNT_COLUMNS = {
    'credit_lot': ('amount', 'remaining', 'reserved'),
    'credit_reservation': ('amount', 'captured'),
    'ledger_entry': ('amount',),
}

# What a lot was issued as never changes; only its caches (remaining, reserved) move, and it
# is closed (expired or voided) at most once. UPDATE OF fires only when a statement sets one of
# these columns, so the hot path (remaining/reserved) pays nothing.
FIXED = (
    'id', 'account_id', 'source', 'scope', 'amount', 'issued_at', 'expires_at', 'grant_key',
    'note', 'paid_amount', 'paid_currency', 'payment_ref', 'granted_by',
)
CLOSED_ONCE = ('expired_at', 'voided_at', 'void_reason', 'voided_by')
FIXED_MESSAGE = "a credit lot''s issued columns never change"
CLOSED_MESSAGE = "a credit lot is closed at most once"
DELETE_MESSAGE = "credit lots are never deleted"


def _changed(columns: Sequence[str], operator: str) -> str:
    return " OR ".join(f"NEW.{c} {operator} OLD.{c}" for c in columns)


def _reclosed(operator: str) -> str:
    expired = f"(OLD.expired_at IS NOT NULL AND NEW.expired_at {operator} OLD.expired_at)"
    voided = f"(OLD.voided_at IS NOT NULL AND ({_changed(CLOSED_ONCE[1:], operator)}))"
    return f"{expired} OR {voided}"


SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER credit_lot_fixed BEFORE UPDATE OF {', '.join(FIXED)} ON credit_lot
    WHEN {_changed(FIXED, 'IS NOT')}
    BEGIN SELECT RAISE(ABORT, '{FIXED_MESSAGE}'); END""",
    f"""CREATE TRIGGER credit_lot_closed_once BEFORE UPDATE OF {', '.join(CLOSED_ONCE)}
    ON credit_lot WHEN {_reclosed('IS NOT')}
    BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END""",
    f"""CREATE TRIGGER credit_lot_no_delete BEFORE DELETE ON credit_lot
    BEGIN SELECT RAISE(ABORT, '{DELETE_MESSAGE}'); END""",
]
POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION credit_lot_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN RAISE EXCEPTION '{DELETE_MESSAGE}'; END IF;
        IF {_changed(FIXED, 'IS DISTINCT FROM')} THEN RAISE EXCEPTION '{FIXED_MESSAGE}'; END IF;
        IF {_reclosed('IS DISTINCT FROM')} THEN RAISE EXCEPTION '{CLOSED_MESSAGE}'; END IF;
        RETURN NEW;
    END $$""",
    f"""CREATE TRIGGER credit_lot_guard BEFORE UPDATE OF {', '.join(FIXED + CLOSED_ONCE)}
    ON credit_lot FOR EACH ROW EXECUTE FUNCTION credit_lot_guard()""",
    """CREATE TRIGGER credit_lot_no_delete BEFORE DELETE ON credit_lot
    FOR EACH ROW EXECUTE FUNCTION credit_lot_guard()""",
]

# Grant entries written before this revision learn their lot's scope and expiry from the lot
# as it stands now: the best record there is. Entries are append-only, so the guard is lifted
# for this one statement, inside the migration's transaction.
BACKFILL = """UPDATE ledger_entry SET
    lot_scope = (SELECT CAST(scope AS VARCHAR(8)) FROM credit_lot WHERE credit_lot.id = ledger_entry.lot_id),
    lot_expires_at = (SELECT expires_at FROM credit_lot WHERE credit_lot.id = ledger_entry.lot_id)
    WHERE kind = 'grant'"""
SQLITE_ENTRY_GUARD = """CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_entry
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        for table, columns in AMOUNT_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.BigInteger(), existing_nullable=False)
    # SQLite's INTEGER is already 64-bit.
    op.add_column('ledger_entry', sa.Column('lot_scope', sa.String(length=8), nullable=True))
    op.add_column('ledger_entry', sa.Column('lot_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column('credit_lot', sa.Column('void_reason', sa.String(length=500), nullable=True))
    op.add_column('credit_lot', sa.Column('voided_by', sa.String(length=200), nullable=True))
    op.create_index(
        'ix_credit_reservation_account_open',
        'credit_reservation',
        ['account_id', 'status', 'expires_at'],
    )
    if dialect == 'sqlite':
        op.execute('DROP TRIGGER ledger_entry_no_update')
        op.execute(BACKFILL)
        op.execute(SQLITE_ENTRY_GUARD)
    else:
        op.execute('ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_append_only')
        op.execute(BACKFILL)
        op.execute('ALTER TABLE ledger_entry ENABLE TRIGGER ledger_entry_append_only')
    for statement in SQLITE_TRIGGERS if dialect == 'sqlite' else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for name in ('credit_lot_fixed', 'credit_lot_closed_once', 'credit_lot_no_delete'):
            op.execute(f'DROP TRIGGER {name}')
    else:
        op.execute('DROP TRIGGER credit_lot_guard ON credit_lot')
        op.execute('DROP TRIGGER credit_lot_no_delete ON credit_lot')
        op.execute('DROP FUNCTION credit_lot_guard()')
    op.drop_index('ix_credit_reservation_account_open', table_name='credit_reservation')
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose the tables' triggers.
    for table, column in (
        ('credit_lot', 'voided_by'),
        ('credit_lot', 'void_reason'),
        ('ledger_entry', 'lot_expires_at'),
        ('ledger_entry', 'lot_scope'),
    ):
        op.drop_column(table, column)
    if dialect == 'postgresql':
        for table, columns in AMOUNT_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer(), existing_nullable=False)
