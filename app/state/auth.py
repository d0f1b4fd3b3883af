"""The signed-in person: a session token in the browser, everything else checked on the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import reflex as rx

from app import routes, runtime
from app.services.billing.pricing import format_credits
from app.services.identity.accounts import AccountError
from app.services.identity.auth import AuthError
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
    # The raw token lives only in the browser; the server keeps its hash.
    session_token: str = rx.Cookie(
        "", name=routes.SESSION_COOKIE, max_age=400 * 24 * 3600, same_site="lax"
    )
    account_email: str = ""
    plan: str = ""
    web_credits: str = ""
    api_credits: str = ""
    expiry_notice: str = ""  # credits about to expire, shown on every page
    auth_error: str = ""
    auth_busy: bool = False
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
            accounts.account_for_token,
            db=runtime.db(),
            clock=runtime.clock(),
            token=self.session_token,
        )
        self._apply(summary)
        return summary

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
        self.auth_error = ""
        if await self.current_account() is not None:
            return rx.redirect(self.next_path)
        return None

    def _client(self) -> tuple[str, str]:
        headers = self.router.headers
        return self.router.session.client_ip or "unknown", headers.user_agent or ""

    async def _open_session(
        self, opener: Callable[..., tuple[str, AccountSummary]], **fields: str
    ) -> bool:
        """Run a sign-in or sign-up off the event loop; keep its session or say why not."""
        _, agent = self._client()
        try:
            token, summary = await asyncio.to_thread(
                opener,
                db=runtime.db(),
                clock=runtime.clock(),
                settings=runtime.settings(),
                user_agent=agent,
                **fields,
            )
        except (AuthError, AccountError) as refused:
            self.auth_error = str(refused)
            return False
        finally:
            self.auth_busy = False
        self.session_token = token
        self.auth_error = ""
        self._apply(summary)
        return True

    @rx.event
    async def sign_in(self, form: dict):  # type: ignore[no-untyped-def]
        address, _ = self._client()
        self.auth_busy = True
        yield
        if await self._open_session(
            accounts.sign_in,
            email=str(form.get("email", "")),
            password=str(form.get("password", "")),
            address=address,
        ):
            yield rx.redirect(self.next_path)

    @rx.event
    async def sign_up(self, form: dict):  # type: ignore[no-untyped-def]
        password = str(form.get("password", ""))
        if password != str(form.get("confirm", password)):
            self.auth_error = "The two passwords differ."
            return
        self.auth_busy = True
        yield
        if await self._open_session(
            accounts.sign_up, email=str(form.get("email", "")), password=password
        ):
            yield rx.redirect(self.next_path)

    @rx.event
    async def sign_out(self):  # type: ignore[no-untyped-def]
        token = self.session_token
        if token:
            await asyncio.to_thread(
                accounts.sign_out, db=runtime.db(), clock=runtime.clock(), token=token
            )
        self.session_token = ""
        self._apply(None)
        return rx.redirect(routes.HOME)
