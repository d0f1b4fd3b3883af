"""The signed-in person, as the server sees it on every event; no token is ever kept here.

Signing in, up and out are HTML form posts to `app/api/accounts.py` (only an HTTP response can
set the HttpOnly cookie). `SessionGuard` (app/state/session_guard.py) puts the current event's
session reference in `_session_ref` before any handler runs, and resets every page state when
the person behind the tab changes; handlers ask `current_account()`, which checks that
reference against the database.
"""

from __future__ import annotations

import asyncio

import reflex as rx

from app import routes, runtime
from app.services.billing.pricing import format_credits
from app.services.identity.auth import message_for
from app.services.identity.oauth import configured_providers
from app.usecases import accounts
from app.usecases.accounts import AccountSummary


def expiry_notice(summary: AccountSummary) -> str:
    """'4.5 credits expire on 2026-12-01 unless used.' for the soonest lot, or ''."""
    if not summary.expiring:
        return ""
    first = summary.expiring[0]
    more = len(summary.expiring) - 1
    tail = f" (and {more} more batch{'es' if more > 1 else ''} soon after)" if more else ""
    return (
        f"{format_credits(first.credits_left)} credits expire on "
        f"{first.expires_at.strftime('%Y-%m-%d')} unless used{tail}."
    )


class AuthState(rx.State):
    account_email: str = ""
    plan: str = ""
    web_credits: str = ""
    api_credits: str = ""
    expiry_notice: str = ""  # credits about to expire, shown on every page
    # False until the server has answered who this is: pages show a neutral skeleton, never
    # the signed-out page to a signed-in person on a slow network.
    session_known: bool = False
    # The session this event came with, as its database reference (see app/web_session.py).
    _session_ref: str = ""
    # Whose data the page states hold: "" or the account id. Kept by SessionGuard.
    _owner: str = ""
    _account_id: int = 0

    @rx.var
    def signed_in(self) -> bool:
        return self.account_email != ""

    @rx.var
    def next_path(self) -> str:
        return routes.safe_next(self.router.url.query_parameters.get("next"))

    @rx.var
    def oauth_providers(self) -> list[list[str]]:
        return [
            [key, label, routes.oauth_login_url(key, self.next_path)]
            for key, label in configured_providers(runtime.oauth_config())
        ]

    @rx.var
    def error_code(self) -> str:
        """The failure a form post came back with (`?error=<code>`), shown by its sentence."""
        return str(self.router.url.query_parameters.get("error", ""))[:20]

    @rx.var
    def auth_error(self) -> str:
        if not self.error_code:
            return ""
        wait = str(self.router.url.query_parameters.get("wait", ""))
        return message_for(self.error_code, int(wait) if wait.isdigit() else 0)

    @rx.var
    def mail_sent(self) -> bool:
        return self.router.url.query_parameters.get("sent") == "1"

    @rx.var
    def mail_configured(self) -> bool:
        """False: links are written to the server log, and the pages say so."""
        return runtime.outbox().configured

    def _apply(self, summary: AccountSummary | None) -> None:
        if summary is None:
            self._account_id = 0
            self.account_email = ""
            self.plan = ""
            self.web_credits = ""
            self.api_credits = ""
            self.expiry_notice = ""
            return
        self._account_id = summary.id
        self.account_email = summary.email
        self.plan = summary.plan
        self.web_credits = format_credits(summary.web_available)
        self.api_credits = format_credits(summary.api_available)
        self.expiry_notice = expiry_notice(summary)

    async def current_account(self) -> AccountSummary | None:
        """Re-check the session on the server; every handler that touches data starts here."""
        summary = await asyncio.to_thread(
            accounts.account_for_ref,
            db=runtime.db(),
            clock=runtime.clock(),
            ref=self._session_ref,
        )
        self._apply(summary)
        self.session_known = True
        return summary

    def _client_address(self) -> str:
        return self.router.session.client_ip or "unknown"

    @rx.event
    async def refresh(self) -> None:
        await self.current_account()

    @rx.event
    async def require_account(self):  # type: ignore[no-untyped-def]
        """on_load for pages that need an account: send signed-out visitors to sign in."""
        if await self.current_account() is None:
            return rx.redirect(routes.sign_in_url(self.router.url.path or routes.HOME))
        return None

    @rx.event
    async def redirect_if_signed_in(self):  # type: ignore[no-untyped-def]
        if await self.current_account() is not None:
            return rx.redirect(self.next_path)
        return None
