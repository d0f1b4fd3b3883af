"""`cutout-admin keys` as an operator runs it: the installed console script on a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.db import writing
from app.services.clock import SystemClock
from app.services.identity.api_keys import InvalidApiKey, authenticate_api_key
from app.settings import Settings

SCRIPT = Path(sys.executable).parent / "cutout-admin"


def test_an_operator_creates_lists_and_revokes_keys(db: Engine, settings: Settings) -> None:
    env = {**os.environ, "DATABASE_URL": settings.db_url, "CUTOUT_DATA_DIR": str(settings.data_dir)}

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
        )

    made = admin("users", "create", "--email", "ops@example.com", "--password", "long enough")
    assert made.returncode == 0, made.stderr
    created = admin("keys", "create", "--email", "ops@example.com", "--name", "nightly  job")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("co_") and "\n" not in key  # the key alone on stdout, for scripts
    with writing(db) as session:
        assert authenticate_api_key(session=session, clock=SystemClock(), raw_key=key).email == (
            "ops@example.com"
        )

    listed = admin("keys", "list", "--email", "ops@example.com")
    assert key[:10] in listed.stdout and "nightly job" in listed.stdout
    assert key not in listed.stdout  # never the key itself

    unknown = admin("keys", "revoke", "--email", "ops@example.com", "co_nothere")
    assert unknown.returncode == 1 and "no usable key" in unknown.stderr
    revoked = admin("keys", "revoke", "--email", "ops@example.com", key[:10])
    assert revoked.returncode == 0, revoked.stderr
    assert admin("keys", "list", "--email", "ops@example.com").stdout == ""
    with writing(db) as session, pytest.raises(InvalidApiKey):
        authenticate_api_key(session=session, clock=SystemClock(), raw_key=key)

    nobody = admin("keys", "create", "--email", "nobody@example.com", "--name", "x")
    assert nobody.returncode == 1 and "no account" in nobody.stderr
