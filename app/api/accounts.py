"""Password sign-in, sign-up, sign-out, confirmation and reset: plain HTML form posts.

Only an HTTP response can set or clear an HttpOnly cookie, so these are Starlette routes, not
Reflex events. Each answers with a redirect (303) back to a page: on success to where the
person was going, on failure to the form with `?error=<code>` (the page shows the sentence for
the code: nothing from the address bar is shown as text). A form post that another site made
the browser send is refused (403).

    POST /auth/signin   email, password, next        -> next, or /signin?error=...
    POST /auth/signup   email, password, confirm, next -> /signup?sent=1, or ?error=...
    POST /auth/signout                                -> /
    POST /auth/signout-everywhere                     -> /signin
    POST /auth/forgot   email                         -> /forgot?sent=1
    POST /auth/reset    token, password, confirm      -> /account, or /reset?...&error=...
    POST /auth/verify   token                         -> next, or /signin?error=link
    POST /auth/resend   email                         -> /signin?sent=1

The pages mailed links open (GET /verify, GET /reset) are plain HTML served here too, not
Reflex pages: Reflex sends the page's address with every event and keeps it in state, and
these addresses carry a one-time token. They only show a form, so a mail scanner that
fetches the link spends nothing.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app import routes
from app.api.client import client_address, same_site_post
from app.api.sessions import clear_session_cookie, set_session_cookie
from app.runtime import password_work
from app.services.clock import Clock
from app.services.identity.accounts import MIN_PASSWORD_LENGTH
from app.services.identity.auth import AuthError, LinkInvalid, message_for
from app.services.mail import Outbox
from app.settings import Settings
from app.usecases import accounts

log = logging.getLogger("cutout.accounts")

MAX_FORM_BYTES = 16 * 1024  # an email, two passwords (at most 1024 characters) and a path
NO_STORE = {"Cache-Control": "no-store"}
# The link pages' addresses hold a token: never cached. (Referrer-Policy stays same-origin, as
# everywhere: "no-referrer" would make the browser send `Origin: null` with the form post.)
LINK_PAGE_HEADERS = {"Cache-Control": "no-store"}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Cutout</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 2rem auto;
  padding: 0 1rem; color: #1c1c1f; }}
label {{ display: block; font-weight: 500; margin: 1rem 0 0.25rem; }}
input {{ box-sizing: border-box; width: 100%; font-size: 1rem; padding: 0.7rem;
  border: 1px solid #bbb; border-radius: 0.5rem; }}
button {{ width: 100%; margin-top: 1.25rem; font-size: 1rem; padding: 0.8rem;
  border: 0; border-radius: 0.5rem; background: #6e56cf; color: white; }}
[role=alert] {{ background: #ffefef; color: #9b1c1c; padding: 0.75rem; border-radius: 0.5rem; }}
</style></head>
<body><h1>{title}</h1>{body}</body></html>"""

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


def refused(page: str, error: AuthError, **keep: str | None) -> RedirectResponse:
    """Back to the form, naming the failure by its code (and a wait, when there is one)."""
    wait = getattr(error, "retry_after_seconds", None)
    return redirect(routes.with_query(page, error=error.code, wait=wait, **keep))


