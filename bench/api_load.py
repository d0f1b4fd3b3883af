"""The API under load: 20 clients posting photos for 60 s to a real backend. Prints images/s
and p95 latency, and checks the money: the X-Credits-Charged headers add up to what the API
wallet lost, and `cutout-admin ledger check` passes.

Starts Cutout's real backend (`reflex run --env prod --backend-only`, SQLite in a fresh data
folder, the rate limit raised out of the way since this measures throughput), makes an account
and a key with `cutout-admin`, grants it API credits, then runs the clients (threads, each with
its own HTTP connection) posting the same 512 x 512 photo at `--size`.

    .venv/bin/python bench/api_load.py [--clients 20] [--seconds 60] [--rounds 3]
                                       [--size preview] [--workers 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
from _backend import free_port, percentile, start_backend  # noqa: E402  (bench/ is on sys.path)
from PIL import Image
from skimage import data as photos

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
EMAIL = "load@example.com"



def environment(data_dir: Path, workers: int) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        U2NET_HOME=str(REPO / "data" / "models"),
        REFLEX_UPLOADED_FILES_DIR=str(data_dir / "upload-tmp"),
        REFLEX_STATES_WORKDIR=str(data_dir / "states"),
        CUTOUT_API_MEGAPIXEL_IMAGES_PER_MINUTE="1000000",
        CUTOUT_WORKERS=str(workers),
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache"))
    env.pop("DATABASE_URL", None)
    return env


def admin(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "cutout-admin"), *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cutout-admin {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def api_available(env: dict[str, str]) -> int:
    report = json.loads(admin(env, "credits", "balance", "--email", EMAIL))
    return int(report["wallets"]["api"]["available_milli"])


def milli(header: str) -> int:
    return int(Decimal(header) * 1000)


def photo_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(photos.astronaut())).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()



def load(base: str, key: str, clients: int, seconds: float, size: str) -> dict[str, object]:
    photo = photo_jpeg()
    latencies: list[float] = []
    charged: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=300, headers={"X-Api-Key": key}) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    answer = http.post(
                        base + "/v1.0/removebg",
                        files={"image_file": ("astronaut.jpg", photo, "image/jpeg")},
                        data={"size": size},
                    )
                except httpx.HTTPError as error:
                    with lock:
                        failures.append(type(error).__name__)
                    continue
                took = time.perf_counter() - started
                with lock:
                    if answer.status_code == 200:
                        latencies.append(took)
                        charged.append(milli(answer.headers["x-credits-charged"]))
                    else:
                        failures.append(f"{answer.status_code} {answer.text[:120]}")

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started  # includes the calls still running at the deadline
    return {
        "images": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.5) if latencies else float("nan"),
        "p95": percentile(latencies, 0.95) if latencies else float("nan"),
        "charged": sum(charged),
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="preview")
    parser.add_argument("--workers", type=int, default=1, help="CUTOUT_WORKERS of the server")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cutout-api-bench-") as tmp:
        env = environment(Path(tmp) / "data", args.workers)
        subprocess.run(
            [str(BIN / "cutout-setup"), "--skip-model", "--skip-warm"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        admin(env, "users", "create", "--email", EMAIL, "--password", "a long passphrase")
        admin(env, "credits", "grant", "--email", EMAIL, "--credits", "100000", "--wallet", "api")
        key = admin(env, "keys", "create", "--email", EMAIL, "--name", "bench").strip()
        port = free_port()
        server = start_backend(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(base + "/ping").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the backend did not start")
                time.sleep(0.5)
            load(base, key, 2, 3.0, args.size)  # warm the model and the connections

            rates, p95s, ok = [], [], True
            for round_number in range(1, args.rounds + 1):
                before = api_available(env)
                result = load(base, key, args.clients, args.seconds, args.size)
                lost = before - api_available(env)
                failures = result["failures"]
                assert isinstance(failures, list)
                balanced = lost == result["charged"]
                ok = ok and balanced and not failures
                rates.append(float(result["per_second"]))  # type: ignore[arg-type]
                p95s.append(float(result["p95"]))  # type: ignore[arg-type]
                print(
                    f"round {round_number}: {result['images']} images in {args.seconds:g} s by "
                    f"{args.clients} clients: {result['per_second']:.2f} images/s, "
                    f"p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s; "
                    f"{len(failures)} errors; X-Credits-Charged sum {result['charged']} milli, "
                    f"API wallet lost {lost} milli ({'equal' if balanced else 'DIFFERENT'})"
                )
                for failure in sorted(set(failures))[:5]:
                    print(f"  error: {failure}")
            checked = subprocess.run(
                [str(BIN / "cutout-admin"), "ledger", "check"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            print(checked.stdout.strip() or checked.stderr.strip())
            ok = ok and checked.returncode == 0
            print(
                f"size={args.size}, CUTOUT_WORKERS={args.workers}, {os.cpu_count()} cores: "
                f"median {statistics.median(rates):.2f} images/s "
                f"(range {min(rates):.2f}-{max(rates):.2f}), median p95 "
                f"{statistics.median(p95s):.2f} s (range {min(p95s):.2f}-{max(p95s):.2f}) "
                f"over {args.rounds} rounds"
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
