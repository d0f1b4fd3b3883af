"""security: confirmed emails, mailed links, one trial per email, the install's own salt

Revision ID: 0007_security
Revises: 0010_stripe
Create Date: 2026-11-26 09:00:00
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_security"
down_revision: str | None = "0010_stripe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_verified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )

    op.create_table(
        "email_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("next_path", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_link_token_hash"), ["token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_email_link_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_email_link_email_created", ["email", "created_at"], unique=False)

    op.create_table(
        "trial_claim",
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email_hash"),
    )
    op.create_table(
        "install_secret",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    # Existing accounts were made before confirmation existed and already hold their trial:
    # count them as confirmed, and record their trial so a re-sign-up gets none.
    salt = secrets.token_hex(32)
    secret = sa.table("install_secret", sa.column("name", sa.String), sa.column("value", sa.String))
    op.bulk_insert(secret, [{"name": "trial_salt", "value": salt}])
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE account SET email_verified_at = created_at "
            "WHERE deleted_at IS NULL AND email_verified_at IS NULL"
        )
    )
    emails = bind.execute(sa.text("SELECT email FROM account WHERE deleted_at IS NULL")).all()
    now = datetime.now(UTC)
    claim = sa.table(
        "trial_claim", sa.column("email_hash", sa.String), sa.column("claimed_at", sa.DateTime)
    )
    rows = [
        # The same derivation as app.services.identity.accounts.email_fingerprint.
        {
            "email_hash": hmac.new(salt.encode(), email.encode(), hashlib.sha256).hexdigest(),
            "claimed_at": now,
        }
        for (email,) in emails
    ]
    if rows:
        op.bulk_insert(claim, rows)


def downgrade() -> None:
    op.drop_table("install_secret")
    op.drop_table("trial_claim")
    with op.batch_alter_table("email_link", schema=None) as batch_op:
        batch_op.drop_index("ix_email_link_email_created")
        batch_op.drop_index(batch_op.f("ix_email_link_account_id"))
        batch_op.drop_index(batch_op.f("ix_email_link_token_hash"))
    op.drop_table("email_link")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
