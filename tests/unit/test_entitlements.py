"""Plans, feature flags and the one entitlement answer the UI, API and workers share."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine

from app.db import writing
from app.models.accounts import Account, Plan
from app.models.ledger import LotScope, LotSource, Wallet
from app.services.billing import ledger
from app.services.billing.entitlements import (
    EVERY_PLAN_FEATURES,
    TRIAL_ONLY,
    PlanCatalog,
    UnknownFlag,
    UnpricedTool,
    entitlement,
    list_flags,
    set_flag,
    set_plan,
)
from app.services.billing.pricing import PRICE_TABLE, STANDARD_ONLY_FEATURES, Feature
from app.services.clock import FrozenClock
from tests.conftest import new_account

# The shipped table prices no Standard-only tool yet; a tool ships with its price, as here.
PRICED_TOOLS = replace(
    PRICE_TABLE,
    surcharges={**PRICE_TABLE.surcharges, **dict.fromkeys(STANDARD_ONLY_FEATURES, 1_000)},
)


def make_account(db: Engine, clock: FrozenClock, plan: Plan, email: str) -> Account:
    with writing(db) as session:
        account = new_account(session, clock, email)
        account.plan = plan
        session.add(account)
    return account


@pytest.mark.parametrize("plan", list(Plan))
@pytest.mark.parametrize("feature", EVERY_PLAN_FEATURES)
def test_every_plan_may_use_the_core_features(
    db: Engine, clock: FrozenClock, plan: Plan, feature: Feature
) -> None:
    account = make_account(db, clock, plan, f"{plan}-{feature}@example.com")
    with writing(db) as session:
        answer = entitlement(session=session, account=account, feature=feature)
    assert answer.allowed, answer.reason
    assert answer.wallet == (Wallet.api if feature == Feature.api else Wallet.web)


def test_the_api_channel_charges_the_api_wallet(db: Engine, clock: FrozenClock) -> None:
    account = make_account(db, clock, Plan.basic, "api@example.com")
    with writing(db) as session:
        answer = entitlement(session=session, account=account, feature=Feature.hair, via=Wallet.api)
    assert (answer.allowed, answer.wallet) == (True, Wallet.api)


@pytest.mark.parametrize("feature", STANDARD_ONLY_FEATURES)
def test_upcoming_tools_are_coming_soon_even_for_standard(
    db: Engine, clock: FrozenClock, feature: Feature
) -> None:
    account = make_account(db, clock, Plan.standard, "std@example.com")
    with writing(db) as session:
        answer = entitlement(session=session, account=account, feature=feature)
    assert not answer.allowed
    assert answer.coming_soon
    assert "coming soon" in answer.reason


@pytest.mark.parametrize("feature", STANDARD_ONLY_FEATURES)
def test_a_flag_turned_on_opens_the_tool_to_standard_only(
    db: Engine, clock: FrozenClock, feature: Feature
) -> None:
    accounts = {plan: make_account(db, clock, plan, f"{plan}@example.com") for plan in Plan}
    with writing(db) as session:
        set_flag(session=session, clock=clock, name=feature.value, enabled=True, table=PRICED_TOOLS)
    with writing(db) as session:
        answers = {
            plan: entitlement(session=session, account=account, feature=feature)
            for plan, account in accounts.items()
        }
    assert answers[Plan.standard].allowed
    assert answers[Plan.standard].wallet == Wallet.web
    for plan in (Plan.free, Plan.basic):
        assert not answers[plan].allowed
        assert not answers[plan].coming_soon
        assert answers[plan].needs_plan == Plan.standard
        assert "needs the Standard plan" in answers[plan].reason


def test_turning_a_flag_off_again_closes_the_tool(db: Engine, clock: FrozenClock) -> None:
    account = make_account(db, clock, Plan.standard, "std@example.com")
    with writing(db) as session:
        set_flag(
            session=session, clock=clock, name="object_removal", enabled=True, table=PRICED_TOOLS
        )
    with writing(db) as session:
        set_flag(session=session, clock=clock, name="object_removal", enabled=False)
    with writing(db) as session:
        answer = entitlement(session=session, account=account, feature=Feature.object_removal)
        flags = {flag.name: flag.enabled for flag in list_flags(session=session)}
    assert answer.coming_soon
    assert flags == {feature.value: False for feature in STANDARD_ONLY_FEATURES}


def test_a_deleted_account_may_use_nothing(db: Engine, clock: FrozenClock) -> None:
    account = make_account(db, clock, Plan.standard, "gone@example.com")
    account.deleted_at = clock.now()
    with writing(db) as session:
        answer = entitlement(session=session, account=account, feature=Feature.background_removal)
    assert not answer.allowed
    assert answer.wallet is None


def test_unknown_flags_are_refused_and_not_stored(db: Engine, clock: FrozenClock) -> None:
    with pytest.raises(UnknownFlag, match="known flags: ai_background"), writing(db) as s:
        set_flag(session=s, clock=clock, name="free_money", enabled=True)
    with writing(db) as session:
        names = [flag.name for flag in list_flags(session=session)]
    assert "free_money" not in names


def test_the_catalog_defaults_match_the_published_plans() -> None:
    catalog = PlanCatalog()
    basic, standard = catalog.offer(Plan.basic), catalog.offer(Plan.standard)
    assert (basic.price_cents, basic.credits) == (3000, 1_000_000)
    assert (standard.price_cents, standard.credits) == (4500, 1_000_000)
    assert set(STANDARD_ONLY_FEATURES) <= set(standard.features)
    assert not set(STANDARD_ONLY_FEATURES) & set(basic.features)


def test_the_catalog_reads_settings_in_whole_credits() -> None:
    settings = SimpleNamespace(standard_price_cents=5000, topup_credits=300, lot_valid_days=60)
    catalog = PlanCatalog.from_settings(settings)
    assert catalog.standard_price_cents == 5000
    assert catalog.topup_credits == 300_000
    assert catalog.lot_valid_days == 60
    assert catalog.basic_price_cents == 3000  # unset: the default


@pytest.mark.parametrize("feature", STANDARD_ONLY_FEATURES)
def test_a_tool_without_a_price_cannot_be_switched_on(
    db: Engine, clock: FrozenClock, feature: Feature
) -> None:
    with pytest.raises(UnpricedTool, match="has no price yet"), writing(db) as session:
        set_flag(session=session, clock=clock, name=feature.value, enabled=True)
    with writing(db) as session:
        set_flag(session=session, clock=clock, name=feature.value, enabled=False)  # always fine
        flags = {flag.name: flag.enabled for flag in list_flags(session=session)}
    assert flags[feature.value] is False


def test_trial_credits_pay_for_a_standard_tool_on_any_plan_until_they_run_out(
    db: Engine, clock: FrozenClock
) -> None:
    """The FAQ: trial credits "work for any feature", Standard-only tools included."""
    free = make_account(db, clock, Plan.free, "free@example.com")
    with writing(db) as session:
        set_flag(
            session=session, clock=clock, name="object_removal", enabled=True, table=PRICED_TOOLS
        )
        ledger.grant_credits(
            session=session,
            clock=clock,
            account_id=free.id,
            amount=50_000,
            scope=LotScope.web,
            source=LotSource.top_up,
            key="bought",
            valid_days=30,  # expires before the trial: drawn first by any ordinary charge
        )
    with writing(db) as session:
        answer = entitlement(
            session=session, account=free, feature=Feature.object_removal, clock=clock
        )
        assert (answer.allowed, answer.wallet, answer.sources) == (True, Wallet.web, TRIAL_ONLY)
        held = ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=free.id,
            wallet=Wallet.web,
            amount=10_000,
            key="tool",
            sources=answer.sources,
        )
        lots = ledger.balance(session=session, clock=clock, account_id=free.id)[Wallet.web].lots
    assert held.amount == 10_000
    # The whole trial is held; the bought lot, though it expires sooner, was not touched.
    assert {lot.source: lot.remaining - lot.reserved for lot in lots} == {
        LotSource.top_up: 50_000,
        LotSource.trial: 0,
    }
    with writing(db) as session:
        spent = entitlement(
            session=session, account=free, feature=Feature.object_removal, clock=clock
        )
        unclocked = entitlement(session=session, account=free, feature=Feature.object_removal)
    assert not spent.allowed and spent.needs_plan == Plan.standard
    assert "needs the Standard plan" in spent.reason
    assert not unclocked.allowed  # without a clock the trial door stays shut


def test_an_expired_trial_no_longer_opens_standard_tools(db: Engine, clock: FrozenClock) -> None:
    basic = make_account(db, clock, Plan.basic, "basic@example.com")
    with writing(db) as session:
        set_flag(
            session=session, clock=clock, name="super_resolution", enabled=True, table=PRICED_TOOLS
        )
    clock.advance(timedelta(days=90))
    with writing(db) as session:
        answer = entitlement(
            session=session, account=basic, feature=Feature.super_resolution, clock=clock
        )
    assert not answer.allowed and answer.needs_plan == Plan.standard


def test_an_operator_moves_an_account_between_plans(db: Engine, clock: FrozenClock) -> None:
    account = make_account(db, clock, Plan.free, "mover@example.com")
    with writing(db) as session:
        before = set_plan(session=session, account_id=account.id, plan=Plan.standard)
    with writing(db) as session:
        stored = session.get(Account, account.id)
    assert (before, stored.plan) == (Plan.free, Plan.standard)
    with pytest.raises(ledger.AccountNotFound), writing(db) as session:
        set_plan(session=session, account_id=10_000, plan=Plan.basic)
