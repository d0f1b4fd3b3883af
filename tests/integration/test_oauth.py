"""OpenID Connect sign-in end to end over HTTP, against oidc-provider-mock on 127.0.0.1.

The provider mock runs in a thread; Cutout's OAuth routes are served by uvicorn on a real port
against a migrated SQLite database. httpx plays the browser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import pytest
import uvicorn
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import Engine
from sqlmodel import select
from starlette.applications import Starlette

from app.api.oauth import PENDING_COOKIE, oauth_routes
from app.db import writing
from app.models.accounts import Account
from app.models.auth import LinkPurpose, OAuthIdentity, UserSession
from app.models.ledger import CreditLot, LotSource
from app.routes import SESSION_COOKIE, safe_next
from app.services.billing.pricing import MILLI
from app.services.clock import FrozenClock
from app.services.identity import auth
from app.services.identity.oauth import OAuthConfig, configured_providers, seal, unseal
from app.settings import Settings
from app.usecases.accounts import account_id_for_token, confirm_email
from app.usecases.accounts import sign_in as password_sign_in
from tests.conftest import free_port, new_account

SECRET = "test-session-secret-not-for-production"


@dataclass
class Stack:
    provider_url: str
    app_url: str
    config: OAuthConfig
    db: Engine
    clock: FrozenClock
    token_requests: list[dict[str, list[str]]]


@pytest.fixture
def provider_url() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def token_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, list[str]]]:
    """The token requests Cutout's authlib client actually sends, as parsed form bodies.

    The mock does not check PKCE verifiers, so the client side is checked instead.
    """
    seen: list[dict[str, list[str]]] = []
    send = AsyncOAuth2Client.send

    async def recording_send(self: AsyncOAuth2Client, request: httpx.Request, **kwargs):  # type: ignore[no-untyped-def]
        if request.url.path.endswith("/oauth2/token"):
            seen.append(parse_qs(request.content.decode()))
        return await send(self, request, **kwargs)

    monkeypatch.setattr(AsyncOAuth2Client, "send", recording_send)
    return seen


@pytest.fixture
def stack(
    provider_url: str,
    db: Engine,
    clock: FrozenClock,
    token_requests: list[dict[str, list[str]]],
) -> Iterator[Stack]:
    port = free_port()
    config = OAuthConfig(
        public_url=f"http://127.0.0.1:{port}",
        session_secret=SECRET,
        oidc_name="Mock ID",
        oidc_discovery_url=f"{provider_url}/.well-known/openid-configuration",
        oidc_client_id="cutout-test",
        oidc_client_secret="client-secret",
    )
    settings = Settings(trial_credits=10, lot_valid_days=90, session_days=30)
    app = Starlette(
        routes=oauth_routes(
            config=lambda: config, db=lambda: db, clock=lambda: clock, settings=lambda: settings
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Stack(provider_url, config.public_url, config, db, clock, token_requests)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def set_user(stack: Stack, sub: str, **claims: object) -> None:
    response = httpx.put(f"{stack.provider_url}/users/{sub}", json=claims)
    assert response.status_code == 204


def start(browser: httpx.Client, stack: Stack, next_path: str = "/editor") -> str:
    """Click "Sign in with Mock ID"; returns the provider's authorization URL."""
    response = browser.get(f"{stack.app_url}/auth/oidc/login", params={"next": next_path})
    assert response.status_code == 302
    assert PENDING_COOKIE in response.cookies
    location = response.headers["location"]
    assert location.startswith(stack.provider_url)
    return location


def authorize(browser: httpx.Client, authorize_url: str, sub: str) -> str:
    """Fill in the provider's form; returns the callback URL the provider redirects to."""
    form = browser.get(authorize_url)
    assert form.status_code == 200 and 'name="sub"' in form.text
    response = browser.post(authorize_url, data={"sub": sub})
    assert response.status_code == 302, response.text
    return response.headers["location"]


def sign_in(stack: Stack, sub: str) -> httpx.Response:
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), sub)
        return browser.get(callback)


def session_cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION_COOKIE}="):
            cookie.load(header)
    return cookie


def account_for(stack: Stack, token: str) -> int | None:
    return account_id_for_token(db=stack.db, clock=stack.clock, token=token)


def counts(stack: Stack) -> tuple[int, int, int]:
    """(accounts, credit lots, sessions)"""
    with writing(stack.db) as session:
        return (
            len(session.exec(select(Account)).all()),
            len(session.exec(select(CreditLot)).all()),
            len(session.exec(select(UserSession)).all()),
        )


