"""The mails accounts send: confirm an address, reset a password, "you already have one"."""

from __future__ import annotations

from datetime import timedelta

from app import routes
from app.services.mail import Mail

SIGNATURE = "\n\nIf you did not ask for this, ignore this mail: nothing happens without the link.\n"


def _lifetime(lifetime: timedelta) -> str:
    hours = lifetime.total_seconds() / 3600
    return f"{hours:g} hours" if hours >= 2 else f"{round(hours * 60)} minutes"


def confirm_address(*, to: str, public_url: str, token: str, lifetime: timedelta) -> Mail:
    link = routes.link_url(public_url, routes.VERIFY, token)
    return Mail(
        to=to,
        subject="Confirm your email address for Cutout",
        text=(
            "Welcome to Cutout.\n\n"
            "Open this link to confirm your address; your free trial credits are added then:\n\n"
            f"{link}\n\n"
            f"The link works once, for {_lifetime(lifetime)}." + SIGNATURE
        ),
    )


def already_registered(*, to: str, public_url: str) -> Mail:
    """Sent instead of a confirmation when the address has an account: the sign-up page
    said the same as for a new address, so only the address's owner learns this."""
    base = public_url.rstrip("/")
    return Mail(
        to=to,
        subject="You already have a Cutout account",
        text=(
            "Someone (hopefully you) tried to sign up for Cutout with this address, "
            "which already has an account. Nothing was changed.\n\n"
            f"Sign in: {base}{routes.SIGN_IN}\n"
            f"Forgot your password? {base}{routes.FORGOT}" + SIGNATURE
        ),
    )


def reset_password(*, to: str, public_url: str, token: str, lifetime: timedelta) -> Mail:
    link = routes.link_url(public_url, routes.RESET, token)
    return Mail(
        to=to,
        subject="Reset your Cutout password",
        text=(
            "Open this link to choose a new password for Cutout. Every browser signed in to "
            "your account is signed out when you do.\n\n"
            f"{link}\n\n"
            f"The link works once, for {_lifetime(lifetime)}." + SIGNATURE
        ),
    )
