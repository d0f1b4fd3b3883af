"""Is a signed-in person's image load slowed down by a storm of wrong sign-ins? Prints p50/p95.

Starts Cutout's real backend (`reflex run --env prod --backend-only`, SQLite in a fresh data
folder, trusting one proxy hop), signs one person in, then fetches their photo's preview from
`/files/...` over HTTP in a loop while 20 wrong-password sign-ins at a time are posted to the
sign-in form's route, each from a new address and for a new email (so none is throttled away
before its password check).

    .venv/bin/python bench/signin_contention.py [--seconds 15] [--attackers 20] [--rounds 3]

Target (issue 15): p95 under 200 ms on this 2-core machine.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _backend import free_port, percentile, start_backend  # noqa: E402  (bench/ is on sys.path)
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.routes import SESSION_COOKIE, SIGN_IN_POST, file_url  # noqa: E402


def environment(data_dir: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        U2NET_HOME=str(REPO / "data" / "models"),
        REFLEX_UPLOADED_FILES_DIR=str(data_dir / "upload-tmp"),
        PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}",
    )
    env.pop("DATABASE_URL", None)
    return env


def prepare(data_dir: Path) -> tuple[str, str]:
    """An account with one uploaded photo: (session token, job id). Runs in the data folder."""
    os.environ.update(environment(data_dir))
    from app.db import engine_for
    from app.services.clock import SystemClock
    from app.settings import get_settings
    from app.usecases import accounts, cutouts, operator

    settings = get_settings()
    db = engine_for(settings.db_url)
    # A confirmed account (sign-up would wait for its mailed link), then a password sign-in.
    operator.create_user(
        db=db,
        clock=SystemClock(),
        settings=settings,
        email="reader@example.com",
        password="a long enough passphrase",
    )
    token, person = accounts.sign_in(
        db=db,
        clock=SystemClock(),
        settings=settings,
        email="reader@example.com",
        password="a long enough passphrase",
        address="127.0.0.1",
        user_agent="bench",
    )
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (200, 120, 40)).save(buffer, format="JPEG")
    job = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=SystemClock(),
        account_id=person.id,
        filename="bench.jpg",
        data=buffer.getvalue(),
    )
    return token, job.id


def attack(base: str, attackers: int, seconds: float, counter: list[int]) -> None:
    """Wrong password sign-ins over HTTP, `attackers` at a time, for `seconds`.

    Every attempt uses a new email and a new client address (the server trusts one proxy hop,
    so X-Forwarded-For names the client), as a botnet would: the throttle never short-cuts the
    password check, so each one costs the server a full argon2 verification and a write.
    """
    stop_at = time.monotonic() + seconds

    def one(n: int) -> None:
        attempt = 0
        with httpx.Client(timeout=60, follow_redirects=False) as client:
            while time.monotonic() < stop_at:
                attempt += 1
                response = client.post(
                    base + SIGN_IN_POST,
                    data={
                        "email": f"guess-{n}-{attempt}@example.com",
                        "password": f"wrong guess {attempt}",
                        "next": "/",
                    },
                    headers={"X-Forwarded-For": f"10.{n}.{attempt // 256 % 256}.{attempt % 256}"},
                )
                if response.status_code != 303 or "error=credentials" not in response.headers.get(
                    "location", ""
                ):
                    raise RuntimeError(f"unexpected answer to a wrong sign-in: {response}")
                counter[n] += 1

    with ThreadPoolExecutor(max_workers=attackers) as pool:
        list(pool.map(one, range(attackers)))


def measure(url: str, token: str, stop_at: float) -> list[float]:
    latencies = []
    with httpx.Client(cookies={SESSION_COOKIE: token}, timeout=30) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = client.get(url)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            time.sleep(0.02)
    return latencies



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cutout-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = environment(data_dir)
        env["CUTOUT_TRUSTED_PROXY_HOPS"] = "1"  # as behind a reverse proxy
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "cutout-setup"), "--skip-model", "--skip-warm"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            token, job_id = pool.apply(prepare, (data_dir,))
        port = free_port()
        server = start_backend(env, port)
        base = f"http://127.0.0.1:{port}"
        url = base + file_url(job_id, "before.jpg")
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url, cookies={SESSION_COOKIE: token}).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the backend did not start")
                time.sleep(0.5)

            quiet = measure(url, token, time.monotonic() + 3)
            print(
                f"idle:  p50 {percentile(quiet, 0.5) * 1000:.0f} ms, "
                f"p95 {percentile(quiet, 0.95) * 1000:.0f} ms ({len(quiet)} loads)"
            )
            p95s = []
            for round_number in range(1, args.rounds + 1):
                counter = [0] * args.attackers
                storm = threading.Thread(
                    target=attack, args=(base, args.attackers, args.seconds, counter)
                )
                storm.start()
                time.sleep(1.0)  # let the storm reach full strength
                loads = measure(url, token, time.monotonic() + args.seconds - 1.0)
                storm.join()
                p95 = percentile(loads, 0.95)
                p95s.append(p95)
                print(
                    f"round {round_number}: {sum(counter)} wrong sign-ins; /files p50 "
                    f"{percentile(loads, 0.5) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                    f"max {max(loads) * 1000:.0f} ms ({len(loads)} loads)"
                )
            print(
                f"p95 under {args.attackers} wrong sign-ins: median "
                f"{statistics.median(p95s) * 1000:.0f} ms over {args.rounds} rounds "
                f"(range {min(p95s) * 1000:.0f}-{max(p95s) * 1000:.0f} ms); target < 200 ms"
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
