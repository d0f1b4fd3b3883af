"""The README's PostgreSQL grants, run as written: the app's role works the ledger, nothing more."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.db import make_engine, writing
from app.models.ledger import Wallet
from app.services.billing import ledger
from app.services.clock import FrozenClock
from tests.conftest import REPO, migrated_engine, new_account

pytestmark = pytest.mark.postgres


def readme_grants() -> str:
    """The ```sql block of the README's "Running at scale" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Running at scale") :]
    found = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert found, "the README's Running at scale section has no sql block"
    return found.group(1)


@pytest.fixture
def app_role() -> Iterator[tuple[Engine, Engine]]:
    """(owner's engine, app role's engine) on a fresh schema migrated by the owner."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"t_roles_{suffix}", f"cutout_app_{suffix}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    search_path = f"{sep}options=-csearch_path%3D{schema}"
    owner = migrated_engine(f"{base}{search_path}")
    grants = readme_grants().replace("public", schema).replace("cutout_app", role)
    with owner.begin() as conn:
        for chunk in grants.split(";"):
            statement = "\n".join(
                line for line in chunk.splitlines() if not line.strip().startswith("--")
            ).strip()
            if statement:
                conn.exec_driver_sql(statement)
    url = sa.make_url(base).set(username=role, password="change me")
    app = make_engine(url.render_as_string(hide_password=False) + search_path)
    try:
        yield owner, app
    finally:
        app.dispose()
        owner.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_the_app_role_runs_the_ledger_but_cannot_erase_or_unguard_it(
    app_role: tuple[Engine, Engine], clock: FrozenClock
) -> None:
    _owner, app = app_role
    with writing(app) as session:
        account = new_account(session, clock, "role@example.com")
    with writing(app) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account.id,
            wallet=Wallet.web,
            amount=1_100,
            key="job",
        )
        ledger.capture_reservation(
            session=session, clock=clock, account_id=account.id, key="job", amount=1_100
        )
    with writing(app) as session:
        assert ledger.check_ledger(session=session) == []

    refused = {
        "TRUNCATE ledger_entry": "permission denied",
        "TRUNCATE credit_lot CASCADE": "permission denied",
        "ALTER TABLE ledger_entry DISABLE TRIGGER USER": "must be owner",
        "ALTER TABLE credit_lot DISABLE TRIGGER ALL": "must be owner",
        "DROP TRIGGER ledger_entry_append_only ON ledger_entry": "must be owner",
        "SET session_replication_role = replica": "permission denied",
        "UPDATE ledger_entry SET amount = 1": "permission denied",
        "DELETE FROM ledger_entry": "permission denied",
        "DELETE FROM credit_lot": "permission denied",
        "UPDATE credit_lot SET amount = amount + 1": "never change",  # granted UPDATE: the trigger
        "UPDATE alembic_version SET version_num = 'x'": "permission denied",
    }
    for statement, reason in refused.items():
        with pytest.raises(sa.exc.DBAPIError, match=reason), app.begin() as conn:
            conn.exec_driver_sql(statement)
    with writing(app) as session:
        assert ledger.check_ledger(session=session) == []
        entries = session.exec(sa.text("SELECT count(*) FROM ledger_entry")).one()[0]
    assert entries == 3  # the trial's grant, the hold and the capture: nothing was erased
