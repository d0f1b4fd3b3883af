"""Every path Cutout serves, and the URL builders for them: no path literal lives elsewhere."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

# Pages
HOME = "/"
SIGN_IN = "/signin"
SIGN_UP = "/signup"
ACCOUNT = "/account"
PRICING = "/pricing"
FORGOT = "/forgot"
RESET = "/reset"  # ?token=<mailed>: choose a new password
VERIFY = "/verify"  # ?token=<mailed>: confirm the address
API_PAGE = "/api"  # what the API does, keys, credits, a curl example
BULK = "/bulk"
EDITOR = "/editor"  # /editor/<job id>: the photo editor for one finished cutout

# HTTP routes beside the pages
FILES = "/files"
EDITOR_FILES = "/editor-files"  # a job's editor preview and exports, for its owner only
BULK_ZIP = "/bulk-zip"  # /<batch>: every finished photo of a bulk batch, one ZIP
AUTH = "/auth"
# Form posts that set or clear the HttpOnly session cookie, then redirect back to a page.
SIGN_IN_POST = AUTH + "/signin"
SIGN_UP_POST = AUTH + "/signup"
SIGN_OUT_POST = AUTH + "/signout"
SIGN_OUT_EVERYWHERE_POST = AUTH + "/signout-everywhere"
FORGOT_POST = AUTH + "/forgot"
RESET_POST = AUTH + "/reset"
VERIFY_POST = AUTH + "/verify"
RESEND_POST = AUTH + "/resend"
STRIPE = "/stripe"
STRIPE_WEBHOOK = STRIPE + "/webhook"
# Where Stripe Checkout sends the browser back after paying.
STRIPE_CHECKOUT_RETURN = STRIPE + "/checkout/return"

# The remove.bg-compatible HTTP API: key-only, callable from any origin.
API_BASE = "/v1.0"
API_REMOVEBG = API_BASE + "/removebg"
API_ACCOUNT = API_BASE + "/account"
API_DOCS = "/api/docs"
API_OPENAPI = "/api/openapi.json"
API_DOCS_ASSETS = "/api/docs/assets"

# Anchors
API_PACKS_ANCHOR = "api-packs"

# The query parameter a page reads to say how a purchase went ("complete", "pending", ...).
PURCHASE_PARAM = "purchase"

# The browser's session cookie: a random token whose hash the server keeps. HttpOnly: page
# scripts never see it, and it never enters Reflex state (see app/web_session.py).
SESSION_COOKIE = "cutout_session"
# A signed-out visitor's free preview (its job id), set when the browser fetches the preview:
# after signing up, this browser's new account takes that photo without a second upload.
TRIAL_COOKIE = "cutout_trial"


def sign_in_url(next_path: str | None = None) -> str:
    """The sign-in page, returning to `next_path` afterwards."""
    return f"{SIGN_IN}?next={quote(safe_next(next_path, HOME))}" if next_path else SIGN_IN


def with_query(path: str, **params: str | int | None) -> str:
    """`path?k=v&...` with the parameters that have a value, each quoted."""
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items() if v)
    return f"{path}?{query}" if query else path


def link_url(public_url: str, page: str, token: str) -> str:
    """The absolute address a mail links to (a VERIFY or RESET page with its token)."""
    return public_url.rstrip("/") + with_query(page, token=token)


def file_url(job_id: str, name: str, *, download: bool = False) -> str:
    return f"{FILES}/{job_id}/{name}" + ("?download=1" if download else "")


def editor_url(job_id: str) -> str:
    return f"{EDITOR}/{job_id}"


def editor_file_url(job_id: str, name: str, *, version: int = 0, download: bool = False) -> str:
    """A job's editor file; `version` changes the address whenever the file is redrawn."""
    return with_query(f"{EDITOR_FILES}/{job_id}/{name}", v=version, download=int(download))


def bulk_zip_url(batch_id: str) -> str:
    return f"{BULK_ZIP}/{batch_id}"


def oauth_login_url(provider: str, next_path: str) -> str:
    return f"{AUTH}/{provider}/login?next={quote(next_path)}"


def oauth_callback_path(provider: str) -> str:
    return f"{AUTH}/{provider}/callback"


def checkout_return_url(public_url: str) -> str:
    """Stripe fills in {CHECKOUT_SESSION_ID} itself."""
    return f"{public_url.rstrip('/')}{STRIPE_CHECKOUT_RETURN}?session_id={{CHECKOUT_SESSION_ID}}"


def with_purchase_outcome(path: str, outcome: str) -> str:
    """`path` with the purchase outcome in its query, replacing an earlier one."""
    parts = urlsplit(path)
    query = [
        pair
        for pair in parts.query.split("&")
        if pair and not pair.startswith(PURCHASE_PARAM + "=")
    ]
    query.append(f"{PURCHASE_PARAM}={quote(outcome)}")
    return parts.path + "?" + "&".join(query)


def safe_next(raw: str | None, default: str = HOME) -> str:
    """A same-site path to return to; other hosts, schemes, //x or control characters give the
    default, so a sign-in link can never bounce people to another site."""
    if not raw or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\\" for ch in raw):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or raw.startswith((f"{AUTH}/", f"{STRIPE}/")):
        return default
    return raw
