"""Signing in through Google, GitHub or any OpenID Connect provider (authlib, PKCE, state, nonce).

The flow is split so the HTTP layer stays thin: `start_sign_in` gives the provider URL and a
sealed cookie value holding state, nonce, PKCE verifier and the return path; `finish_sign_in`
checks all of them and returns a verified login; `open_session_for` turns that login into an
account (created with its trial when new) and a session token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError
from sqlmodel import Session

from app.routes import ACCOUNT, oauth_callback_path, safe_next
from app.services.clock import Clock
from app.services.identity import accounts, auth

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_API_URL = "https://api.github.com/"
# Identities from GitHub are stored under this name; OIDC identities under their issuer URL.
GITHUB_PROVIDER_ID = "github"


@dataclass(frozen=True)
class Provider:
    key: str  # the path segment in /auth/{key}/login
    label: str  # what the sign-in button says
    kind: Literal["oidc", "github"]
    client_id: str
    client_secret: str = field(repr=False)
    discovery_url: str = ""


@dataclass(frozen=True)
class OAuthConfig:
    """Everything the OAuth flow needs from settings. Providers without a client id are off."""

    public_url: str
    session_secret: str = field(repr=False)
    google_client_id: str = ""
    google_client_secret: str = field(default="", repr=False)
    github_client_id: str = ""
    github_client_secret: str = field(default="", repr=False)
    oidc_name: str = ""
    oidc_discovery_url: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    state_max_age: timedelta = timedelta(minutes=10)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.lower().startswith("https://")

    def redirect_uri(self, key: str) -> str:
        return self.public_url.rstrip("/") + oauth_callback_path(key)

    def providers(self) -> dict[str, Provider]:
        found: list[Provider] = []
        if self.google_client_id and self.google_client_secret:
            found.append(
                Provider(
                    "google",
                    "Google",
                    "oidc",
                    self.google_client_id,
                    self.google_client_secret,
                    GOOGLE_DISCOVERY_URL,
                )
            )
        if self.github_client_id and self.github_client_secret:
            found.append(
                Provider(
                    "github", "GitHub", "github", self.github_client_id, self.github_client_secret
                )
            )
        if self.oidc_discovery_url and self.oidc_client_id:
            found.append(
                Provider(
                    "oidc",
                    self.oidc_name or "Single sign-on",
                    "oidc",
                    self.oidc_client_id,
                    self.oidc_client_secret,
                    self.oidc_discovery_url,
                )
            )
        # Without a secret to seal the state cookie, no flow could be finished safely.
        return {p.key: p for p in found} if self.session_secret else {}


def configured_providers(config: OAuthConfig) -> list[tuple[str, str]]:
    """(key, label) of each provider that can be used, for the sign-in page's buttons."""
    return [(p.key, p.label) for p in config.providers().values()]


class OAuthFailed(auth.AuthError):
    """The sign-in did not happen; `status` is the HTTP status the callback answers with."""

    status = 400
    reason = ""  # for the operator's log: error class names only, never token contents


class UnknownProvider(OAuthFailed):
    status = 404

    def __init__(self) -> None:
        super().__init__("This sign-in method is not available.")


class StateMismatch(OAuthFailed):
    def __init__(self) -> None:
        super().__init__(
            "This sign-in response does not belong to a sign-in started in this browser, "
            "or it took too long. Nothing was changed; please start again."
        )


class ProviderDenied(OAuthFailed):
    def __init__(self, label: str) -> None:
        super().__init__(f"Sign-in at {label} was cancelled or refused. Nothing was changed.")


class IdentityRejected(OAuthFailed):
    def __init__(self, label: str, reason: str = "") -> None:
        self.reason = reason
        super().__init__(
            f"The identity {label} sent could not be verified, so it was refused. "
            "Please start again."
        )


class EmailNotVerified(OAuthFailed):
    def __init__(self, label: str) -> None:
        super().__init__(
            f"{label} did not confirm a verified email address for you. Verify your email "
            f"there, or sign up with email and password."
        )


class ProviderUnavailable(OAuthFailed):
    status = 502

    def __init__(self, label: str) -> None:
        super().__init__(f"{label} could not be reached. Please try again in a moment.")


