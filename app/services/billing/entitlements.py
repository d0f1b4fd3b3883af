"""Who may use which feature now, and from which wallet; plans, their catalog, and feature flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlmodel import Session, col, select

from app.models.accounts import Account, Plan
from app.models.ledger import CreditLot, FeatureFlag, LotSource, Wallet
from app.services.billing.ledger import SCOPES_OF_WALLET, AccountNotFound
from app.services.billing.pricing import (
    FEATURE_LABELS,
    MILLI,
    PRICE_TABLE,
    STANDARD_ONLY_FEATURES,
    Feature,
    PriceTable,
    is_priced,
)
from app.services.clock import Clock


@dataclass(frozen=True)
class PlanOffer:
    plan: Plan
    name: str
    price_cents: int  # per month; 0 for the free plan
    credits: int  # milli-credits issued per paid billing period
    features: tuple[Feature, ...]


EVERY_PLAN_FEATURES: tuple[Feature, ...] = (
    Feature.background_removal,
    Feature.ai_cut,
    Feature.hair,
    Feature.bulk,
    Feature.editor,
    Feature.api,
)


@dataclass(frozen=True)
class PlanCatalog:
    """Prices and credit amounts, built from settings (see ``from_settings``). Money in cents."""

    basic_price_cents: int = 3000
    basic_credits: int = 1000 * MILLI
    standard_price_cents: int = 4500
    standard_credits: int = 1000 * MILLI
    trial_credits: int = 10 * MILLI
    topup_credits: int = 250 * MILLI
    topup_price_cents: int = 1000
    api_pack_credits: int = 1000 * MILLI
    api_pack_price_cents: int = 3500
    lot_valid_days: int = 90
    reservation_timeout_seconds: int = 600
    currency: str = "usd"

    @classmethod
    def from_settings(cls, settings: Any) -> PlanCatalog:
        """Read ``<field>`` from settings where it exists (credits there are whole credits)."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if hasattr(settings, name):
                value = getattr(settings, name)
                values[name] = value * MILLI if name.endswith("credits") else value
        return cls(**values)

    @property
    def offers(self) -> tuple[PlanOffer, ...]:
        return (
            PlanOffer(Plan.free, "Free", 0, 0, EVERY_PLAN_FEATURES),
            PlanOffer(
                Plan.basic, "Basic", self.basic_price_cents, self.basic_credits, EVERY_PLAN_FEATURES
            ),
            PlanOffer(
                Plan.standard,
                "Standard",
                self.standard_price_cents,
                self.standard_credits,
                EVERY_PLAN_FEATURES + STANDARD_ONLY_FEATURES,
            ),
        )

    def offer(self, plan: Plan) -> PlanOffer:
        return next(offer for offer in self.offers if offer.plan == plan)


# Which plan unlocks a feature. Everything else is on every plan, the trial included.
REQUIRED_PLAN: Mapping[Feature, Plan] = MappingProxyType(
    {feature: Plan.standard for feature in STANDARD_ONLY_FEATURES}
)
FLAGGED_FEATURES: tuple[Feature, ...] = STANDARD_ONLY_FEATURES


@dataclass(frozen=True)
class Entitlement:
    allowed: bool
    wallet: Wallet | None  # where the cost is charged, when allowed
    reason: str = ""  # why not, in words to show the user
    coming_soon: bool = False
    needs_plan: Plan | None = None
    # The lots the charge may draw from; None means any lot of the wallet. A tool above the
    # account's plan is paid from the trial only: trial credits "work for any feature".
    sources: tuple[LotSource, ...] | None = None


TRIAL_ONLY: tuple[LotSource, ...] = (LotSource.trial,)