async def read_form(request: Request) -> dict[str, str] | None:
    """The posted fields (first value of each), or None when the body is too large to be a
    form of ours. Read by hand so a huge body is never buffered whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def link_page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body), headers=LINK_PAGE_HEADERS)


async def verify_page(request: Request) -> Response:
    token = html.escape(request.query_params.get("token", ""), quote=True)
    return link_page(
        "Confirm your email",
        "<p>One tap confirms this address for your Cutout account; your free trial credits "
        "are added then.</p>"
        f'<form method="post" action="{routes.VERIFY_POST}">'
        f'<input type="hidden" name="token" value="{token}">'
        "<button type=submit>Confirm email</button></form>",
    )


async def reset_page(request: Request) -> Response:
    token = html.escape(request.query_params.get("token", ""), quote=True)
    code = request.query_params.get("error", "")
    alert = f'<p role="alert">{html.escape(message_for(code))}</p>' if code else ""
    return link_page(
        "Choose a new password",
        f"{alert}<p>Every browser signed in to your account is signed out when you do.</p>"
        f'<form method="post" action="{routes.RESET_POST}">'
        f'<input type="hidden" name="token" value="{token}">'
        '<label for="password">New password</label>'
        f'<input id="password" name="password" type="password" required '
        f'minlength="{MIN_PASSWORD_LENGTH}" autocomplete="new-password">'
        '<label for="confirm">Repeat new password</label>'
        f'<input id="confirm" name="confirm" type="password" required '
        f'minlength="{MIN_PASSWORD_LENGTH}" autocomplete="new-password">'
        "<button type=submit>Set the new password</button></form>",
    )


def account_routes(
    *,
    db: Callable[[], Engine],
    clock: Callable[[], Clock],
    settings: Callable[[], Settings],
    outbox: Callable[[], Outbox],
) -> list[Route]:
    """The routes, reading engine, clock, settings and outbox per request (app.runtime)."""

    def form_post(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not same_site_post(request, settings().public_url):
                return PlainTextResponse(
                    "This form was sent from another site, so it was refused.", status_code=403
                )
            fields = await read_form(request)
            if fields is None:
                return PlainTextResponse("That form is far too large.", status_code=413)
            return await handler(request, fields)

        return endpoint

    def address(request: Request) -> str:
        return client_address(request, settings().trusted_proxy_hops)

    def agent(request: Request) -> str:
        return request.headers.get("user-agent", "")

    async def sign_in(request: Request, form: dict[str, str]) -> Response:
        next_path = routes.safe_next(form.get("next"))
        try:
            token, _summary = await password_work(
                accounts.sign_in,
                db=db(),
                clock=clock(),
                settings=settings(),
                email=form.get("email", ""),
                password=form.get("password", ""),
                address=address(request),
                user_agent=agent(request),
            )
        except AuthError as failed:
            return refused(routes.SIGN_IN, failed, next=next_path)
        response = redirect(next_path)
        set_session_cookie(response, token, settings())
        return response

    async def sign_up(request: Request, form: dict[str, str]) -> Response:
        next_path = routes.safe_next(form.get("next"))
        try:
            await password_work(
                accounts.sign_up,
                db=db(),
                clock=clock(),
                settings=settings(),
                outbox=outbox(),
                email=form.get("email", ""),
                password=form.get("password", ""),
                confirm=form.get("confirm", ""),
                address=address(request),
                next_path=next_path,
            )
        except AuthError as failed:
            return refused(routes.SIGN_UP, failed, next=next_path)
        return redirect(routes.with_query(routes.SIGN_UP, sent="1", next=next_path))

    async def sign_out(request: Request, _form: dict[str, str]) -> Response:
        token = request.cookies.get(routes.SESSION_COOKIE, "")
        if token:
            await asyncio.to_thread(accounts.sign_out, db=db(), clock=clock(), token=token)
        response = redirect(routes.HOME)
        clear_session_cookie(response, settings())
        return response

    async def sign_out_everywhere(request: Request, _form: dict[str, str]) -> Response:
        token = request.cookies.get(routes.SESSION_COOKIE, "")
        account_id = await asyncio.to_thread(
            accounts.account_id_for_token, db=db(), clock=clock(), token=token
        )
        if account_id is not None:
            await asyncio.to_thread(
                accounts.sign_out_everywhere, db=db(), clock=clock(), account_id=account_id
            )
        response = redirect(routes.SIGN_IN)
        clear_session_cookie(response, settings())
        return response

    async def forgot(request: Request, form: dict[str, str]) -> Response:
        try:
            await asyncio.to_thread(
                accounts.request_password_reset,
                db=db(),
                clock=clock(),
                settings=settings(),
                outbox=outbox(),
                email=form.get("email", ""),
                address=address(request),
            )
        except AuthError as failed:
            return refused(routes.FORGOT, failed)
        return redirect(routes.with_query(routes.FORGOT, sent="1"))

    async def reset(request: Request, form: dict[str, str]) -> Response:
        token = form.get("token", "")
        try:
            session_token = await password_work(
                accounts.reset_password,
                db=db(),
                clock=clock(),
                settings=settings(),
                token=token,
                password=form.get("password", ""),
                confirm=form.get("confirm", ""),
                user_agent=agent(request),
            )
        except LinkInvalid as failed:
            return refused(routes.FORGOT, failed)
        except AuthError as failed:
            return refused(routes.RESET, failed, token=token)
        response = redirect(routes.with_query(routes.ACCOUNT, done="reset"))
        set_session_cookie(response, session_token, settings())
        return response

    async def verify(request: Request, form: dict[str, str]) -> Response:
        try:
            session_token, next_path = await asyncio.to_thread(
                accounts.confirm_email,
                db=db(),
                clock=clock(),
                settings=settings(),
                token=form.get("token", ""),
                user_agent=agent(request),
            )
        except AuthError as failed:
            return refused(routes.SIGN_IN, failed)
        response = redirect(routes.safe_next(next_path))
        set_session_cookie(response, session_token, settings())
        return response

    async def resend(request: Request, form: dict[str, str]) -> Response:
        try:
            await asyncio.to_thread(
                accounts.resend_confirmation,
                db=db(),
                clock=clock(),
                settings=settings(),
                outbox=outbox(),
                email=form.get("email", ""),
                address=address(request),
            )
        except AuthError as failed:
            return refused(routes.SIGN_IN, failed)
        return redirect(routes.with_query(routes.SIGN_IN, sent="1"))

    posts: dict[str, Handler] = {
        routes.SIGN_IN_POST: sign_in,
        routes.SIGN_UP_POST: sign_up,
        routes.SIGN_OUT_POST: sign_out,
        routes.SIGN_OUT_EVERYWHERE_POST: sign_out_everywhere,
        routes.FORGOT_POST: forgot,
        routes.RESET_POST: reset,
        routes.VERIFY_POST: verify,
        routes.RESEND_POST: resend,
    }
    return [
        Route(routes.VERIFY, verify_page, methods=["GET"]),
        Route(routes.RESET, reset_page, methods=["GET"]),
        *[Route(path, form_post(handler), methods=["POST"]) for path, handler in posts.items()],
    ]
