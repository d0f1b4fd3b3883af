"""Load on the scaled stack: 20 API clients for 60 s against the web workers, with 1 and with 2
Celery workers, on PostgreSQL and Redis at 127.0.0.1.

It starts everything itself: a fresh schema in BENCH_DATABASE_URL (default: the local
PostgreSQL's `test` database), Redis at BENCH_REDIS_URL, the production app with WEB_WORKERS web
workers (it builds the frontend for its port into `.web-bench`), and the Celery workers. One
account with API credits and a key; each client posts a real photo (scikit-image's astronaut) to
`POST /v1.0/removebg` the way remove.bg's clients do (multipart `image_file`, `X-Api-Key`), while
one more client reads `/pricing` four times a second.

Checked after each run: no errors, the sum of `X-Credits-Charged` equals what the API wallet
lost, and `cutout-admin ledger check` passes. Printed: images per second and the `/pricing` p95,
median of the runs and their range.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 60] [--runs 3] [--celery 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa
from PIL import Image
from skimage import data as photos

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(REPO))

from app.db import make_engine, reading, writing  # noqa: E402
from app.models.ledger import Wallet  # noqa: E402
from app.services.billing import ledger  # noqa: E402
from app.services.clock import SystemClock  # noqa: E402
from app.services.identity.accounts import find_account_by_email  # noqa: E402
from app.services.identity.api_keys import create_api_key  # noqa: E402

API_PATH = "/v1.0/removebg"
EMAIL = "load@bench.example"
clock = SystemClock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def photo(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photos.astronaut()).resize((width, height)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Stack:
    env: dict[str, str]
    url: str
    root: Path
    db: sa.Engine
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_workers(self, count: int) -> None:
        # Workers on one machine share its cores: each gets its part for onnxruntime's threads
        # (README: CUTOUT_ONNX_THREADS = cores / workers), unless the caller chose.
        threads = os.environ.get("CUTOUT_ONNX_THREADS") or str(
            max(1, (os.cpu_count() or 1) // count)
        )
        env = {**self.env, "CUTOUT_ONNX_THREADS": threads}
        for i in range(count):
            log = (self.root / f"worker{i}.log").open("wb")
            proc = subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "app.worker",
                    "worker",
                    "--concurrency=1",
                    f"--hostname=bench{i}@%h",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.workers.append(proc)
        # Ready when each answers a ping through the broker.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pong = subprocess.run(
                [str(BIN / "celery"), "-A", "app.worker", "inspect", "ping", "--timeout=2"],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                text=True,
            )
            if pong.stdout.count("pong") >= count:
                return
            time.sleep(1)
        raise RuntimeError("Celery workers did not start; see " + str(self.root))

    def stop_workers(self) -> None:
        for proc in self.workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            proc.wait(timeout=120)
        self.workers.clear()


@contextlib.contextmanager
def scaled_stack(database: str, redis: str, web_workers: int) -> Iterator[Stack]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in database else "?"
    url = f"{database}{sep}options=-csearch_path%3D{schema}"
    root = Path(tempfile.mkdtemp(prefix="cutout-load-"))
    port = free_port()
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(root / "data"),
        U2NET_HOME=str(REPO / "data" / "models"),
        NUMBA_CACHE_DIR=env.get("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache")),
        DATABASE_URL=url,
        REFLEX_REDIS_URL=redis,
        CUTOUT_JOBS="celery",
        CUTOUT_CELERY_QUEUE=f"bench-{schema}",
        CUTOUT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        REFLEX_UPLOADED_FILES_DIR=str(root / "data" / "upload-tmp"),
        REFLEX_STATES_WORKDIR=str(root / "data" / "states"),
        REFLEX_USE_NPM="1",
        # A frontend folder of its own: building into `.web` would repoint a `make run`'s pages.
        REFLEX_WEB_WORKDIR=str(REPO / ".web-bench"),
        GRANIAN_WORKERS=str(web_workers),
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    subprocess.run(
        [str(BIN / "cutout-setup"), "--skip-model", "--skip-warm"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    engine = make_engine(url)
    log = (root / "web.log").open("wb")
    web = subprocess.Popen(
        [
            str(BIN / "reflex"),
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
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(env, f"http://127.0.0.1:{port}", root, engine)
    try:
        deadline = time.monotonic() + 900
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(stack.url + "/ping", timeout=2).status_code == 200:
                    break
            if web.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {root / 'web.log'}")
            time.sleep(1)
        yield stack
    finally:
        stack.stop_workers()
        os.killpg(web.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            web.wait(timeout=30)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def admin_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cutout-admin"), *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def api_customer(stack: Stack, credits: int) -> str:
    """An account with `credits` API credits and a key (the operator's commands for the first)."""
    for args in (
        ("users", "create", "--email", EMAIL, "--password", "a long bench passphrase"),
        ("credits", "grant", "--email", EMAIL, "--credits", str(credits), "--wallet", "api"),
    ):
        done = admin_cli(stack, *args)
        if done.returncode:
            raise RuntimeError(done.stderr)
    with writing(stack.db) as session:
        account = find_account_by_email(session=session, email=EMAIL)
        assert account is not None and account.id is not None
        return create_api_key(
            session=session, clock=clock, account_id=account.id, name="load"
        ).raw_key


def api_available(stack: Stack) -> int:
    with reading(stack.db) as session:
        account = find_account_by_email(session=session, email=EMAIL)
        assert account is not None and account.id is not None
        wallets = ledger.balance(session=session, clock=clock, account_id=account.id)
        return wallets[Wallet.api].available


@dataclass
class RunResult:
    images: int = 0
    errors: list[str] = field(default_factory=list)
    charged_milli: int = 0
    pricing_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0


async def load(stack: Stack, key: str, image: bytes, clients: int, seconds: float) -> RunResult:
    result = RunResult()
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 2)

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            try:
                answer = await http.post(
                    stack.url + API_PATH,
                    headers={"X-Api-Key": key},
                    files={"image_file": ("astronaut.jpg", image, "image/jpeg")},
                    data={"size": "auto"},
                )
            except httpx.HTTPError as error:
                result.errors.append(type(error).__name__)
                continue
            if answer.status_code != 200:
                result.errors.append(f"{answer.status_code} {answer.text[:120]}")
                continue
            result.images += 1
            result.charged_milli += int(Decimal(answer.headers["X-Credits-Charged"]) * 1000)

    async def pricing(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            answer = await http.get(stack.url + "/pricing", follow_redirects=True)
            if answer.status_code == 200:
                result.pricing_ms.append((time.perf_counter() - started) * 1000)
            else:
                result.errors.append(f"/pricing {answer.status_code}")
            await asyncio.sleep(0.25)

    began = time.monotonic()
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)), pricing(http))
    result.seconds = time.monotonic() - began
    return result


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values, default=0)