@dataclass(frozen=True)
class PendingSignIn:
    """What the browser carries between leaving for the provider and coming back."""

    provider: str
    state: str
    nonce: str | None
    code_verifier: str
    next_path: str
    issued_at: float  # seconds since the epoch, from the injected clock


@dataclass(frozen=True)
class VerifiedLogin:
    provider_id: str  # issuer URL, or "github"
    subject: str
    email: str
    next_path: str


@dataclass(frozen=True)
class OAuthSignIn:
    token: str  # the new session's raw token, for the cutout_session cookie
    account_id: int
    created: bool
    next_path: str


def seal(pending: PendingSignIn, secret: str) -> str:
    """Sign (not encrypt) the pending sign-in: the browser may read it but not change it."""
    payload = _b64(json.dumps(asdict(pending), separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(secret, payload))}"


def unseal(value: str, *, secret: str, clock: Clock, max_age: timedelta) -> PendingSignIn:
    payload, _, signature = value.partition(".")
    try:
        if not hmac.compare_digest(_unb64(signature), _mac(secret, payload)):
            raise StateMismatch()
        pending = PendingSignIn(**json.loads(_unb64(payload)))
    except (ValueError, TypeError) as broken:
        raise StateMismatch() from broken
    age = clock.now().timestamp() - pending.issued_at
    if not 0 <= age <= max_age.total_seconds():
        raise StateMismatch()
    return pending


async def start_sign_in(
    *, config: OAuthConfig, provider_key: str, next_path: str | None, clock: Clock
) -> tuple[str, str]:
    """The provider's authorization URL and the sealed cookie value to set with it."""
    provider = _provider(config, provider_key)
    client = _client(provider)
    try:
        # authlib adds state, the PKCE S256 challenge, and (for OIDC) a nonce.
        request = await client.create_authorization_url(config.redirect_uri(provider.key))
    except (httpx.HTTPError, ValueError) as unreachable:
        raise ProviderUnavailable(provider.label) from unreachable
    pending = PendingSignIn(
        provider=provider.key,
        state=request["state"],
        nonce=request.get("nonce"),
        code_verifier=request["code_verifier"],
        next_path=safe_next(next_path, ACCOUNT),
        issued_at=clock.now().timestamp(),
    )
    return request["url"], seal(pending, config.session_secret)


async def finish_sign_in(
    *,
    config: OAuthConfig,
    provider_key: str,
    sealed: str | None,
    params: dict[str, str],
    clock: Clock,
) -> VerifiedLogin:
    """Check the provider's answer against the pending sign-in; a verified login or OAuthFailed."""
    provider = _provider(config, provider_key)
    if not sealed:
        raise StateMismatch()
    pending = unseal(
        sealed, secret=config.session_secret, clock=clock, max_age=config.state_max_age
    )
    returned_state = params.get("state", "")
    if pending.provider != provider.key or not hmac.compare_digest(
        pending.state.encode(), returned_state.encode()
    ):
        raise StateMismatch()
    if params.get("error") or not params.get("code"):
        raise ProviderDenied(provider.label)
    client = _client(provider)
    try:
        token = await client.fetch_access_token(
            redirect_uri=config.redirect_uri(provider.key),
            code=params["code"],
            code_verifier=pending.code_verifier,
        )
        if provider.kind == "github":
            subject, email = await _github_identity(client, token, provider.label)
            provider_id = GITHUB_PROVIDER_ID
        else:
            subject, email, provider_id = await _oidc_identity(client, token, pending, provider)
    except OAuthFailed:
        raise
    except httpx.HTTPError as unreachable:
        raise ProviderUnavailable(provider.label) from unreachable
    except (AuthlibBaseError, JoseError, KeyError, ValueError) as invalid:
        # Bad signature, wrong issuer or audience, replayed nonce, refused code: all refused.
        raise IdentityRejected(provider.label, reason=_reason(invalid)) from invalid
    return VerifiedLogin(
        provider_id=provider_id, subject=subject, email=email, next_path=pending.next_path
    )


