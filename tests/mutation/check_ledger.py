"""Mutants that weaken `ledger check`, and which tests kill them. A script, not a test.

Each mutant deletes or blunts one part of `check_ledger` in app/services/billing/ledger.py; the
file is restored afterwards, whatever happens. A mutant is killed when the tests fail with it.
Run from the repository root:

    .venv/bin/python tests/mutation/check_ledger.py [-k EXTRA_PYTEST_FILTER]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "app" / "services" / "billing" / "ledger.py"
TESTS = [
    "tests/unit/test_ledger_model.py::test_the_ledger_check_reports_each_kind_of_tampering",
    "tests/unit/test_ledger_model.py::test_the_ledger_check_finds_a_tampered_cache",
]

MUTANTS: dict[str, tuple[str, str]] = {
    "grant record ignores amount": ('("amount", lot.amount, record.amount),', ""),
    "no remaining check": (
        'compare(subject, "remaining", lot.remaining, s[EntryKind.grant] - spent)',
        "pass",
    ),
    "no reserved check": ('compare(subject, "reserved", lot.reserved, held)', "pass"),
    "no closed-lot check": (
        'compare(subject, "unreserved remaining of a closed lot", unreserved, 0)',
        "pass",
    ),
    "no grant records": ("*_check_grant_records(session, account_id),", ""),
    "grant record ignores expiry": (
        '("expires_at", lot.expires_at, record.lot_expires_at),',
        "",
    ),
    "grant record ignores scope": ('("scope", lot.scope.value, record.lot_scope),', ""),
    "no entry-account check": ("*_check_entry_accounts(session, account_id),", ""),
    "no reservation checks": ("*_check_reservations(session, account_id),", ""),
    "reservation ignores held": ('("held", reservation.amount, s[EntryKind.hold]),', ""),
    "reservation ignores captured": (
        '("captured", reservation.captured, s[EntryKind.capture]),',
        "",
    ),
    "reservation ignores status": (
        '("status", reservation.status.value, _status_of(',
        '("status", reservation.status.value, reservation.status.value or _status_of(',
    ),
    "status ignores timing": ("late = resolved_at >= reservation.expires_at", "late = False"),
    "no hold-validity check": ("*_check_hold_validity(session, account_id),", ""),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="not pg_db", help="pytest -k filter (default: SQLite only)")
    args = parser.parse_args()
    original = TARGET.read_text()
    survivors = []
    try:
        for name, (before, after) in MUTANTS.items():
            if original.count(before) != 1:
                print(f"{name}: pattern not found once; the mutant is stale", flush=True)
                survivors.append(name)
                continue
            TARGET.write_text(original.replace(before, after))
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-x",
                    "-p",
                    "no:cacheprovider",
                    "-k",
                    args.k,
                    *TESTS,
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
            if run.returncode == 0:
                survivors.append(name)
                print(f"SURVIVED  {name}", flush=True)
            else:
                killer = failed[0].removeprefix("FAILED ").split(" - ")[0] if failed else "?"
                print(f"killed    {name}  by {killer}", flush=True)
    finally:
        TARGET.write_text(original)
    print(f"{len(MUTANTS) - len(survivors)} of {len(MUTANTS)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
