"""Account page state: wallets, lots, history, recent jobs, API keys, password, deletion."""

from __future__ import annotations

import asyncio
from datetime import datetime

import reflex as rx

from app import routes, runtime
from app.models.ledger import LotScope, Wallet
from app.services.billing import ledger
from app.services.billing.pricing import format_credits
from app.services.identity.accounts import AccountError
from app.services.identity.api_keys import ApiKeyError
from app.services.identity.auth import AuthError
from app.services.jobs.storage import JobFile
from app.state.auth import AuthState
from app.usecases import accounts


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


SCOPE_LABELS = {LotScope.web: "web", LotScope.api: "API", LotScope.both: "web and API"}


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
    new_key: str = ""
    message: str = ""
    problem: str = ""

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
                "kind": e.kind.value,
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

    @rx.event
    async def on_load(self):  # type: ignore[no-untyped-def]
        self.new_key = ""
        self.message = ""
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
        self.new_key = raw
        self.problem = ""
        await self._load()
        return None

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
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.sign_in_url(routes.ACCOUNT))
        try:
            await asyncio.to_thread(
                accounts.change_password,
                db=runtime.db(),
                clock=runtime.clock(),
                account_id=account.id,
                current=str(form.get("current", "")),
                new=str(form.get("new", "")),
                keep_token=self.session_token,
            )
        except (AuthError, AccountError) as refused:
            self.problem = str(refused)
            return None
        self.problem = ""
        self.message = "Password changed. Other browsers were signed out."
        return None

    @rx.event
    async def sign_out_everywhere(self):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is not None:
            await asyncio.to_thread(
                accounts.sign_out_everywhere,
                db=runtime.db(),
                clock=runtime.clock(),
                account_id=account.id,
            )
        self.session_token = ""
        self._apply(None)
        return rx.redirect(routes.SIGN_IN)

    @rx.event
    async def delete_account(self, form: dict):  # type: ignore[no-untyped-def]
        account = await self.current_account()
        if account is None:
            return rx.redirect(routes.SIGN_IN)
        if str(form.get("confirm_email", "")).strip().lower() != account.email:
            self.problem = "Type your email address to confirm deleting the account."
            return None
        await asyncio.to_thread(
            accounts.delete_account,
            db=runtime.db(),
            clock=runtime.clock(),
            settings=runtime.settings(),
            account_id=account.id,
        )
        self.session_token = ""
        self._apply(None)
        return rx.redirect(routes.HOME)
