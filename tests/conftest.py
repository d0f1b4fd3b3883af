"""Shared fixtures: isolated settings, a migrated real database, the injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.cli.setup import migrate
from app.db import make_engine
from app.services.clock import FrozenClock
from app.settings import Settings

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: in a full run, Playwright's session fixture keeps an
    event loop running on the main thread, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO / "data" / "models"


# CUTOUT_TEST_STACK=scaled runs the same tests against the scaled stack: PostgreSQL
# (TEST_DATABASE_URL), Redis (TEST_REDIS_URL), Celery workers and several web workers
# (tests/integration/scaled_stack.py). `make test` runs tests/integration and the home page's
# browser tests that way too when both servers answer.
SCALED = os.environ.get("CUTOUT_TEST_STACK") == "scaled"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a private data folder, with the provisioned model shared read-only
    (scaled: a fresh PostgreSQL schema, Redis, CUTOUT_JOBS=celery)."""
    if not SCALED:
        yield Settings(data_dir=tmp_path / "data", models_dir=MODELS_DIR, database_url="")
        return
    from tests.integration.scaled_stack import fresh_schema, scaled_settings, scaled_urls

    database, redis = scaled_urls()
    url, engine, drop = fresh_schema(database)
    engine.dispose()
    try:
        yield scaled_settings(tmp_path, url, redis)
    finally:
        drop()


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
def pg_db(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A fresh schema in the local PostgreSQL named by TEST_DATABASE_URL."""
    if request.node.get_closest_marker("postgres") is None:
        # Unmarked, `-m "not postgres"` would still run it and it would fail without a server.
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL: mark it @pytest.mark.postgres")
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


@pytest.fixture
def mailbox():  # type: ignore[no-untyped-def]
    """The real SMTP server on 127.0.0.1 (aiosmtpd) whose received mail tests read."""
    from tests.mailbox import shared_mailbox

    return shared_mailbox()


@pytest.fixture
def outbox(mailbox):  # type: ignore[no-untyped-def]
    """Cutout's own outbox, delivering over SMTP to `mailbox`."""
    from app.services.mail import Outbox

    return Outbox(smtp_url=mailbox.url, sender="Cutout <cutout@test.example>")


VENV_BIN = REPO / ".venv" / "bin"
# The browser tests' production build gets a frontend folder of its own: building into `.web`
# would rewrite the pages a `make run` in the same checkout is serving, pointing them at the test
# server's port. Kept between runs so its node_modules are installed once.
TEST_WEB_DIR = REPO / ".web-test"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVED_WEB_DIR = REPO / ".web"  # where `make run` builds and serves the frontend from


def frontend_folder_state(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Size and modification time of every file a build writes in `folder` (its installed
    node_modules aside), or None when there is no such folder."""
    if not folder.is_dir():
        return None
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file() and "node_modules" not in path.relative_to(folder).parts
    }


class LiveApp:
    """The production build served by `reflex run --env prod` on its own port, data folder and
    frontend folder."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        log: Path,
        served_web_before: dict[str, tuple[int, int]] | None = None,
        database_url: str = "",
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.log = log
        # `make run`'s frontend folder as it was before this build (tests/integration/
        # test_frontend_folders.py checks the build left it alone).
        self.served_web_before = served_web_before
        # The database the app serves from: "" is SQLite in its data folder (scaled: PostgreSQL).
        self.database_url = database_url


def app_env(data_dir: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        U2NET_HOME=str(MODELS_DIR),
        REFLEX_UPLOADED_FILES_DIR=str(data_dir / "upload-tmp"),
        REFLEX_STATES_WORKDIR=str(data_dir / "states"),
        REFLEX_USE_NPM="1",
        REFLEX_WEB_WORKDIR=str(TEST_WEB_DIR),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache"))
    env.pop("DATABASE_URL", None)
    return env


OIDC_NAME = "Test SSO"


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    """A real OpenID Connect provider (oidc-provider-mock) on 127.0.0.1, for the whole run."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(port=0) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="session")
def fake_stripe():  # type: ignore[no-untyped-def]
    """localstripe with Cutout's extensions (tests/stripe_fake.py) on 127.0.0.1, for the run."""
    from tests.stripe_fake import FakeStripe

    server = FakeStripe(free_port()).start()
    yield server
    server.stop()


STRIPE_WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex


def stripe_env(fake_stripe) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The settings that point Cutout's billing at the fake Stripe."""
    return {
        "CUTOUT_STRIPE_SECRET_KEY": fake_stripe.SECRET_KEY,
        "CUTOUT_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "CUTOUT_STRIPE_API_BASE": fake_stripe.url,
    }


@pytest.fixture(scope="session")
def live_app(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: str, fake_stripe
) -> Iterator[LiveApp]:
    import signal
    import subprocess
    import time

    import httpx

    from tests.mailbox import shared_mailbox

    served_web_before = frontend_folder_state(SERVED_WEB_DIR)
    root = tmp_path_factory.mktemp("live")
    data_dir = root / "data"
    env = app_env(data_dir)
    port = free_port()
    scaled = contextlib.ExitStack()
    if SCALED:
        from tests.integration.scaled_stack import live_stack

        env.update(scaled.enter_context(live_stack(root, data_dir)))
    env.update(
        # Verification and reset mails go to a real SMTP server the browser helpers read.
        CUTOUT_SMTP_URL=shared_mailbox().url,
        # Every browser in the suite signs up from 127.0.0.1: the per-address limit is for
        # strangers, and tests/unit/test_signup.py checks it.
        CUTOUT_SIGNUPS_PER_HOUR="10000",
        CUTOUT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CUTOUT_SESSION_SECRET="test-only-secret-" + uuid.uuid4().hex,
        CUTOUT_OIDC_NAME=OIDC_NAME,
        CUTOUT_OIDC_DISCOVERY_URL=f"{oidc_provider}/.well-known/openid-configuration",
        CUTOUT_OIDC_CLIENT_ID="cutout-e2e",
        CUTOUT_OIDC_CLIENT_SECRET="cutout-e2e-secret",
        **stripe_env(fake_stripe),
    )
    subprocess.run(
        [str(VENV_BIN / "cutout-setup"), "--skip-model", "--skip-warm"],
        cwd=REPO,
        env=env,
        check=True,
    )
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "reflex"),
                "run",
                "--env",
                "prod",
                "--single-port",
                "--frontend-port",
                str(port),
                "--backend-host",
                "127.0.0.1",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{log.read_text()[-4000:]}")
            try:
                if (
                    httpx.get(f"{url}/ping", timeout=2).status_code == 200
                    and httpx.get(url, timeout=5).status_code == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start in time:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield LiveApp(url, data_dir, log, served_web_before, env.get("DATABASE_URL", ""))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        scaled.close()


def new_account(session, clock, email: str, password: str | None = None):  # type: ignore[no-untyped-def]
    """An account with the default trial (10 credits, 90 days), made in the caller's session."""
    from app.services.identity.accounts import create_account, hash_password

    return create_account(
        session=session,
        email=email,
        password_hash=hash_password(password) if password is not None else None,
        clock=clock,
        trial_credits=10,
        lot_valid_days=90,
    )


def confirmed_account(db, clock, settings: Settings, email: str):  # type: ignore[no-untyped-def]
    """A password account with a confirmed address and the settings' trial, as sign-up and its
    mailed link leave it (tests/unit/test_signup.py covers that path itself)."""
    from app.db import writing
    from app.services.identity.accounts import create_account, hash_password
    from app.usecases.accounts import summary_of

    with writing(db) as session:
        account = create_account(
            session=session,
            email=email,
            password_hash=hash_password("a long passphrase"),
            clock=clock,
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )
        return summary_of(session, clock, account)
