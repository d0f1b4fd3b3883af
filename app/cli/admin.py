"""`cutout-admin`: operator commands for accounts, plans, credits, flags, the ledger and money."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import stripe
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.db import make_engine
from app.models.accounts import Plan
from app.models.ledger import LotScope
from app.services.billing import ledger
from app.services.billing.entitlements import UnknownFlag, UnpricedTool
from app.services.billing.pricing import MILLI, format_credits
from app.services.billing.stripe_billing import LOOKUP_KEYS, BillingError
from app.services.clock import Clock, SystemClock
from app.services.identity.accounts import AccountError
from app.services.identity.api_keys import ApiKeyError
from app.services.identity.auth import AuthError
from app.settings import Settings, describe_invalid, get_settings
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
    # Checked before any arithmetic: a signalling NaN ("sNaN") raises inside it.
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of credits")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"credits must be positive, not {raw}")
    if value > Decimal(ledger.MAX_AMOUNT) / MILLI:
        raise argparse.ArgumentTypeError(
            f"{raw} credits is more than one grant may hold ({ledger.MAX_AMOUNT // MILLI:,})"
        )
    milli = value * MILLI
    if milli != milli.to_integral_value():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of milli-credits")
    return int(milli)


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def valid_days(raw: str) -> int:
    value = positive_int(raw)
    if value > ledger.MAX_LOT_VALID_DAYS:
        raise argparse.ArgumentTypeError(
            f"a lot may be valid at most {ledger.MAX_LOT_VALID_DAYS} days, not {value}"
        )
    return value


def utc_time(raw: str) -> datetime:
    """'2026-11-01' (midnight UTC) or a full ISO 8601 time; a time without a zone is UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date (YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    grant.add_argument("--valid-days", type=valid_days, default=None)
    grant.add_argument("--key", help="idempotency key: repeat it to make a retry safe")
    grant.set_defaults(run=credits_grant)
    show = credits.add_parser("balance", help="balances and active lots, as JSON")
    show.add_argument("--email", required=True)
    show.set_defaults(run=credits_balance)
    void = credits.add_parser("void", help="void a lot's unspent rest (held credits honoured)")
    void.add_argument("--lot", required=True, type=positive_int)
    void.add_argument("--reason", required=True)
    void.set_defaults(run=credits_void)

    plans = groups.add_parser("plans", help="plans").add_subparsers(dest="command", required=True)
    plan_set = plans.add_parser("set", help="put an account on a plan")
    plan_set.add_argument("--email", required=True)
    plan_set.add_argument("plan", choices=[plan.value for plan in Plan])
    plan_set.set_defaults(run=plans_set)

    report = groups.add_parser(
        "report", help="credits and money for a period, to reconcile with Stripe"
    )
    report.add_argument("--from", dest="start", required=True, type=utc_time)
    report.add_argument("--to", dest="end", required=True, type=utc_time, help="exclusive")
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    report.set_defaults(run=money_report)

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

    keys = groups.add_parser("keys", help="API keys").add_subparsers(
        dest="command", required=True
    )
    key_create = keys.add_parser("create", help="create an API key and print it (shown once)")
    key_create.add_argument("--email", required=True)
    key_create.add_argument("--name", required=True)
    key_create.set_defaults(run=keys_create)
    key_list = keys.add_parser("list", help="an account's usable keys (prefixes only)")
    key_list.add_argument("--email", required=True)
    key_list.set_defaults(run=keys_list)
    key_revoke = keys.add_parser("revoke", help="revoke a key by its id or prefix")
    key_revoke.add_argument("--email", required=True)
    key_revoke.add_argument("key", help="the id or the prefix `keys list` shows")
    key_revoke.set_defaults(run=keys_revoke)

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


def credits_void(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    lot, voided = operator.void_lot(db=db, clock=clock, lot_id=args.lot, reason=args.reason)
    print(f"voided {format_credits(voided)} credits of lot {lot.id}")
    if lot.reserved:
        # Held credits honour their reservation; whatever it hands back is voided then.
        print(f"{format_credits(lot.reserved)} credits are still held; voided if handed back")
    return 0


def plans_set(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    account, before = operator.set_plan(db=db, email=args.email, plan=Plan(args.plan))
    print(f"{account.email}: {before.value} -> {account.plan.value}")
    return 0


def money_report(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    report = operator.money_report(db=db, start=args.start, end=args.end)
    issued = sum(report.issued.values())
    if args.json:
        print(
            json.dumps(
                {
                    "from": report.start.isoformat(),
                    "to": report.end.isoformat(),
                    "credits_milli": {
                        "issued": issued,
                        "issued_by_source": {k.value: v for k, v in report.issued.items()},
                        "spent": report.spent,
                        "expired": report.expired,
                        "voided": report.voided,
                    },
                    "money_minor_units": [vars(totals) for totals in report.money],
                },
                indent=2,
            )
        )
        return 0
    print(f"period {report.start.isoformat()} to {report.end.isoformat()} (end excluded)")
    by_source = ", ".join(
        f"{source.value} {format_credits(amount)}" for source, amount in report.issued.items()
    )
    print(f"credits issued   {format_credits(issued)}" + (f" ({by_source})" if by_source else ""))
    for label, amount in (
        ("spent", report.spent),
        ("expired", report.expired),
        ("voided", report.voided),
    ):
        print(f"credits {label:<8} {format_credits(amount)}")
    if not report.money:
        print("money: no purchased lots in or before this period")
    for totals in report.money:
        code = totals.currency.upper()
        print(
            f"money {code}: received {_money(totals.received)}, "
            f"recognised {_money(totals.recognised)}, voided {_money(totals.voided)}, "
            f"deferred {_money(totals.deferred_at_start)} at start and "
            f"{_money(totals.deferred_at_end)} at end"
        )
    return 0


def _money(minor: int) -> str:
    """Minor units (cents) as a decimal amount, exactly: 123456 -> '1234.56'."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


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


def keys_create(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    created = operator.create_api_key(db=db, clock=clock, email=args.email, name=args.name)
    print(created.raw_key)
    print(
        f"created key {created.view.id} ({created.view.prefix}...) for {args.email.strip()}; "
        "it is shown only this once",
        file=sys.stderr,
    )
    return 0


def keys_list(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    for key in operator.list_api_keys(db=db, email=args.email):
        used = key.last_used_at.isoformat() if key.last_used_at else "never used"
        print(f"{key.id}\t{key.prefix}...\t{key.name}\t{key.created_at.isoformat()}\t{used}")
    return 0


def keys_revoke(db: Engine, clock: Clock, settings: Settings, args: Any) -> int:
    revoked = operator.revoke_api_key(db=db, clock=clock, email=args.email, key=args.key)
    print(f"revoked key {revoked.id} ({revoked.prefix}...)")
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
    try:
        settings = get_settings()
    except ValidationError as invalid:
        print(f"cutout-admin: error: {describe_invalid(invalid)}", file=sys.stderr)
        return 1
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
        UnpricedTool,
        ApiKeyError,
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