def test_first_sign_in_creates_the_account_with_its_trial_and_the_second_reuses_it(
    stack: Stack,
) -> None:
    set_user(stack, "alice", email="Alice@Example.com", email_verified=True)

    first = sign_in(stack, "alice")

    assert first.status_code == 303
    assert first.headers["location"] == "/editor"
    cookie = session_cookie(first)[SESSION_COOKIE]
    assert cookie["path"] == "/" and cookie["samesite"].lower() == "lax"
    assert int(cookie["max-age"]) == 30 * 24 * 3600
    assert cookie["httponly"] and not cookie["secure"]  # page scripts never see it; http URL
    account_id = account_for(stack, cookie.value)
    assert account_id is not None
    with writing(stack.db) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.email == "alice@example.com"
        assert account.password_hash is None
        lots = session.exec(select(CreditLot)).all()
        assert [(lot.account_id, lot.source, lot.amount) for lot in lots] == [
            (account_id, LotSource.trial, 10 * MILLI)
        ]
        identity = session.exec(select(OAuthIdentity)).one()
        assert (identity.provider, identity.subject) == (stack.provider_url, "alice")

    second = sign_in(stack, "alice")

    assert second.status_code == 303
    second_token = session_cookie(second)[SESSION_COOKIE].value
    assert second_token != cookie.value
    assert account_for(stack, second_token) == account_id
    assert counts(stack) == (1, 1, 2)


def test_a_verified_email_signs_into_the_existing_password_account(stack: Stack) -> None:
    with writing(stack.db) as session:
        existing = new_account(session, stack.clock, "bob@example.com", "bob's password")
        existing_id = existing.id
    set_user(stack, "bob-at-idp", email="bob@example.com", email_verified=True)

    response = sign_in(stack, "bob-at-idp")

    assert response.status_code == 303
    assert account_for(stack, session_cookie(response)[SESSION_COOKIE].value) == existing_id
    assert counts(stack) == (1, 1, 1)


def test_a_provider_sign_in_takes_over_an_unconfirmed_sign_up_for_its_address(
    stack: Stack,
) -> None:
    """Pre-account takeover: Mallory signs up first with Dora's address and his password, never
    confirming it. When Dora signs in through her provider, the account becomes hers and
    Mallory's password, sessions and confirmation link stop working."""
    with writing(stack.db) as session:
        mallory_hash = auth.check_new_password("mallory's password")
        registered = auth.sign_up(
            session=session, clock=stack.clock, email="dora@example.com", password_hash=mallory_hash
        )
        assert registered.outcome == "new"
        dora_id = registered.account.id
        assert dora_id is not None
        mallorys_session = auth.create_session(
            session=session, clock=stack.clock, account_id=dora_id, lifetime=timedelta(days=1)
        )
        mallorys_link = auth.issue_link(
            session=session,
            clock=stack.clock,
            account=registered.account,
            purpose=LinkPurpose.verify,
            lifetime=timedelta(days=1),
        )
    set_user(stack, "dora", email="dora@example.com", email_verified=True)

    response = sign_in(stack, "dora")

    assert response.status_code == 303
    assert account_for(stack, session_cookie(response)[SESSION_COOKIE].value) == dora_id
    assert account_for(stack, mallorys_session) is None
    settings = Settings(trial_credits=10, lot_valid_days=90, session_days=30)
    with pytest.raises(auth.WrongCredentials):
        password_sign_in(
            db=stack.db, clock=stack.clock, settings=settings, email="dora@example.com",
            password="mallory's password", address="192.0.2.1", user_agent="m",
        )  # fmt: skip
    assert mallorys_link is not None
    with pytest.raises(auth.LinkInvalid):
        confirm_email(
            db=stack.db, clock=stack.clock, settings=settings, token=mallorys_link,
            user_agent="m",
        )  # fmt: skip
    with writing(stack.db) as session:
        lots = session.exec(select(CreditLot)).all()
        assert [(lot.account_id, lot.source) for lot in lots] == [(dora_id, LotSource.trial)]


