"""Reserve+capture pairs per second: durable, with history, 8 accounts in parallel.

Each pair is what one cut-out costs the ledger: a reserve, then a capture, each durable before
it returns. Before timing, every account gets history: dozens of lots and thousands of entries.
Then every account is charged as fast as it can be, in two ways, both printed:

- processes: one process per account (8 by default, like 8 app worker processes);
- threads: one process with one thread per account (like `make run`'s one process with
  CUTOUT_WORKERS threads).

Each operation is its own transaction and commit. By default it is made as an API call makes
it (`app.usecases.charges`): on PostgreSQL one autocommitted call of the ledger's database
function. `--in-unit-of-work` makes each inside a writing unit instead (`app.db.writing`), as
a web cut-out's hold and capture are, committed together with the job's own rows.

Run from the repository root:

    .venv/bin/python bench/ledger.py [--accounts 8] [--pairs 400] [--rounds 3] [--pg URL]
                                     [--sqlite-sync FULL|NORMAL] [--sqlite-only | --pg-only]
                                     [--mode processes|threads|both] [--in-unit-of-work]

SQLite runs with `synchronous=FULL` by default, as the app does: every commit is on disk
before it returns. TEST_DATABASE_URL is used when --pg is not given; PostgreSQL runs with its
defaults (fsync and synchronous_commit on), and the CPU time of the server's processes working
for the benchmark's database (its backends and the shared writers, read from /proc while they
live) is counted beside the client's. Targets on a 2-core machine: 500 pairs/s on
SQLite, 1,000 pairs/s in total on PostgreSQL. Prints the median of the rounds and the range.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
from app.usecases import charges  # noqa: E402

TARGETS = {"sqlite": 500.0, "postgresql": 1000.0}
HISTORY_LOTS = 36  # plus the trial
HISTORY_PAIRS = 1_500  # 3,000 entries per account, and a grant entry per lot
COST = 1_100  # a 12 MP photo


def tick() -> int:
    return os.sysconf("SC_CLK_TCK")


# The server's own writers, shared by every database: their work for the benchmark counts.
SHARED_SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter")


def server_cpu_seconds(database: str) -> float:
    """CPU time of the local server's processes working for `database`: its backends (named in
    their process titles) and the shared writers.

    Read while the benchmark's backends are alive: an exited backend's time goes to the
    postmaster, mixed with that of every other database's connections on the machine.
    """
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                title = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres:"):
                continue
            if database not in title.split() and not any(
                name in title for name in SHARED_SERVER_PROCESSES
            ):
                continue
            with open(f"/proc/{pid}/stat") as stat:
                values = stat.read().rsplit(")", 1)[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime (fields 14-15)
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return total / tick()


def prepare(url: str, accounts: int, sync: str) -> list[int]:
    """Fresh schema, then `accounts` accounts, each with lots and a history of charges."""
    os.chdir(REPO)  # alembic.ini lives at the repository root
    migrate(Settings(), url=url)
    engine = make_engine(url, sqlite_synchronous=sync)
    clock = SystemClock()
    ids = []
    for n in range(accounts):
        with writing(engine) as session:
            account = create_account(
                session=session,
                email=f"bench-{n}-{uuid.uuid4().hex[:8]}@example.com",
                password_hash=None,
                clock=clock,
                trial_credits=10,
                lot_valid_days=90,
            )
            assert account.id is not None
            for lot in range(HISTORY_LOTS):
                ledger.grant_credits(
                    session=session,
                    clock=clock,
                    account_id=account.id,
                    amount=1_000_000,
                    scope=LotScope.web if lot % 3 else LotScope.both,
                    source=LotSource.subscription,
                    key=f"lot-{lot}",
                    valid_days=30 + lot,
                )
            for pair in range(HISTORY_PAIRS):
                key = f"history-{pair}"
                ledger.reserve_credits(
                    session=session,
                    clock=clock,
                    account_id=account.id,
                    wallet=Wallet.web,
                    amount=COST,
                    key=key,
                )
                ledger.capture_reservation(
                    session=session, clock=clock, account_id=account.id, key=key, amount=COST
                )
        ids.append(account.id)
    engine.dispose()
    return ids


def reserve_and_capture(engine: sa.Engine, clock: SystemClock, account_id: int, key: str) -> None:
    """One cut-out's charge as an API call makes it: a hold, then its capture, each a unit of
    work of its own (app.usecases.charges)."""
    charges.reserve(
        db=engine, clock=clock, account_id=account_id, wallet=Wallet.web, amount=COST, key=key
    )
    charges.capture(db=engine, clock=clock, account_id=account_id, key=key, amount=COST)


def in_units_of_work(engine: sa.Engine, clock: SystemClock, account_id: int, key: str) -> None:
    """The same pair, each inside a writing unit of work (as a web cut-out's are)."""
    with writing(engine) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=Wallet.web,
            amount=COST,
            key=key,
        )
    with writing(engine) as session:
        ledger.capture_reservation(
            session=session, clock=clock, account_id=account_id, key=key, amount=COST
        )