def spread(values: list[float], unit: str, digits: int = 2) -> str:
    return (
        f"{statistics.median(values):.{digits}f} {unit} "
        f"(range {min(values):.{digits}f}-{max(values):.{digits}f}, {len(values)} runs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--celery", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--size", default="640x480", help="photo size, WIDTHxHEIGHT")
    args = parser.parse_args()
    database = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    width, height = (int(n) for n in args.size.split("x"))
    image = photo(width, height)
    failures = 0
    with scaled_stack(database, redis, args.web_workers) as stack:
        probe = httpx.post(stack.url + API_PATH, timeout=30)
        if probe.status_code == 404:
            print(f"{API_PATH} is not served by this build: the HTTP API is not merged yet.")
            return 2
        key = api_customer(stack, credits=1_000_000)
        print(
            f"load: {args.clients} clients x {args.seconds:g} s, {width}x{height} JPEG, "
            f"{args.web_workers} web workers, load average {os.getloadavg()[0]:.1f} at start"
        )
        for celery in args.celery:
            stack.start_workers(celery)
            rates, p95s = [], []
            for run in range(args.runs):
                before = api_available(stack)
                result = asyncio.run(load(stack, key, image, args.clients, args.seconds))
                lost = before - api_available(stack)
                check = admin_cli(stack, "ledger", "check")
                rates.append(result.images / result.seconds)
                p95s.append(p95(result.pricing_ms))
                ok = not result.errors and result.charged_milli == lost and check.returncode == 0
                failures += not ok
                print(
                    f"  {celery} celery worker(s), run {run + 1} "
                    f"(load average {os.getloadavg()[0]:.1f}): {result.images} images, "
                    f"{rates[-1]:.2f}/s, errors {len(result.errors)}"
                    f"{' ' + repr(result.errors[:3]) if result.errors else ''}, "
                    f"charged {result.charged_milli / 1000:g} = wallet lost {lost / 1000:g}: "
                    f"{result.charged_milli == lost}, ledger check "
                    f"{'passes' if check.returncode == 0 else 'FAILS: ' + check.stderr}, "
                    f"/pricing p95 {p95s[-1]:.0f} ms"
                )
            print(
                f"{celery} celery worker(s): {spread(rates, 'images/s')}; "
                f"/pricing p95 {spread(p95s, 'ms', 0)}"
            )
            stack.stop_workers()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
