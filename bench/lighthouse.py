"""Lighthouse (mobile) on every page: performance, accessibility, best practices and SEO.

Starts the production build on a free port with a private data folder (or uses --url), makes
a confirmed account with one finished cutout, signs in over HTTP and hands the session cookie
to Lighthouse for the pages that need it. Run from the repository root after
`make lighthouse-tools` (npm `lighthouse` under .lighthouse/, run by the venv's Node 24):

    .venv/bin/python bench/lighthouse.py [--runs 3] [--url http://127.0.0.1:3000 --email E
                                         --password P] [--why]

Prints, per page, the median of the runs for each score and the range; a page that is not on
this build (404) says so. Goals: performance >= 90, the other three >= 95.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LIGHTHOUSE = REPO / ".lighthouse" / "node_modules" / "lighthouse" / "cli" / "index.js"
NODE = REPO / ".venv" / "bin" / "node"
CHROME = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
GOALS = {"performance": 90, "accessibility": 95, "best-practices": 95, "seo": 95}
PASSWORD = "lighthouse bench passphrase"
# (path, needs a signed-in session)
PAGES = [
    ("/", False),
    ("/pricing", False),
    ("/signin", False),
    ("/signup", False),
    ("/account", True),
    ("/editor/{job}", True),
    ("/bulk", True),
    ("/api", True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    bin_dir = REPO / ".venv" / "bin"
    env = os.environ.copy()
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        U2NET_HOME=str(REPO / "data" / "models"),
        REFLEX_UPLOADED_FILES_DIR=str(data_dir / "upload-tmp"),
        REFLEX_STATES_WORKDIR=str(data_dir / "states"),
        REFLEX_USE_NPM="1",
        CUTOUT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        # Its own frontend folder: building into .web would break a `make run` serving from it.
        REFLEX_WEB_WORKDIR=str(REPO / ".web-bench"),
    )
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / "data" / "numba-cache"))
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [str(bin_dir / "cutout-setup"), "--skip-model", "--skip-warm"], env=env, check=True
    )
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(bin_dir / "reflex"), "run", "--env", "prod", "--single-port",
         "--frontend-port", str(port), "--backend-host", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the app exited early; see {data_dir / 'server.log'}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    sys.exit("the app did not start within 15 minutes")


def make_account(data_dir: Path, email: str) -> str:
    """A confirmed account with one finished cutout (for /editor/<job>); returns the job id."""
    from PIL import Image
    from skimage import data as photos

    from app.db import make_engine
    from app.services.clock import SystemClock
    from app.settings import Settings
    from app.usecases import cutouts
    from app.usecases.operator import create_user

    settings = Settings(data_dir=data_dir, models_dir=REPO / "data" / "models", database_url="")
    db, clock = make_engine(settings.db_url), SystemClock()
    account = create_user(db=db, clock=clock, settings=settings, email=email, password=PASSWORD)
    buffer = io.BytesIO()
    Image.fromarray(photos.astronaut()).save(buffer, format="JPEG", quality=90)
    job = cutouts.submit_photo(
        db=db, settings=settings, clock=clock, account_id=account.id,
        filename="astronaut.jpg", data=buffer.getvalue(),
    )  # fmt: skip
    cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=account.id, job_id=job.id
    )
    return job.id


def session_cookie(url: str, email: str, password: str) -> str:
    from app.routes import SESSION_COOKIE, SIGN_IN_POST

    answer = httpx.post(
        url + SIGN_IN_POST, data={"email": email, "password": password, "next": "/"},
        follow_redirects=False,
    )  # fmt: skip
    token = answer.cookies.get(SESSION_COOKIE)
    if not token:
        sys.exit(f"signing in failed ({answer.status_code}): {answer.headers.get('location')}")
    return f"{SESSION_COOKIE}={token}"


def lighthouse(page_url: str, cookie: str | None) -> dict:
    command = [
        str(NODE), str(LIGHTHOUSE), page_url,
        "--output=json", "--output-path=stdout", "--quiet", "--form-factor=mobile",
        "--only-categories=" + ",".join(CATEGORIES),
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu "
        "--disable-background-networking --no-first-run",
    ]  # fmt: skip
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    env = dict(os.environ, CHROME_PATH=CHROME)
    # Lighthouse's first navigation on a cold Chromium sometimes stops with NO_NAVSTART (its
    # own trace lost the navigation start); that run measured nothing, so try it again.
    for _ in range(3):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        if done.returncode == 0:
            return json.loads(done.stdout)
        # Lighthouse exits non-zero on a runtime error, after printing the report.
        if "NO_NAVSTART" not in done.stderr + done.stdout:
            raise RuntimeError(done.stderr[-2000:])
        print(f"    {page_url}: Lighthouse stopped on NO_NAVSTART, trying again", file=sys.stderr)
    raise RuntimeError(f"Lighthouse stopped on NO_NAVSTART three times on {page_url}")


def failing_audits(report: dict, category: str) -> list[str]:
    refs = report["categories"][category]["auditRefs"]
    out = []
    for ref in refs:
        audit = report["audits"][ref["id"]]
        if ref.get("weight", 0) and audit.get("score") is not None and audit["score"] < 0.9:
            out.append(f"{audit['id']} ({audit['score']:.2f}): {audit.get('displayValue', '')}")
    return out


# Lighthouse's simulated (slow 4G, 4x slower CPU) metrics behind the performance score.
METRICS = {
    "first-contentful-paint": "FCP",
    "largest-contentful-paint": "LCP",
    "total-blocking-time": "TBT",
    "speed-index": "SI",
}


def metric_medians(reports: list[dict]) -> str:
    """The median of each metric over the runs, in ms (TBT moves most with the machine's load)."""
    return (
        ", ".join(
            f"{short} {statistics.median(r['audits'][audit]['numericValue'] for r in reports):.0f}"
            for audit, short in METRICS.items()
        )
        + " ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="a running Cutout instead of starting one")
    parser.add_argument("--email", help="with --url: an account to sign in as")
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--job", default="", help="with --url: a job id for /editor/<job>")
    parser.add_argument(
        "--why",
        action="store_true",
        help="print the metrics (median) and list the audits that lose points",
    )
    parser.add_argument(
        "--save", type=Path, help="write each run's full JSON report into this folder"
    )
    args = parser.parse_args()
    if not LIGHTHOUSE.is_file():
        sys.exit("Lighthouse is not installed: run `make lighthouse-tools` first.")

    proc, workdir = None, None
    try:
        if args.url:
            url, job, email = args.url.rstrip("/"), args.job, args.email
        else:
            workdir = Path(tempfile.mkdtemp(prefix="cutout-lighthouse-"))
            data_dir = workdir / "data"
            data_dir.mkdir()
            proc, url = start_app(data_dir)
            email = "lighthouse@example.com"
            job = make_account(data_dir, email)
        cookie = session_cookie(url, email, args.password) if email else None
        print(f"Lighthouse {args.runs} run(s) per page, mobile, {url}; load {os.getloadavg()}")
        print(f"{'page':<22}" + "".join(f"{c:>22}" for c in CATEGORIES))
        for path, needs_session in PAGES:
            shown = path.format(job=job or "<job>")
            target = url + path.format(job=job)
            status = httpx.get(
                target, headers={"Cookie": cookie} if needs_session and cookie else {},
                follow_redirects=True,
            ).status_code  # fmt: skip
            if status == 404:
                print(f"{shown:<22}not on this build (404)")
                continue
            reports = [
                lighthouse(target, cookie if needs_session else None) for _ in range(args.runs)
            ]
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                name = path.strip("/").split("/")[0] or "home"
                for number, report in enumerate(reports, 1):
                    (args.save / f"{name}-{number}.json").write_text(json.dumps(report))
            cells = []
            for category in CATEGORIES:
                scores = [round(r["categories"][category]["score"] * 100) for r in reports]
                mark = "" if statistics.median(scores) >= GOALS[category] else " !"
                cells.append(
                    f"{statistics.median(scores):>5g} ({min(scores)}-{max(scores)}){mark}".rjust(22)
                )
            print(f"{shown:<22}" + "".join(cells), flush=True)
            if args.why:
                print("    " + metric_medians(reports))
                for category in CATEGORIES:
                    for line in failing_audits(reports[-1], category):
                        print(f"    {category}: {line}")
        print("goals: performance >= 90, accessibility / best-practices / seo >= 95 (! = below)")
        print(f"load at the end {os.getloadavg()}")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