PAIR = {"alone": reserve_and_capture, "unit of work": in_units_of_work}
# Chosen in main() before any worker starts (forked workers inherit it).
pair_path = "alone"


def charge(
    url: str,
    sync: str,
    account_id: int,
    pairs: int,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
    measured: multiprocessing.synchronize.Event,
) -> None:
    """One worker: `pairs` reserve+capture pairs on its account; reports its CPU seconds.

    Its connection stays open until the server's CPU time has been read (`measured`).
    """
    engine = make_engine(url, sqlite_synchronous=sync)
    clock = SystemClock()
    with writing(engine) as session:  # connect before the clock starts
        ledger.balance(session=session, clock=clock, account_id=account_id)
    start.wait()
    cpu = time.process_time()
    make_pair = PAIR[pair_path]
    for n in range(pairs):
        make_pair(engine, clock, account_id, f"bench-{n}")
    results.put(time.process_time() - cpu)
    measured.wait(timeout=600)
    engine.dispose()


def charge_in_threads(
    url: str, sync: str, ids: list[int], pairs: int, server: Callable[[], float] | None
) -> tuple[float, float, float | None, str]:
    """All accounts from one process, a thread each: (seconds, CPU, server CPU, batching)."""
    engine = make_engine(url, sqlite_synchronous=sync)
    clock = SystemClock()
    for account_id in ids:  # connect before the clock starts
        with writing(engine) as session:
            ledger.balance(session=session, clock=clock, account_id=account_id)
    start = threading.Barrier(len(ids) + 1)
    failures: list[BaseException] = []

    def worker(account_id: int) -> None:
        start.wait()
        make_pair = PAIR[pair_path]
        try:
            for n in range(pairs):
                make_pair(engine, clock, account_id, f"bench-{n}")
        except BaseException as error:  # reported below, after the clock stops
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    start.wait()
    server_began = server() if server else 0.0
    began, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    elapsed, spent = time.perf_counter() - began, time.process_time() - cpu
    server_spent = server() - server_began if server else None  # before the backends exit
    engine.dispose()
    if failures:
        raise SystemExit(f"a thread failed: {failures[0]!r}")
    return elapsed, spent, server_spent, f"1 operation per commit, {pair_path}"


@dataclass(frozen=True)
class Round:
    pairs_per_second: float
    client_cpu_per_pair_ms: float
    server_cpu_per_pair_ms: float | None
    batching: str


def run_round(url: str, accounts: int, pairs: int, sync: str, server: bool, mode: str) -> Round:
    ids = prepare(url, accounts, sync)
    database = sa.make_url(url).database or ""
    server_clock = (lambda: server_cpu_seconds(database)) if server else None
    if mode == "threads":
        elapsed, cpu, server_spent, batching = charge_in_threads(
            url, sync, ids, pairs, server_clock
        )
        return finish(url, accounts * pairs, elapsed, [cpu], server_spent, batching)
    # Forked processes, like app workers: the barrier is inherited, so all start together.
    context = multiprocessing.get_context("fork")
    start = context.Barrier(accounts + 1)
    results: multiprocessing.Queue = context.Queue()
    measured = context.Event()
    workers = [
        context.Process(target=charge, args=(url, sync, i, pairs, start, results, measured))
        for i in ids
    ]
    for worker in workers:
        worker.start()
    start.wait(timeout=300)
    began, server_began = time.perf_counter(), server_clock() if server_clock else 0.0
    cpus = [results.get(timeout=3600) for _ in workers]
    elapsed = time.perf_counter() - began
    server_spent = server_clock() - server_began if server_clock else None
    measured.set()
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit(f"a worker failed (exit code {worker.exitcode})")
    batching = f"1 operation per commit, {pair_path}"
    return finish(url, accounts * pairs, elapsed, cpus, server_spent, batching)


