"""What an operator does from the command line: accounts, credits, feature flags, audits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import reading, writing
from app.models.accounts import Account, Plan
from app.models.ledger import CreditLot, LotScope, LotSource, Wallet
from app.services.billing import entitlements, ledger
from app.services.clock import Clock
from app.services.identity import accounts, api_keys, auth
from app.settings import Settings


class OperatorError(Exception):
    """Bad input found after parsing; reported on one line, nothing written."""


@dataclass(frozen=True)
class AccountBalance:
    email: str
    plan: str
    wallets: dict[Wallet, ledger.WalletBalance]


def create_user(
    *, db: Engine, clock: Clock, settings: Settings, email: str, password: str
) -> Account:
    password_hash = auth.check_new_password(password, email=email)  # slow: no transaction
    with writing(db) as session:
        return accounts.create_account(
            session=session,
            email=email,
            password_hash=password_hash,
            clock=clock,
            trial_credits=settings.trial_credits,
            lot_valid_days=settings.lot_valid_days,
        )


def grant_credits(
    *,
    db: Engine,
    clock: Clock,
    settings: Settings,
    email: str,
    amount: int,
    scope: LotScope,
    valid_days: int | None,
    key: str | None,
) -> tuple[Account, CreditLot]:
    with writing(db) as session:
        account = _account(session, email)
        assert account.id is not None
        lot = ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=account.id,
            amount=amount,
            scope=scope,
            source=LotSource.adjustment,
            key=key or f"admin:{uuid.uuid4()}",
            valid_days=valid_days or settings.lot_valid_days,
            note="granted with cutout-admin",
            granted_by="cutout-admin",
        )
        return account, lot


def balance(*, db: Engine, clock: Clock, email: str) -> AccountBalance:
    with reading(db) as session:
        account = _account(session, email)
        assert account.id is not None
        wallets = ledger.balance(session=session, clock=clock, account_id=account.id)
        return AccountBalance(account.email, account.plan.value, wallets)


def list_flags(*, db: Engine) -> list[entitlements.FlagState]:
    with reading(db) as session:
        return entitlements.list_flags(session=session)


def set_flag(*, db: Engine, clock: Clock, name: str, enabled: bool) -> entitlements.FlagState:
    with writing(db) as session:
        return entitlements.set_flag(session=session, clock=clock, name=name, enabled=enabled)


def check_ledger(*, db: Engine) -> list[ledger.Discrepancy]:
    with reading(db) as session:
        return ledger.check_ledger(session=session)


def set_plan(*, db: Engine, email: str, plan: Plan) -> tuple[Account, Plan]:
    """Put an account on a plan by hand; returns the account and the plan it had before."""
    with writing(db) as session:
        account = _account(session, email)
        assert account.id is not None
        before = entitlements.set_plan(session=session, account_id=account.id, plan=plan)
        return account, before


def void_lot(
    *, db: Engine, clock: Clock, lot_id: int, reason: str, voided_by: str = "cutout-admin"
) -> tuple[CreditLot, int]:
    """Void a lot's unspent, unheld rest; returns the lot and the milli-credits voided."""
    reason = reason.strip()
    if not reason:
        raise OperatorError("say why the lot is voided (--reason)")
    with writing(db) as session:
        lot = ledger.find_lot(session=session, lot_id=lot_id)
        if lot is None:
            raise OperatorError(f"no credit lot with id {lot_id}")
        if lot.voided_at is not None:
            raise OperatorError(f"lot {lot_id} was already voided ({lot.void_reason})")
        voided = ledger.void_lot(
            session=session,
            clock=clock,
            account_id=lot.account_id,
            lot_id=lot_id,
            key=f"void:{lot_id}",
            reason=reason,
            voided_by=voided_by,
        )
        return voided, ledger.voided_credits(session=session, lot_id=lot_id)


def money_report(*, db: Engine, start: datetime, end: datetime) -> ledger.MoneyReport:
    if end <= start:
        raise OperatorError("the report's period must end after it starts")
    with reading(db) as session:
        return ledger.money_report(session=session, start=start, end=end)


def expiry_warnings(*, db: Engine, clock: Clock) -> list[ledger.ExpiryWarning]:
    """Lots with credits left that expire within a week, every account: for a mailer to send."""
    with reading(db) as session:
        return ledger.expiring_soon(session=session, clock=clock)


def create_api_key(*, db: Engine, clock: Clock, email: str, name: str) -> api_keys.NewApiKey:
    """A new key for the account; the raw key is in the answer and nowhere else."""
    with writing(db) as session:
        account = _account(session, email)
        assert account.id is not None
        return api_keys.create_api_key(
            session=session, clock=clock, account_id=account.id, name=name
        )


def list_api_keys(*, db: Engine, email: str) -> list[api_keys.ApiKeyView]:
    with reading(db) as session:
        account = _account(session, email)
        assert account.id is not None
        return api_keys.list_api_keys(session=session, account_id=account.id)


def revoke_api_key(*, db: Engine, clock: Clock, email: str, key: str) -> api_keys.ApiKeyView:
    """Revoke one of the account's keys, named by its id or its displayed prefix."""
    with writing(db) as session:
        account = _account(session, email)
        assert account.id is not None
        wanted = key.strip().removesuffix("...").removesuffix("…")
        matches = [
            view
            for view in api_keys.list_api_keys(session=session, account_id=account.id)
            if str(view.id) == wanted or view.prefix == wanted
        ]
        if len(matches) != 1:
            raise OperatorError(f"{email.strip()} has no usable key {key!r}")
        api_keys.revoke_api_key(
            session=session, clock=clock, account_id=account.id, key_id=matches[0].id
        )
        return matches[0]


def _account(session: Session, email: str) -> Account:
    account = accounts.find_account_by_email(session=session, email=email)
    if account is None or account.deleted_at is not None:
        raise OperatorError(f"no account with email {email.strip().lower()}")
    return account
