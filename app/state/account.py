"""Account page state: wallets, lots, history, recent jobs, API keys, password, deletion.

A new API key is shown once and never stored here: it goes to the browser as an event's
payload (`rx.set_value` into a read-only field), so no state pickle ever holds it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import reflex as rx
import stripe

from app import routes, runtime
from app.models.accounts import Plan
from app.models.ledger import EntryKind, LotScope, Wallet
from app.services.billing import ledger
from app.services.billing.pricing import format_credits
from app.services.billing.stripe_billing import BillingError, BillingNotConfigured, PlanStatus
from app.services.identity.api_keys import ApiKeyError
from app.services.identity.auth import AuthError
from app.services.jobs.storage import JobFile
from app.state.auth import AuthState
from app.state.session_guard import reset_page_states
from app.usecases import accounts, billing

NEW_KEY_FIELD = "new-api-key"
DONE = {"reset": "Your new password is set. Every other browser was signed out."}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


SCOPE_LABELS = {LotScope.web: "web", LotScope.api: "API", LotScope.both: "web and API"}
# The ledger's entries in plain words.
ENTRY_LABELS = {
    EntryKind.grant: "Credits added",
    EntryKind.hold: "Put on hold",
    EntryKind.capture: "Charged",
    EntryKind.release: "Hold returned",
    EntryKind.expire: "Expired",
    EntryKind.void: "Cancelled",
}


def wallet_rows(
    wallets: dict[Wallet, ledger.WalletBalance],
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Each wallet's own credits and, once, those its lots share with the other wallet.

    The trial (and any grant to both wallets) is one batch either wallet can spend: counted once
    under "Both wallets", never once per wallet (10 + 10 would promise 20 credits).
    """
    lots = {lot.id: lot for balance in wallets.values() for lot in balance.lots}

    def free(scope: LotScope) -> str:
        return format_credits(
            sum(lot.remaining - lot.reserved for lot in lots.values() if lot.scope == scope)
        )

    def reserved(wallet: Wallet) -> str:
        return format_credits(wallets[wallet].reserved)

    rows = [
        {
            "name": "Web",
            "available": free(LotScope.web),
            "reserved": reserved(Wallet.web),
            "note": "home, editor and bulk",
        },
        {
            "name": "API",
            "available": free(LotScope.api),
            "reserved": reserved(Wallet.api),
            "note": "the HTTP API",
        },
        {
            "name": "Both wallets",
            "available": free(LotScope.both),
            "reserved": "",
            "note": "web or API",
        },
    ]
    lot_rows = [
        {
            "source": lot.source.value.replace("_", " "),
            "scope": SCOPE_LABELS[lot.scope],
            "issued": lot.issued_at.strftime("%Y-%m-%d"),
            "expires": lot.expires_at.strftime("%Y-%m-%d"),
            "remaining": format_credits(lot.remaining),
        }
        for lot in sorted(lots.values(), key=lambda lot: (lot.expires_at, lot.issued_at, lot.id))
    ]
    return rows, lot_rows


