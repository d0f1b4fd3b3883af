"""What a transaction's own round trips cost on PostgreSQL: BEGIN + statement + COMMIT against the
same statement autocommitted. Sizes the next step for the ledger's charge (bench/ledger.py):
each operation is a durable transaction of its own, and BEGIN and COMMIT are two of its three
round trips. Run from the repository root:

    .venv/bin/python bench/pg_roundtrips.py [--url postgresql://root@127.0.0.1:5432/test]
                                            [--n 3000] [--runs 3]

Prints, per mode, the median (and range) over the runs of wall and client CPU time per
transaction. The statement reads one row of the catalogue, so no schema is needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg


def one_run(connection: psycopg.Connection, autocommit: bool, n: int) -> tuple[float, float]:
    connection.autocommit = autocommit
    began, cpu = time.perf_counter(), os.times()
    for _ in range(n):
        connection.execute("SELECT oid FROM pg_class WHERE relname = %s", ("pg_class",))
        if not autocommit:
            connection.commit()
    done = os.times()
    spent = (done.user - cpu.user) + (done.system - cpu.system)
    return (time.perf_counter() - began) / n * 1e3, spent / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with psycopg.connect(args.url) as connection:
        results: dict[str, list[tuple[float, float]]] = {
            "BEGIN+statement+COMMIT": [],
            "autocommit": [],
        }
        for _ in range(args.runs):  # interleaved, so both modes see the same load
            results["BEGIN+statement+COMMIT"].append(one_run(connection, False, args.n))
            results["autocommit"].append(one_run(connection, True, args.n))
    for mode, runs in results.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        print(
            f"{mode:24} wall {statistics.median(wall):.3f} ms ({min(wall):.3f}-{max(wall):.3f}), "
            f"client CPU {statistics.median(cpu):.3f} ms ({min(cpu):.3f}-{max(cpu):.3f}) "
            f"per transaction, {args.runs} runs of {args.n}"
        )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
