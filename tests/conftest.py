"""Shared fixtures: isolated settings, a migrated real database, the injected clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.cli.setup import migrate
from app.db import make_engine
from app.services.clock import FrozenClock
from app.settings import Settings

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO / "data" / "models"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a private data folder, with the provisioned model shared read-only."""
    return Settings(data_dir=tmp_path / "data", models_dir=MODELS_DIR, database_url="")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def migrated_engine(url: str) -> Engine:
    cwd = os.getcwd()
    os.chdir(REPO)  # alembic.ini lives at the repo root
    try:
        migrate(Settings(), url=url)
    finally:
        os.chdir(cwd)
    return make_engine(url)


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """A real SQLite file, migrated with the project's own migrations."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = migrated_engine(settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_db() -> Iterator[Engine]:
    """A fresh schema in the local PostgreSQL named by TEST_DATABASE_URL."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    engine = migrated_engine(url)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
