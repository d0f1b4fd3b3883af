"""Reserve+capture pairs per second on SQLite and, given a URL, PostgreSQL.

Each pair is what one cut-out costs the ledger: a reserve transaction, then a capture
transaction, each committed. Run from the repository root:

    .venv/bin/python bench/ledger.py [--pairs 2000] [--rounds 5] [--pg postgresql+psycopg://...]

TEST_DATABASE_URL is used when --pg is not given. Target: at least 500 pairs/s on SQLite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.cli.setup import migrate  # noqa: E402
from app.db import make_engine, writing  # noqa: E402
from app.models.ledger import LotScope, LotSource, Wallet  # noqa: E402
from app.services.billing import ledger  # noqa: E402
from app.services.clock import SystemClock  # noqa: E402
from app.services.identity.accounts import create_account  # noqa: E402
from app.settings import Settings  # noqa: E402

SQLITE_TARGET = 500.0


def pairs_per_second(url: str, pairs: int) -> tuple[float, float]:
    """(pairs per wall-clock second, pairs per second of this process's CPU time)."""
    os.chdir(REPO)  # alembic.ini lives at the repository root
    migrate(Settings(), url=url)
    engine = make_engine(url)
    clock = SystemClock()
    with writing(engine) as session:
        account = create_account(
            session=session,
            email=f"bench-{uuid.uuid4().hex}@example.com",
            password=None,
            clock=clock,
        )
        assert account.id is not None
        account_id = account.id
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            amount=pairs * 2_000,
            scope=LotScope.web,
            source=LotSource.adjustment,
            key="bench",
        )
    started, started_cpu = time.perf_counter(), time.process_time()
    for n in range(pairs):
        key = f"bench-{n}"
        with writing(engine) as session:
            ledger.reserve_credits(
                session=session,
                clock=clock,
                account_id=account_id,
                wallet=Wallet.web,
                amount=1_050,
                key=key,
            )
        with writing(engine) as session:
            ledger.capture_reservation(
                session=session, clock=clock, account_id=account_id, key=key, amount=1_050
            )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    with writing(engine) as session:
        problems = ledger.check_ledger(session=session, account_id=account_id)
    engine.dispose()
    if problems:
        raise SystemExit(f"ledger check failed after the benchmark: {problems[0]}")
    return pairs / elapsed, pairs / cpu


def report(name: str, runs: list[tuple[float, float]], target: float | None = None) -> None:
    walls = sorted(wall for wall, _ in runs)
    cpus = sorted(cpu for _, cpu in runs)
    verdict = ""
    if target is not None:
        ratio = statistics.median(walls) / target
        verdict = f"  {ratio:.2f}x the {target:.0f}/s target " + ("ok" if ratio >= 1 else "MISSED")
    print(
        f"{name:<11} median {statistics.median(walls):5.0f} pairs/s wall "
        f"(range {walls[0]:.0f}-{walls[-1]:.0f} over {len(runs)} rounds), "
        f"median {statistics.median(cpus):5.0f} per CPU-second{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="fresh database each round")
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()

    runs = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(pairs_per_second(f"sqlite:///{tmp}/bench.db", args.pairs))
    # The CPU figure is what the machine could do unloaded; on a busy machine wall time lags it.
    report("sqlite", runs, target=SQLITE_TARGET)

    if args.pg:
        runs = []
        admin = sa.create_engine(args.pg)
        sep = "&" if "?" in args.pg else "?"
        for _ in range(args.rounds):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                url = f"{args.pg}{sep}options=-csearch_path%3D{schema}"
                runs.append(pairs_per_second(url, args.pairs))
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        report("postgresql", runs)


if __name__ == "__main__":
    main()
