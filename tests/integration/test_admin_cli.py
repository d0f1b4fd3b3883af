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


def test_flags_are_listed_and_switched(admin: Admin) -> None:
    assert admin("flags", "set", "super_resolution", "on").returncode == 0
    listed = admin("flags", "list")
    assert listed.returncode == 0
    states = dict(line.split("\t") for line in listed.stdout.splitlines())
    assert states == {
        "ai_background": "off",
        "image_generation": "off",
        "object_removal": "off",
        "super_resolution": "on",
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