def open_session_for(
    *,
    session: Session,
    clock: Clock,
    login: VerifiedLogin,
    user_agent: str | None,
    lifetime: timedelta,
    trial_credits: int,
    lot_valid_days: int,
) -> OAuthSignIn:
    """Sign the verified login into its account (creating it with its trial when new)."""
    try:
        account, created = auth.find_or_create_oauth_account(
            session=session,
            clock=clock,
            provider=login.provider_id,
            subject=login.subject,
            email=login.email,
            trial_credits=trial_credits,
            lot_valid_days=lot_valid_days,
        )
    except accounts.AccountError as refused:
        # e.g. a provider's address Cutout cannot accept; the person can still sign up by email.
        raise OAuthFailed(f"Cannot sign in with that account: {refused}.") from refused
    assert account.id is not None
    token = auth.create_session(
        session=session,
        clock=clock,
        account_id=account.id,
        user_agent=user_agent,
        lifetime=lifetime,
    )
    return OAuthSignIn(
        token=token, account_id=account.id, created=created, next_path=login.next_path
    )


async def _oidc_identity(
    client: StarletteOAuth2App, token: dict[str, Any], pending: PendingSignIn, provider: Provider
) -> tuple[str, str, str]:
    if not pending.nonce or "id_token" not in token:
        raise IdentityRejected(provider.label)
    # Checks the signature against the provider's keys, iss against discovery, aud against our
    # client id, the nonce we sealed, expiry, and at_hash against the access token.
    claims = await client.parse_id_token(token, nonce=pending.nonce)
    metadata = await client.load_server_metadata()
    issuer = str(claims["iss"])
    # authlib skips the iss check when discovery names no issuer; an identity needs one.
    if issuer != metadata.get("issuer"):
        raise IdentityRejected(provider.label)
    if "email" not in claims:
        # Some providers keep the email out of the id_token and hand it out at userinfo.
        info = await client.userinfo(token=token)
        if info.get("sub") != claims["sub"]:
            raise IdentityRejected(provider.label)
        claims = {**info, "sub": claims["sub"]}
    email = claims.get("email")
    if not email or claims.get("email_verified") not in (True, "true"):
        raise EmailNotVerified(provider.label)
    return str(claims["sub"]), str(email), issuer


async def _github_identity(
    client: StarletteOAuth2App, token: dict[str, Any], label: str
) -> tuple[str, str]:
    user = await client.get("user", token=token)
    user.raise_for_status()
    emails = await client.get("user/emails", token=token)
    emails.raise_for_status()
    primary = [
        entry["email"]
        for entry in emails.json()
        if entry.get("primary") and entry.get("verified") and entry.get("email")
    ]
    if not primary:
        raise EmailNotVerified(label)
    # GitHub's numeric id is stable; the login name can be changed and reused by someone else.
    return str(user.json()["id"]), str(primary[0])


def _reason(error: Exception) -> str:
    claim = getattr(error, "claim", None)  # joserfc's claim errors name the claim, not its value
    return f"{type(error).__name__}({claim})" if claim else type(error).__name__


def _provider(config: OAuthConfig, key: str) -> Provider:
    provider = config.providers().get(key)
    if provider is None:
        raise UnknownProvider()
    return provider


@lru_cache(maxsize=16)
def _client(provider: Provider) -> StarletteOAuth2App:
    """One authlib client per provider, so discovery and keys are fetched once per process."""
    registry = OAuth()
    common: dict[str, Any] = {
        "name": provider.key,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
    }
    if provider.kind == "github":
        registry.register(
            **common,
            authorize_url=GITHUB_AUTHORIZE_URL,
            access_token_url=GITHUB_TOKEN_URL,
            api_base_url=GITHUB_API_URL,
            client_kwargs={"scope": "read:user user:email", "code_challenge_method": "S256"},
        )
    else:
        registry.register(
            **common,
            server_metadata_url=provider.discovery_url,
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
        )
    client = registry.create_client(provider.key)
    assert isinstance(client, StarletteOAuth2App)
    return client


def _mac(secret: str, payload: str) -> bytes:
    # A key of its own for this purpose, so the same secret can sign other things safely.
    key = hashlib.sha256(b"cutout oauth state\x00" + secret.encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
