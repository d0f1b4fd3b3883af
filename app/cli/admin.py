"""`cutout-admin`: operator commands for accounts, credits, feature flags and the ledger check."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from app.db import make_engine, session_scope
from app.models.accounts import Account
from app.models.ledger import LotScope, LotSource
from app.services import ledger
from app.services.accounts import AccountError, create_account, find_account_by_email
from app.services.clock import Clock, SystemClock
from app.services.entitlements import PlanCatalog, UnknownFlag, list_flags, set_flag
from app.services.pricing import MILLI, format_credits
from app.settings import get_settings


class CommandError(Exception):
    """Bad input found after parsing; reported on one line, nothing written."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Scripts grep for one line; argparse's default prints the whole usage first.
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_credits(raw: str) -> int:
    """'12' or '0.5' credits -> milli-credits, exactly (Decimal, never float)."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of credits") from None
    milli = value * MILLI
    if not value.is_finite() or milli != milli.to_integral_value():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of milli-credits")
    if milli <= 0:
        raise argparse.ArgumentTypeError(f"credits must be positive, not {raw}")
    return int(milli)


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cutout-admin", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True, parser_class=OneLineParser)

    users = groups.add_parser("users", help="accounts").add_subparsers(
        dest="command", required=True
    )
    create = users.add_parser("create", help="create an account with its trial credits")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.set_defaults(run=users_create)

    credits = groups.add_parser("credits", help="credit lots").add_subparsers(
        dest="command", required=True
    )
    grant = credits.add_parser("grant", help="grant an adjustment lot")
    grant.add_argument("--email", required=True)
    grant.add_argument("--credits", required=True, type=parse_credits)
    grant.add_argument("--wallet", required=True, choices=[scope.value for scope in LotScope])
    grant.add_argument("--valid-days", type=positive_int, default=None)
    grant.add_argument("--key", help="idempotency key: repeat it to make a retry safe")
    grant.set_defaults(run=credits_grant)
    show = credits.add_parser("balance", help="balances and active lots, as JSON")
    show.add_argument("--email", required=True)
    show.set_defaults(run=credits_balance)

    flags = groups.add_parser("flags", help="feature flags").add_subparsers(
        dest="command", required=True
    )
    flags.add_parser("list", help="every flag and its state").set_defaults(run=flags_list)
    flag_set = flags.add_parser("set", help="turn a flag on or off")
    flag_set.add_argument("name")
    flag_set.add_argument("state", choices=["on", "off"])
    flag_set.set_defaults(run=flags_set)

    checks = groups.add_parser("ledger", help="the ledger").add_subparsers(
        dest="command", required=True
    )
    checks.add_parser("check", help="recompute every lot from its entries").set_defaults(
        run=ledger_check
    )
    return parser


Command = Callable[[Session, Clock, PlanCatalog, argparse.Namespace], int]


def users_create(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    account = create_account(
        session=session,
        email=args.email,
        password=args.password,
        clock=clock,
        trial_credits=catalog.trial_credits // MILLI,
        lot_valid_days=catalog.lot_valid_days,
    )
    print(f"created account {account.id} for {account.email}")
    return 0


def credits_grant(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    account = _account(session, args.email)
    lot = ledger.grant_credits(
        session=session,
        clock=clock,
        account_id=_id(account),
        amount=args.credits,
        scope=LotScope(args.wallet),
        source=LotSource.adjustment,
        key=args.key or f"admin:{uuid.uuid4()}",
        valid_days=args.valid_days or catalog.lot_valid_days,
        note="granted with cutout-admin",
    )
    print(
        f"granted {format_credits(lot.amount)} credits to {account.email} "
        f"({lot.scope.value}, lot {lot.id}, expires {lot.expires_at.isoformat()})"
    )
    return 0


def credits_balance(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    account = _account(session, args.email)
    balances = ledger.balance(session=session, clock=clock, account_id=_id(account))
    report = {
        "email": account.email,
        "plan": account.plan.value,
        "wallets": {
            wallet.value: {
                "available": format_credits(b.available),
                "available_milli": b.available,
                "reserved": format_credits(b.reserved),
                "reserved_milli": b.reserved,
                "lots": [
                    {
                        "id": lot.id,
                        "source": lot.source.value,
                        "issued": lot.issued_at.isoformat(),
                        "expires": lot.expires_at.isoformat(),
                        "remaining": format_credits(lot.remaining),
                        "remaining_milli": lot.remaining,
                    }
                    for lot in b.lots
                ],
            }
            for wallet, b in balances.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


def flags_list(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    for flag in list_flags(session=session):
        print(f"{flag.name}\t{'on' if flag.enabled else 'off'}")
    return 0


def flags_set(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    flag = set_flag(session=session, clock=clock, name=args.name, enabled=args.state == "on")
    print(f"{flag.name}\t{'on' if flag.enabled else 'off'}")
    return 0


def ledger_check(session: Session, clock: Clock, catalog: PlanCatalog, args: Any) -> int:
    problems = ledger.check_ledger(session=session)
    for problem in problems:
        print(problem)
    if problems:
        print(f"ledger check: {len(problems)} difference(s)", file=sys.stderr)
        return 1
    print("ledger check: every lot agrees with its entries")
    return 0


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    engine = make_engine(settings.db_url)
    run: Command = args.run
    try:
        with session_scope(engine) as session:
            return run(session, clock or SystemClock(), PlanCatalog.from_settings(settings), args)
    except (CommandError, AccountError, ledger.LedgerError, UnknownFlag) as error:
        # session_scope has rolled back: a refused command changes nothing.
        print(f"cutout-admin: error: {error}", file=sys.stderr)
        return 1
    except (OperationalError, ProgrammingError) as error:
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        print(f"cutout-admin: database not ready ({reason}); run cutout-setup", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def _account(session: Session, email: str) -> Account:
    account = find_account_by_email(session=session, email=email)
    if account is None or account.deleted_at is not None:
        raise CommandError(f"no account with email {email.strip().lower()}")
    return account


def _id(account: Account) -> int:
    assert account.id is not None
    return account.id


if __name__ == "__main__":
    raise SystemExit(main())
