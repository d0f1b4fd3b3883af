"""`cutout-admin`: operator commands for accounts, credits, feature flags and the ledger check."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import stripe
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.db import make_engine
from app.models.ledger import LotScope
from app.services.billing import ledger
from app.services.billing.entitlements import UnknownFlag
from app.services.billing.pricing import MILLI, format_credits
from app.services.billing.stripe_billing import LOOKUP_KEYS, BillingError
from app.services.clock import Clock, SystemClock
from app.services.identity.accounts import AccountError
from app.services.identity.auth import AuthError
from app.settings import Settings, get_settings
from app.usecases import billing, operator
from app.usecases.operator import OperatorError


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

    payments = groups.add_parser("stripe", help="Stripe billing").add_subparsers(
        dest="command", required=True
    )
    payments.add_parser(
        "sync", help="create or update Cutout's products and prices in Stripe (idempotent)"
    ).set_defaults(run=stripe_sync)

    checks = groups.add_parser("ledger", help="the ledger").add_subparsers(
        dest="command", required=True
    )
    checks.add_parser("check", help="recompute every lot from its entries").set_defaults(
        run=ledger_check
    )
    return parser


Command = Callable[[Engine, Clock, Settings, argparse.Namespace], int]


def users_create(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    account = operator.create_user(
        db=db, clock=clock, settings=settings, email=args.email, password=args.password
    )
    print(f"created account {account.id} for {account.email}")
    return 0


def credits_grant(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    account, lot = operator.grant_credits(
        db=db,
        clock=clock,
        settings=settings,
        email=args.email,
        amount=args.credits,
        scope=LotScope(args.wallet),
        valid_days=args.valid_days,
        key=args.key,
    )
    print(
        f"granted {format_credits(lot.amount)} credits to {account.email} "
        f"({lot.scope.value}, lot {lot.id}, expires {lot.expires_at.isoformat()})"
    )
    return 0


def credits_balance(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    found = operator.balance(db=db, clock=clock, email=args.email)
    report = {
        "email": found.email,
        "plan": found.plan,
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
            for wallet, b in found.wallets.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


def flags_list(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    for flag in operator.list_flags(db=db):
        print(f"{flag.name}\t{'on' if flag.enabled else 'off'}")
    return 0


def flags_set(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    flag = operator.set_flag(db=db, clock=clock, name=args.name, enabled=args.state == "on")
    print(f"{flag.name}\t{'on' if flag.enabled else 'off'}")
    return 0


def stripe_sync(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    for synced in billing.sync_stripe(settings=settings):
        print(
            f"{synced.product.value}\t{synced.price_id}\t{synced.action}"
            f"\tlookup key {LOOKUP_KEYS[synced.product]}"
        )
    return 0


def ledger_check(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    problems = operator.check_ledger(db=db)
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
        return run(engine, clock or SystemClock(), settings, args)
    except (
        OperatorError,
        AccountError,
        AuthError,
        ledger.LedgerError,
        UnknownFlag,
        BillingError,
    ) as error:
        # The unit of work has rolled back: a refused command changes nothing.
        print(f"cutout-admin: error: {error}", file=sys.stderr)
        return 1
    except (OperationalError, ProgrammingError) as error:
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        print(f"cutout-admin: database not ready ({reason}); run cutout-setup", file=sys.stderr)
        return 1
    except stripe.StripeError as error:
        print(
            f"cutout-admin: error: Stripe refused: {error.user_message or error}", file=sys.stderr
        )
        return 1
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