def finish(
    url: str,
    total: int,
    elapsed: float,
    cpus: list[float],
    server_spent: float | None,
    batching: str,
) -> Round:
    engine = make_engine(url)
    with writing(engine) as session:
        problems = ledger.check_ledger(session=session)
    engine.dispose()
    if problems:
        raise SystemExit(f"ledger check failed after the benchmark: {problems[0]}")
    return Round(
        total / elapsed,
        1000 * sum(cpus) / total,
        None if server_spent is None else 1000 * server_spent / total,
        batching,
    )


def report(name: str, mode: str, runs: list[Round], note: str) -> None:
    rates = sorted(r.pairs_per_second for r in runs)
    median = statistics.median(rates)
    ratio = median / TARGETS[name]
    line = (
        f"{name:<10} {mode:<9} median {median:6.0f} pairs/s (range {rates[0]:.0f}-{rates[-1]:.0f}, "
        f"{len(runs)} rounds), {ratio:.2f}x the {TARGETS[name]:.0f}/s target "
        + ("ok" if ratio >= 1 else "MISSED")
    )
    client = statistics.median(r.client_cpu_per_pair_ms for r in runs)
    line += f"; client CPU {client:.2f} ms/pair"
    servers = [r.server_cpu_per_pair_ms for r in runs if r.server_cpu_per_pair_ms is not None]
    if servers:
        line += f", server CPU {statistics.median(servers):.2f} ms/pair"
    print(f"{line}  [{runs[len(runs) // 2].batching}; {note}]", flush=True)


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=8, help="accounts charged in parallel")
    parser.add_argument("--pairs", type=int, default=400, help="pairs per account per round")
    parser.add_argument("--rounds", type=int, default=3, help="fresh database each round")
    parser.add_argument("--sqlite-sync", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"))
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--pg-only", action="store_true")
    parser.add_argument("--mode", default="both", choices=["processes", "threads", "both"])
    parser.add_argument(
        "--in-unit-of-work",
        action="store_true",
        help="each operation inside a writing unit of work (a web cut-out's), not alone",
    )
    args = parser.parse_args()
    global pair_path
    pair_path = "unit of work" if args.in_unit_of_work else "alone"
    print(
        f"{args.accounts} accounts in parallel, {args.pairs} pairs each, history of "
        f"{HISTORY_LOTS + 1} lots and {2 * HISTORY_PAIRS + HISTORY_LOTS + 1} entries per "
        f"account; {os.cpu_count()} cores; {load()} at start",
        flush=True,
    )

    modes = ["processes", "threads"] if args.mode == "both" else [args.mode]
    for mode in modes if not args.pg_only else []:
        runs = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db"
                runs.append(
                    run_round(url, args.accounts, args.pairs, args.sqlite_sync, False, mode)
                )
        report("sqlite", mode, runs, f"synchronous={args.sqlite_sync}, WAL; {load()}")

    for mode in modes if args.pg and not args.sqlite_only else []:
        runs = []
        admin = sa.create_engine(args.pg)
        sep = "&" if "?" in args.pg else "?"
        for _ in range(args.rounds):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                url = f"{args.pg}{sep}options=-csearch_path%3D{schema}"
                runs.append(run_round(url, args.accounts, args.pairs, "FULL", True, mode))
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        report("postgresql", mode, runs, f"fsync on, synchronous_commit on; {load()}")


if __name__ == "__main__":
    main()