class AccountState(AuthState):
    wallets: list[dict[str, str]] = []
    lots: list[dict[str, str]] = []
    history: list[dict[str, str]] = []
    history_page: int = 1
    history_pages: int = 1
    jobs: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    key_shown: bool = False
    message: str = ""
    problem: str = ""
    # Billing: what the plan section says and offers.
    billing_ready: bool = False
    plan_line: str = ""
    payment_failed: bool = False
    has_subscription: bool = False
    cancel_scheduled: bool = False
    switch_to: str = ""
    has_customer: bool = False
    billing_busy: bool = False

    async def _load(self) -> None:
        account = await self.current_account()
        if account is None:
            return
        board = await asyncio.to_thread(
            accounts.dashboard,
            db=runtime.db(),
            clock=runtime.clock(),
            account_id=account.id,
            page=self.history_page,
        )
        self.wallets, self.lots = wallet_rows(board.wallets)
        self.history = [
            {
                "when": _when(e.created_at),
                "kind": ENTRY_LABELS.get(e.kind, e.kind.value),
                "amount": format_credits(e.amount),
                "lot": e.lot_source.value.replace("_", " "),
            }
            for e in board.history.entries
        ]
        self.history_pages = max(1, -(-board.history.total // board.history.per_page))
        self.jobs = [
            {
                "id": job.id,
                "name": job.original_name,
                "status": job.status.value,
                "download": routes.file_url(job.id, JobFile.cutout, download=True),
                "file": job.download_name,
            }
            for job in board.jobs
        ]
        self.keys = [
            {
                "id": str(key.id),
                "name": key.name,
                "prefix": key.prefix,
                "created": _when(key.created_at),
                "used": _when(key.last_used_at),
            }
            for key in board.keys
        ]
        overview = await asyncio.to_thread(
            billing.overview, db=runtime.db(), settings=runtime.settings(), account_id=account.id
        )
        self.billing_ready = overview.enabled
        self._show_plan(overview.status)

    def _show_plan(self, status: PlanStatus) -> None:
        self.plan = status.plan.value
        self.has_subscription = status.subscription_id is not None
        self.cancel_scheduled = status.ends_on is not None
        self.payment_failed = status.payment_failed
        self.has_customer = status.has_customer
        self.switch_to = {Plan.basic: "standard", Plan.standard: "basic"}.get(status.plan, "")
        if status.ends_on is not None:
            self.plan_line = (
                f"Cancelled: the plan ends on {status.ends_on:%Y-%m-%d}. No monthly credits "
                "after that; the credits you have keep their own expiry."
            )
        elif status.renews_on is not None:
            self.plan_line = f"Renews on {status.renews_on:%Y-%m-%d} with a new month of credits."
        else:
            self.plan_line = ""

    async def _billing_call(self, action, **fields):  # type: ignore[no-untyped-def]
        """Run a billing use case for the signed-in account; None (and a message) if refused."""
        account = await self.current_account()
        if account is None:
            return None
        client = runtime.stripe_client()
        self.billing_busy = True
        try:
            if client is None:
                raise BillingNotConfigured()
            return await asyncio.to_thread(
                action,
                db=runtime.db(),
                settings=runtime.settings(),
                client=client,
                account_id=account.id,
                **fields,
            )
        except BillingError as refused:
            self.problem = str(refused)
            return None
        except stripe.StripeError:
            self.problem = "Stripe refused the change; nothing was changed. Try again shortly."
            return None
        finally:
            self.billing_busy = False

    @rx.event
    async def open_portal(self):  # type: ignore[no-untyped-def]
        self.problem = ""
        url = await self._billing_call(billing.customer_portal)
        return rx.redirect(url) if url else None

    async def _change_plan(self, action, done: str, **fields):  # type: ignore[no-untyped-def]
        self.problem = ""
        self.message = ""
        status = await self._billing_call(action, clock=runtime.clock(), **fields)
        if status is not None:
            self._show_plan(status)
            self.message = done

    @rx.event
    async def switch_plan(self, plan: str):  # type: ignore[no-untyped-def]
        if plan not in (Plan.basic.value, Plan.standard.value):
            self.problem = "There is no such plan."
            return
        await self._change_plan(
            billing.switch_plan,
            f"You are now on the {plan.capitalize()} plan. The price difference is settled on "
            "your next invoice.",
            plan=Plan(plan),
        )

    @rx.event
    async def cancel_plan(self):  # type: ignore[no-untyped-def]
        await self._change_plan(
            billing.cancel_plan, "Your plan is cancelled and ends with this period.", cancel=True
        )

    @rx.event
    async def resume_plan(self):  # type: ignore[no-untyped-def]
        await self._change_plan(
            billing.cancel_plan, "Your plan continues: it renews as before.", cancel=False
        )

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        self.key_shown = False
        self.message = DONE.get(str(self.router.url.query_parameters.get("done", "")), "")
        self.problem = ""
        if await self.current_account() is None:
            return rx.redirect(routes.sign_in_url(routes.ACCOUNT))
        await self._load()
        return None

    @rx.event
    async def show_history_page(self, page: int):  # type: ignore[no-untyped-def]
        self.history_page = max(1, min(int(page), self.history_pages))
        await self._load()

    @rx.event
    async def create_key(self, form: dict):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.sign_in_url(routes.ACCOUNT))
        name = str(form.get("name", "")).strip()
        try:
            raw, _prefix = await asyncio.to_thread(
                accounts.create_api_key,
                db=runtime.db(),
                clock=runtime.clock(),
                account_id=account.id,
                name=name,
            )
        except ApiKeyError as refused:
            self.problem = str(refused)
            return None
        self.key_shown = True
        self.problem = ""
        await self._load()
        return rx.set_value(NEW_KEY_FIELD, raw)

    @rx.event
    async def revoke_key(self, key_id: str):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.sign_in_url(routes.ACCOUNT))
        try:
            await asyncio.to_thread(
                accounts.revoke_api_key,
                db=runtime.db(),
                clock=runtime.clock(),
                account_id=account.id,
                key_id=int(key_id),
            )
        except (ApiKeyError, ValueError) as refused:
            self.problem = str(refused)
        await self._load()
        return None

    @rx.event
    async def change_password(self, form: dict):  # type: ignore[no-untyped-def]
        if await self.current_account() is None:
            return rx.redirect(routes.sign_in_url(routes.ACCOUNT))
        if str(form.get("new", "")) != str(form.get("repeat", form.get("new", ""))):
            self.problem = "The two new passwords differ."
            return None
        try:
            await runtime.password_work(
                accounts.change_password,
                db=runtime.db(),
                clock=runtime.clock(),
                ref=self._session_ref,
                current=str(form.get("current", "")),
                new=str(form.get("new", "")),
                address=self._client_address(),
            )
        except AuthError as refused:
            self.problem = str(refused)
            self.message = ""
            return None
        self.problem = ""
        self.message = "Password changed. Other browsers were signed out."
        return None

    @rx.event
    async def delete_account(self, form: dict):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.SIGN_IN)
        if str(form.get("confirm_email", "")).strip().lower() != account.email:
            self.problem = "Type your email address to confirm deleting the account."
            return None
        try:
            account_id = await runtime.password_work(
                accounts.confirm_owner,
                db=runtime.db(),
                clock=runtime.clock(),
                ref=self._session_ref,
                password=str(form.get("password", "")),
                address=self._client_address(),
            )
        except AuthError as refused:
            self.problem = str(refused)
            return None
        # Stop charging the card first: a deleted account must never be billed again.
        try:
            await asyncio.to_thread(
                billing.end_subscriptions_now,
                db=runtime.db(),
                clock=runtime.clock(),
                settings=runtime.settings(),
                client=runtime.stripe_client(),
                account_id=account_id,
            )
        except (BillingError, stripe.StripeError):
            self.problem = (
                "Your plan could not be cancelled at Stripe, so the account was not deleted. "
                "Try again in a minute."
            )
            return None
        await asyncio.to_thread(
            accounts.delete_account,
            db=runtime.db(),
            clock=runtime.clock(),
            settings=runtime.settings(),
            account_id=account_id,
        )
        # Nothing of the account stays in this tab's state (nor in its pickle on disk).
        await reset_page_states(self._get_root_state())
        return rx.redirect(routes.HOME)
