"""ledger charge: PostgreSQL functions for the common reserve and resolve (capture, release)

One call, one round trip and one set of cached plans per operation, instead of a dozen
statements from the client. Each function does only the plain case and otherwise writes nothing
and returns no row: the Python ledger (app/services/billing/ledger.py) then runs the general
path in the same transaction, and it alone raises the refusals. Same rules, same rows:
the Python code is the reference, and the ledger tests drive both.

Revision ID: 0017_ledger_charge
Revises: 0016_scale
Create Date: 2026-11-25 22:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0017_ledger_charge'
down_revision: str | None = '0016_scale'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Hold `p_amount` from the wallet's active lots, soonest-expiring first. Declines (no row) when
# the account is unknown, the key was used, a hold of the account is past its deadline (the
# general path writes it off first) or the lots do not cover the amount.
RESERVE = """
CREATE FUNCTION ledger_reserve(
    p_account integer, p_wallet wallet, p_key varchar, p_amount bigint, p_scopes lotscope[],
    p_now timestamptz, p_expires timestamptz
) RETURNS SETOF credit_reservation LANGUAGE plpgsql AS $$
DECLARE
    lot record;
    wanted bigint := p_amount;
    take bigint;
    lots integer[] := '{}';
    takes bigint[] := '{}';
    made credit_reservation;
BEGIN
    PERFORM 1 FROM account WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM credit_reservation WHERE account_id = p_account AND key = p_key)
            OR EXISTS (
                SELECT 1 FROM credit_reservation
                WHERE account_id = p_account AND status = 'open' AND expires_at <= p_now
            ) THEN
        RETURN;
    END IF;
    FOR lot IN
        SELECT id, remaining - reserved AS free FROM credit_lot
        WHERE account_id = p_account AND scope = ANY (p_scopes) AND issued_at <= p_now
          AND expires_at > p_now AND voided_at IS NULL AND remaining > 0
        ORDER BY expires_at, issued_at, id
    LOOP
        take := least(wanted, lot.free);
        CONTINUE WHEN take <= 0;
        lots := lots || lot.id;
        takes := takes || take;
        wanted := wanted - take;
        EXIT WHEN wanted = 0;
    END LOOP;
    IF wanted > 0 THEN
        RETURN;
    END IF;
    INSERT INTO credit_reservation
        (account_id, wallet, key, amount, captured, status, created_at, expires_at)
        VALUES (p_account, p_wallet, p_key, p_amount, 0, 'open', p_now, p_expires)
        RETURNING * INTO made;
    FOR i IN 1 .. array_length(lots, 1) LOOP
        UPDATE credit_lot SET reserved = reserved + takes[i] WHERE id = lots[i];
        INSERT INTO ledger_entry
            (account_id, lot_id, reservation_id, kind, amount, op_key, created_at)
            VALUES (p_account, lots[i], made.id, 'hold', takes[i], p_key, p_now);
    END LOOP;
    RETURN NEXT made;
END $$
"""

# Capture `p_captured` from the holds in the order they were taken and release the rest (a
# release is a capture of 0). Declines when the reservation is unknown, no longer open, past its
# deadline, or smaller than the capture.
RESOLVE = """
CREATE FUNCTION ledger_resolve(
    p_account integer, p_key varchar, p_captured bigint, p_status reservationstatus,
    p_now timestamptz
) RETURNS SETOF credit_reservation LANGUAGE plpgsql AS $$
DECLARE
    found_one credit_reservation;
    hold record;
    to_capture bigint := p_captured;
    take bigint;
    give_back bigint;
    spent bigint;
    closing entrykind;
BEGIN
    PERFORM 1 FROM account WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO found_one FROM credit_reservation
        WHERE account_id = p_account AND key = p_key;
    IF NOT FOUND OR found_one.status <> 'open' OR p_now >= found_one.expires_at
            OR p_captured > found_one.amount THEN
        RETURN;
    END IF;
    FOR hold IN
        SELECT e.amount AS held, l.id AS lot, l.account_id, l.expired_at, l.voided_at
        FROM ledger_entry e JOIN credit_lot l ON l.id = e.lot_id
        WHERE e.reservation_id = found_one.id AND e.kind = 'hold'
        ORDER BY e.id
    LOOP
        take := least(to_capture, hold.held);
        give_back := hold.held - take;
        to_capture := to_capture - take;
        spent := take;
        IF take > 0 THEN
            INSERT INTO ledger_entry
                (account_id, lot_id, reservation_id, kind, amount, op_key, created_at)
                VALUES (hold.account_id, hold.lot, found_one.id, 'capture', take, p_key, p_now);
        END IF;
        IF give_back > 0 THEN
            INSERT INTO ledger_entry
                (account_id, lot_id, reservation_id, kind, amount, op_key, created_at)
                VALUES (hold.account_id, hold.lot, found_one.id, 'release', give_back, p_key,
                        p_now);
            -- Handed back to a lot that is already closed: written off at once.
            IF hold.voided_at IS NOT NULL OR hold.expired_at IS NOT NULL THEN
                closing := CASE WHEN hold.voided_at IS NOT NULL THEN 'void' ELSE 'expire' END;
                spent := spent + give_back;
                INSERT INTO ledger_entry
                    (account_id, lot_id, reservation_id, kind, amount, op_key, created_at)
                    VALUES (hold.account_id, hold.lot, NULL, closing, give_back,
                            closing::text || ':' || hold.lot, p_now);
            END IF;
        END IF;
        UPDATE credit_lot SET reserved = reserved - hold.held, remaining = remaining - spent
            WHERE id = hold.lot;
    END LOOP;
    UPDATE credit_reservation SET status = p_status, captured = p_captured, resolved_at = p_now
        WHERE id = found_one.id
        RETURNING * INTO found_one;
    RETURN NEXT found_one;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite runs the Python path in-process: no round trips to save
    op.execute(RESERVE)
    op.execute(RESOLVE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION ledger_reserve(integer, wallet, varchar, bigint, lotscope[], timestamptz,"
        " timestamptz)"
    )
    op.execute(
        "DROP FUNCTION ledger_resolve(integer, varchar, bigint, reservationstatus, timestamptz)"
    )