def entitlement(
    *,
    session: Session,
    account: Account,
    feature: Feature,
    via: Wallet = Wallet.web,
    clock: Clock | None = None,
) -> Entitlement:
    """May ``account`` use ``feature`` now, reached through ``via``, and charged to which wallet?

    Balance is not checked here: reserving the cost is what refuses an empty wallet. Given a
    clock, an account below a tool's plan may still use it while its trial has credits left
    (charged to the trial alone); without one, that door stays shut.
    """
    label = FEATURE_LABELS[feature]
    if account.deleted_at is not None:
        return Entitlement(False, None, "this account has been deleted")
    wallet = Wallet.api if feature == Feature.api else via
    if feature in FLAGGED_FEATURES and not flag_enabled(session=session, name=feature.value):
        return Entitlement(False, None, f"{label} is coming soon", coming_soon=True)
    needed = REQUIRED_PLAN.get(feature)
    if needed is not None and account.plan != needed:
        if clock is not None and _trial_left(session, account, wallet, clock):
            return Entitlement(True, wallet, sources=TRIAL_ONLY)
        return Entitlement(
            False,
            None,
            f"{label} needs the {needed.value.capitalize()} plan",
            needs_plan=needed,
        )
    return Entitlement(True, wallet)


def _trial_left(session: Session, account: Account, wallet: Wallet, clock: Clock) -> bool:
    now = clock.now()
    found = session.exec(
        select(CreditLot.id).where(
            CreditLot.account_id == account.id,
            CreditLot.source == LotSource.trial,
            col(CreditLot.scope).in_(SCOPES_OF_WALLET[wallet]),
            col(CreditLot.issued_at) <= now,
            col(CreditLot.expires_at) > now,
            col(CreditLot.voided_at).is_(None),
            col(CreditLot.remaining) > col(CreditLot.reserved),
        )
    ).first()
    return found is not None


class UnknownFlag(ValueError):
    def __init__(self, name: str) -> None:
        known = ", ".join(feature.value for feature in FLAGGED_FEATURES)
        super().__init__(f"unknown feature flag {name!r}; known flags: {known}")
        self.name = name


class UnpricedTool(ValueError):
    def __init__(self, feature: Feature) -> None:
        super().__init__(
            f"{feature.value} has no price yet; give it one in the price table "
            "(app/services/billing/pricing.py) before switching it on"
        )
        self.feature = feature


@dataclass(frozen=True)
class FlagState:
    name: str
    enabled: bool


def flag_enabled(*, session: Session, name: str) -> bool:
    row = session.get(FeatureFlag, name)
    return bool(row and row.enabled)


def list_flags(*, session: Session) -> list[FlagState]:
    """Every known flag, stored or not (a missing row is off)."""
    stored = {
        row.name: row.enabled
        for row in session.exec(
            select(FeatureFlag).where(col(FeatureFlag.name).in_(_flag_names()))
        ).all()
    }
    return [FlagState(name, stored.get(name, False)) for name in _flag_names()]


def set_flag(
    *,
    session: Session,
    clock: Clock,
    name: str,
    enabled: bool,
    table: PriceTable = PRICE_TABLE,
) -> FlagState:
    """Switch a Standard-only tool on or off; one without a price cannot be switched on."""
    if name not in _flag_names():
        raise UnknownFlag(name)
    if enabled and not is_priced(Feature(name), table=table):
        raise UnpricedTool(Feature(name))
    row = session.get(FeatureFlag, name)
    if row is None:
        row = FeatureFlag(name=name, enabled=enabled, updated_at=clock.now())
    else:
        row.enabled = enabled
        row.updated_at = clock.now()
    session.add(row)
    session.flush()
    return FlagState(name, enabled)


def set_plan(*, session: Session, account_id: int, plan: Plan) -> Plan:
    """Put an account on `plan` (an operator's override); returns the plan it had before."""
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise AccountNotFound(account_id)
    before = account.plan
    account.plan = plan
    session.add(account)
    session.flush()
    return before


def _flag_names() -> list[str]:
    return [feature.value for feature in FLAGGED_FEATURES]
