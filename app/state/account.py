"""Account page state: wallets, lots, history, recent jobs, API keys, password, deletion.

A new API key is shown once and never stored here: it goes to the browser as an event's
payload (`rx.set_value` into a read-only field), so no state pickle ever holds it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import reflex as rx

from app import routes, runtime
from app.services.billing.pricing import format_credits
from app.services.identity.api_keys import ApiKeyError
from app.services.identity.auth import AuthError
from app.services.jobs.storage import JobFile
from app.state.auth import AuthState
from app.state.session_guard import reset_page_states
from app.usecases import accounts

NEW_KEY_FIELD = "new-api-key"
DONE = {"reset": "Your new password is set. Every other browser was signed out."}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


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
        self.wallets = [
            {
                "name": wallet.value,
                "available": format_credits(b.available),
                "reserved": format_credits(b.reserved),
            }
            for wallet, b in board.wallets.items()
        ]
        seen: dict[int, dict[str, str]] = {}
        for balance in board.wallets.values():
            for lot in balance.lots:
                seen[lot.id] = {
                    "source": lot.source.value.replace("_", " "),
                    "scope": lot.scope.value,
                    "issued": lot.issued_at.strftime("%Y-%m-%d"),
                    "expires": lot.expires_at.strftime("%Y-%m-%d"),
                    "expires_sort": lot.expires_at.isoformat(),
                    "remaining": format_credits(lot.remaining),
                }
        self.lots = sorted(seen.values(), key=lambda row: row["expires_sort"])
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
            await asyncio.to_thread(
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
            await asyncio.to_thread(
                accounts.close_account,
                db=runtime.db(),
                clock=runtime.clock(),
                settings=runtime.settings(),
                ref=self._session_ref,
                password=str(form.get("password", "")),
                address=self._client_address(),
            )
        except AuthError as refused:
            self.problem = str(refused)
            return None
        # Nothing of the account stays in this tab's state (nor in its pickle on disk).
        await reset_page_states(self._get_root_state())
        return rx.redirect(routes.HOME)