def test_pkce_s256_challenge_is_sent_and_the_matching_verifier_redeems_the_code(
    stack: Stack,
) -> None:
    set_user(stack, "carol", email="carol@example.com", email_verified=True)
    with httpx.Client() as browser:
        authorize_url = start(browser, stack)
        query = parse_qs(urlsplit(authorize_url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == [f"{stack.app_url}/auth/oidc/callback"]
        assert query["state"][0] and query["nonce"][0]
        response = browser.get(authorize(browser, authorize_url, "carol"))
    assert response.status_code == 303
    [token_request] = stack.token_requests
    verifier = token_request["code_verifier"][0]
    assert len(verifier) >= 43
    assert create_s256_code_challenge(verifier) == query["code_challenge"][0]
    # The verifier travels only in the sealed cookie and the token request, never the URL.
    assert verifier not in authorize_url


def test_a_tampered_state_is_refused(stack: Stack) -> None:
    set_user(stack, "dave", email="dave@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), "dave")
        state = parse_qs(urlsplit(callback).query)["state"][0]
        forged = callback.replace(f"state={state}", f"state={state[:-2]}xy")
        response = browser.get(forged)

    assert response.status_code == 400
    assert "does not belong to a sign-in started in this browser" in response.text
    assert SESSION_COOKIE not in response.cookies
    assert stack.token_requests == []  # the code was never even redeemed
    assert counts(stack) == (0, 0, 0)


def test_a_callback_without_the_pending_cookie_is_refused(stack: Stack) -> None:
    """A login CSRF: someone else's callback URL opened in a browser that never started one."""
    set_user(stack, "erin", email="erin@example.com", email_verified=True)
    with httpx.Client() as attacker:
        callback = authorize(attacker, start(attacker, stack), "erin")
    with httpx.Client() as victim:
        response = victim.get(callback)
    assert response.status_code == 400
    assert counts(stack) == (0, 0, 0)


def test_an_edited_pending_cookie_without_the_secret_is_refused(stack: Stack) -> None:
    set_user(stack, "frank", email="frank@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), "frank")
        sealed = browser.cookies[PENDING_COOKIE]
        pending = unseal(
            sealed, secret=SECRET, clock=stack.clock, max_age=stack.config.state_max_age
        )
        forged = seal(replace(pending, next_path="/somewhere-else"), "a guessed secret")
        browser.cookies.set(PENDING_COOKIE, forged, domain="127.0.0.1", path="/auth/")
        response = browser.get(callback)
    assert response.status_code == 400
    assert counts(stack) == (0, 0, 0)


def test_a_tampered_nonce_is_refused(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    set_user(stack, "grace", email="grace@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), "grace")
        pending = unseal(
            browser.cookies[PENDING_COOKIE],
            secret=SECRET,
            clock=stack.clock,
            max_age=stack.config.state_max_age,
        )
        # Correctly signed, state intact: only the nonce differs from the id_token's.
        forged = seal(replace(pending, nonce="not-the-nonce-sent"), SECRET)
        browser.cookies.set(PENDING_COOKIE, forged, domain="127.0.0.1", path="/auth/")
        response = browser.get(callback)

    assert response.status_code == 400
    assert "could not be verified" in response.text
    assert len(stack.token_requests) == 1  # it got as far as the id_token check
    assert "IdentityRejected InvalidClaimError(nonce)" in caplog.text
    assert counts(stack) == (0, 0, 0)


def test_a_stale_sign_in_is_refused(stack: Stack) -> None:
    set_user(stack, "heidi", email="heidi@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), "heidi")
        stack.clock.advance(stack.config.state_max_age)
        stack.clock.advance(stack.config.state_max_age / 10)
        response = browser.get(callback)
    assert response.status_code == 400
    assert counts(stack) == (0, 0, 0)


@pytest.mark.parametrize("claims", [{"email_verified": False}, {"email_verified": None}])
def test_an_unverified_email_is_refused(stack: Stack, claims: dict[str, object]) -> None:
    set_user(stack, "ivan", email="ivan@example.com", **claims)
    response = sign_in(stack, "ivan")
    assert response.status_code == 400
    assert "verified email" in response.text
    assert counts(stack) == (0, 0, 0)


def test_a_replayed_callback_is_refused(stack: Stack) -> None:
    set_user(stack, "judy", email="judy@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack), "judy")
        assert browser.get(callback).status_code == 303
        replayed = browser.get(callback)  # the pending cookie was cleared by the first
    assert replayed.status_code == 400
    assert counts(stack) == (1, 1, 1)


def test_next_cannot_leave_the_site(stack: Stack) -> None:
    set_user(stack, "kim", email="kim@example.com", email_verified=True)
    with httpx.Client() as browser:
        callback = authorize(browser, start(browser, stack, "https://evil.example/x"), "kim")
        response = browser.get(callback)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"


def test_an_unconfigured_provider_is_not_found(stack: Stack) -> None:
    response = httpx.get(f"{stack.app_url}/auth/github/login", follow_redirects=False)
    assert response.status_code == 404
    assert "not available" in response.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "/account"),
        ("/editor?x=1", "/editor?x=1"),
        ("https://evil.example/", "/account"),
        ("//evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
        ("/auth/oidc/login", "/account"),
        ("/ok\r\nSet-Cookie: x=1", "/account"),
    ],
)
def test_safe_next_keeps_only_same_site_paths(raw: str | None, expected: str) -> None:
    assert safe_next(raw, "/account") == expected


def test_only_configured_providers_are_listed() -> None:
    assert (
        configured_providers(OAuthConfig(public_url="https://cutout.example", session_secret="s"))
        == []
    )
    config = OAuthConfig(
        public_url="https://cutout.example",
        session_secret="s",
        github_client_id="gh",
        github_client_secret="gh-secret",
        oidc_name="Acme SSO",
        oidc_discovery_url="https://sso.acme.example/.well-known/openid-configuration",
        oidc_client_id="cutout",
    )
    assert configured_providers(config) == [("github", "GitHub"), ("oidc", "Acme SSO")]
    assert config.secure_cookies
    assert "gh-secret" not in repr(config)
    # Without a secret to seal the state cookie, nothing can be offered.
    assert configured_providers(replace(config, session_secret="")) == []
