"""`cutout-admin` as an operator runs it: the installed console script against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.settings import Settings

SCRIPT = Path(sys.executable).parent / "cutout-admin"

Admin = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def admin(db: Engine, settings: Settings) -> Admin:
    env = {
        **os.environ,
        "DATABASE_URL": settings.db_url,
        "CUTOUT_DATA_DIR": str(settings.data_dir),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
        )

    return run


def create_ops(admin: Admin) -> None:
    created = admin("users", "create", "--email", "ops@example.com", "--password", "long enough")
    assert created.returncode == 0, created.stderr


def table_counts(db: Engine) -> dict[str, int]:
    with db.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("account", "credit_lot", "ledger_entry", "feature_flag")
        }


def test_an_operator_creates_a_user_grants_credits_and_reads_the_balance(admin: Admin) -> None:
    created = admin("users", "create", "--email", " Ops@Example.com", "--password", "long enough")
    assert created.returncode == 0, created.stderr
    assert "ops@example.com" in created.stdout

    granted = admin(
        "credits",
        "grant",
        "--email",
        "ops@example.com",
        "--credits",
        "2.5",
        "--wallet",
        "api",
        "--valid-days",
        "7",
    )
    assert granted.returncode == 0, granted.stderr

    shown = admin("credits", "balance", "--email", "OPS@example.com")
    assert shown.returncode == 0, shown.stderr
    wallets = json.loads(shown.stdout)["wallets"]
    assert wallets["web"]["available_milli"] == 10_000  # the trial lot only
    assert wallets["api"]["available_milli"] == 12_500  # trial + the API grant
    assert wallets["api"]["reserved_milli"] == 0
    api_lots = wallets["api"]["lots"]
    assert [lot["source"] for lot in api_lots] == ["adjustment", "trial"]  # soonest expiry first
    issued, expires = (datetime.fromisoformat(api_lots[0][k]) for k in ("issued", "expires"))
    assert (expires - issued).days == 7
    assert api_lots[0]["remaining"] == "2.5"


def test_flags_are_listed_and_an_unpriced_tool_is_not_switched_on(admin: Admin) -> None:
    refused = admin("flags", "set", "super_resolution", "on")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "cutout-admin: error: super_resolution has no price yet; give it one in the price "
        "table (app/services/billing/pricing.py) before switching it on"
    )
    assert admin("flags", "set", "super_resolution", "off").returncode == 0
    listed = admin("flags", "list")
    assert listed.returncode == 0
    states = dict(line.split("\t") for line in listed.stdout.splitlines())
    assert states == {
        "ai_background": "off",
        "image_generation": "off",
        "object_removal": "off",
        "super_resolution": "off",
    }


@pytest.mark.parametrize(
    "args",
    [
        ("credits", "grant", "--email", "ops@example.com", "--credits", "-3", "--wallet", "web"),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "abc", "--wallet", "web"),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "0", "--wallet", "web"),
        (
            "credits",
            "grant",
            "--email",
            "ops@example.com",
            "--credits",
            "0.0001",
            "--wallet",
            "web",
        ),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "nan", "--wallet", "web"),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "sNaN", "--wallet", "web"),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "-inf", "--wallet", "web"),
        (
            "credits",
            "grant",
            "--email",
            "ops@example.com",
            "--credits",
            "Infinity",
            "--wallet",
            "web",
        ),
        (
            "credits",
            "grant",
            "--email",
            "ops@example.com",
            "--credits",
            "1e999999",
            "--wallet",
            "web",
        ),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "0x10", "--wallet", "web"),
        (
            "credits",
            "grant",
            "--email",
            "ops@example.com",
            "--credits",
            "5",
            "--wallet",
            "web",
            "--valid-days",
            "99999999999",
        ),
        ("credits", "void", "--lot", "999", "--reason", "refund"),
        ("credits", "void", "--lot", "1", "--reason", "  "),
        ("credits", "void", "--lot", "abc", "--reason", "refund"),
        ("plans", "set", "--email", "ops@example.com", "platinum"),
        ("plans", "set", "--email", "nobody@example.com", "basic"),
        ("report", "--from", "2026-13-01", "--to", "2027-01-01"),
        ("report", "--from", "2027-01-01", "--to", "2026-01-01"),
        ("credits", "grant", "--email", "ops@example.com", "--credits", "5", "--wallet", "gold"),
        (
            "credits",
            "grant",
            "--email",
            "ops@example.com",
            "--credits",
            "5",
            "--wallet",
            "web",
            "--valid-days",
            "0",
        ),
        ("credits", "grant", "--email", "nobody@example.com", "--credits", "5", "--wallet", "web"),
        ("credits", "balance", "--email", "nobody@example.com"),
        ("flags", "set", "free_money", "on"),
        ("flags", "set", "super_resolution", "maybe"),
        ("users", "create", "--email", "ops@example.com", "--password", "another one"),
        ("users", "create", "--email", "not-an-email", "--password", "long enough"),
        ("users", "create", "--email", "new@example.com", "--password", "short"),
    ],
)
def test_bad_arguments_give_one_line_and_change_nothing(
    admin: Admin,
    db: Engine,
    args: tuple[str, ...],
) -> None:
    create_ops(admin)
    before = table_counts(db)
    result = admin(*args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert table_counts(db) == before


def test_ledger_check_fails_on_a_tampered_lot(admin: Admin, db: Engine) -> None:
    create_ops(admin)
    clean = admin("ledger", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with db.begin() as conn:
        conn.execute(sa.text("UPDATE credit_lot SET remaining = remaining - 1"))
    tampered = admin("ledger", "check")
    assert tampered.returncode == 1
    assert "remaining is 9999, entries say 10000" in tampered.stdout


def test_a_grant_beyond_32_bits_is_kept(admin: Admin) -> None:
    create_ops(admin)
    granted = admin(
        "credits", "grant", "--email", "ops@example.com", "--credits", "2147484", "--wallet", "web"
    )
    assert granted.returncode == 0, granted.stderr
    shown = json.loads(admin("credits", "balance", "--email", "ops@example.com").stdout)
    assert shown["wallets"]["web"]["available_milli"] == 2_147_484_000 + 10_000


def test_an_operator_moves_an_account_between_plans(admin: Admin, db: Engine) -> None:
    create_ops(admin)
    moved = admin("plans", "set", "--email", "OPS@example.com", "standard")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == "ops@example.com: free -> standard"
    shown = json.loads(admin("credits", "balance", "--email", "ops@example.com").stdout)
    assert shown["plan"] == "standard"


def test_voiding_a_lot_cancels_only_its_unspent_rest(
    admin: Admin, db: Engine, settings: Settings
) -> None:
    from app.db import writing
    from app.models.ledger import Wallet
    from app.services.billing import ledger
    from app.services.clock import SystemClock

    create_ops(admin)
    granted = admin(
        "credits", "grant", "--email", "ops@example.com", "--credits", "5", "--wallet", "web"
    )
    lot_id = granted.stdout.split("lot ")[1].split(",")[0]
    clock = SystemClock()
    with writing(db) as session:
        ledger.reserve_credits(
            session=session, clock=clock, account_id=1, wallet=Wallet.web, amount=12_000, key="h"
        )  # the trial's 10, then 2 of the grant (it expires later)
    voided = admin("credits", "void", "--lot", lot_id, "--reason", "mistaken grant")
    assert voided.returncode == 0, voided.stderr
    assert voided.stdout.splitlines() == [
        f"voided 3 credits of lot {lot_id}",
        "2 credits are still held; voided if handed back",
    ]
    again = admin("credits", "void", "--lot", lot_id, "--reason", "twice")
    assert again.returncode == 1
    assert "already voided (mistaken grant)" in again.stderr
    with db.connect() as conn:
        reason, by = conn.execute(
            sa.text("SELECT void_reason, voided_by FROM credit_lot WHERE id = :id"),
            {"id": int(lot_id)},
        ).one()
    assert (reason, by) == ("mistaken grant", "cutout-admin")
    assert admin("ledger", "check").returncode == 0


def test_the_money_report_reconciles_credits_and_cash(admin: Admin, db: Engine) -> None:
    """A $10.00 top-up of 250 credits: 100 spent in the period, the rest deferred."""
    from datetime import UTC, datetime, timedelta

    from app.db import writing
    from app.models.ledger import LotScope, LotSource, Wallet
    from app.services.billing import ledger
    from app.services.clock import FrozenClock

    create_ops(admin)
    clock = FrozenClock(datetime.now(UTC))  # the trial was issued at real time, just now
    day = timedelta(days=1)
    start, end, later = ((clock.now() + n * day).date().isoformat() for n in (-1, 1, 30))
    with writing(db) as session:
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=1,
            amount=250_000,
            scope=LotScope.web,
            source=LotSource.top_up,
            key="checkout:cs_1",
            payment=ledger.Payment(amount=1000, currency="usd", ref="cs_1"),
        )
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=1,
            wallet=Wallet.web,
            amount=110_000,
            key="job",
        )  # 10 from the trial (it expires first), 100 from the top-up
        ledger.capture_reservation(
            session=session, clock=clock, account_id=1, key="job", amount=110_000
        )
    shown = admin("report", "--from", start, "--to", end, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["credits_milli"]["issued_by_source"] == {"trial": 10_000, "top_up": 250_000}
    assert report["credits_milli"]["spent"] == 110_000
    # $10 for 250 credits: 100 spent earn $4.00; $6.00 stays deferred.
    assert report["money_minor_units"] == [
        {
            "currency": "usd",
            "received": 1000,
            "recognised": 400,
            "voided": 0,
            "deferred_at_start": 0,
            "deferred_at_end": 600,
        }
    ]
    text = admin("report", "--from", start, "--to", end)
    assert "money USD: received 10.00, recognised 4.00, voided 0.00" in text.stdout
    later = json.loads(admin("report", "--from", end, "--to", later, "--json").stdout)
    assert later["money_minor_units"][0]["deferred_at_start"] == 600
