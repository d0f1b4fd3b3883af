"""Sign-up, sign-in and "forgot password": plain HTML forms posted to app/api/accounts.py, and
any OAuth provider the operator configured."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.shell import block_callout, page_shell
from app.services.identity.accounts import MIN_PASSWORD_LENGTH
from app.state.auth import AuthState


def post_form(action: str, *children: rx.Component) -> rx.Component:
    """A form the browser itself posts (no Reflex event): the answer sets or clears the
    HttpOnly session cookie, which no event could."""
    return rx.el.form(
        rx.vstack(*children, spacing="3", width="100%"),
        action=action,
        method="post",
        on_submit=None,  # Reflex would otherwise prevent the browser's own submission
        width="100%",
    )


def field(
    label: str,
    name: str,
    kind: str,
    autocomplete: str,
    *,
    element_id: str = "",
    **props: object,
) -> rx.Component:
    return rx.vstack(
        rx.el.label(
            label,
            html_for=element_id or name,
            style={"font_weight": "500", "font_size": "0.9rem"},
        ),
        rx.input(
            id=element_id or name,
            name=name,
            type=kind,
            auto_complete=autocomplete,
            required=True,
            size="3",
            width="100%",
            **props,
        ),
        spacing="1",
        width="100%",
    )


def next_field() -> rx.Component:
    return rx.el.input(type="hidden", name="next", value=AuthState.next_path)


def _oauth_buttons() -> rx.Component:
    # Until the page is hydrated the links carry the prerendered `next` ("/"); a quick tap
    # would then lose the page the person came from.
    return rx.cond(
        AuthState.is_hydrated & (AuthState.oauth_providers.length() > 0),
        rx.vstack(
            rx.text("or", size="2", color_scheme="gray", align="center", width="100%"),
            rx.foreach(
                AuthState.oauth_providers,
                lambda provider: rx.button(
                    rx.link(
                        "Continue with ",
                        provider[1],
                        href=provider[2],
                        reload_document=True,
                        underline="none",
                    ),
                    as_child=True,
                    variant="outline",
                    size="3",
                    width="100%",
                ),
            ),
            width="100%",
            spacing="2",
        ),
    )


def _error() -> rx.Component:
    return rx.cond(
        AuthState.auth_error != "",
        rx.callout(
            AuthState.auth_error,
            icon="triangle-alert",
            color_scheme="red",
            role="alert",
            width="100%",
        ),
    )


def _sent(text: str) -> rx.Component:
    """ "Check your mail", and where the link went when this server has no mail set up."""
    return block_callout(
        "mail",
        rx.vstack(
            rx.text(text),
            rx.cond(
                ~AuthState.mail_configured,
                rx.text(
                    "This server has no mail set up (CUTOUT_SMTP_URL), so the link was written "
                    "to the server's log instead: ask its operator for it.",
                    size="2",
                ),
            ),
            spacing="2",
        ),
        color_scheme="green",
        role="status",
        width="100%",
    )


def _card(title: str, *children: rx.Component) -> rx.Component:
    return page_shell(
        rx.card(
            rx.vstack(rx.heading(title, size="6"), *children, spacing="4", width="100%"),
            width="100%",
            max_width="26rem",
            margin_x="auto",
            size="3",
        )
    )


def _resend() -> rx.Component:
    """Shown when a sign-in needs a confirmed address or a link did not work."""
    return rx.cond(
        (AuthState.error_code == "unconfirmed") | (AuthState.error_code == "link"),
        post_form(
            routes.RESEND_POST,
            rx.text("Send a new confirmation link:", size="2"),
            field("Address to send it to", "email", "email", "email", element_id="resend-email"),
            rx.button("Send the link again", type="submit", variant="soft", width="100%"),
        ),
    )


def signin() -> rx.Component:
    return _card(
        "Sign in",
        _error(),
        rx.cond(
            AuthState.mail_sent,
            _sent("If that address has an unconfirmed sign-up, a new link is on its way."),
        ),
        post_form(
            routes.SIGN_IN_POST,
            field("Email", "email", "email", "email"),
            field("Password", "password", "password", "current-password"),
            next_field(),
            rx.button("Sign in", type="submit", size="3", width="100%"),
        ),
        rx.link("Forgot your password?", href=routes.FORGOT, size="2"),
        _resend(),
        _oauth_buttons(),
        rx.text(
            "New to Cutout? ",
            rx.link(
                "Create an account",
                href=routes.SIGN_UP + "?next=" + AuthState.next_path,
                underline="always",
            ),
            " and get 10 free credits.",
            size="2",
        ),
    )


def signup() -> rx.Component:
    return _card(
        "Create your account",
        rx.cond(
            AuthState.mail_sent,
            _sent(
                "Check your email: we sent a link to confirm your address. Your free credits "
                "arrive when you follow it."
            ),
            rx.text(
                "10 free credits to start, for every feature. No card needed.",
                size="2",
                color_scheme="gray",
            ),
        ),
        _error(),
        post_form(
            routes.SIGN_UP_POST,
            field("Email", "email", "email", "email"),
            field(
                "Password",
                "password",
                "password",
                "new-password",
                min_length=MIN_PASSWORD_LENGTH,
                placeholder=f"At least {MIN_PASSWORD_LENGTH} characters",
            ),
            field(
                "Repeat password",
                "confirm",
                "password",
                "new-password",
                min_length=MIN_PASSWORD_LENGTH,
            ),
            next_field(),
            rx.button("Create account", type="submit", size="3", width="100%"),
        ),
        _oauth_buttons(),
        rx.text(
            "Already have an account? ",
            rx.link(
                "Sign in", href=routes.SIGN_IN + "?next=" + AuthState.next_path, underline="always"
            ),
            size="2",
        ),
    )


def forgot() -> rx.Component:
    return _card(
        "Forgot your password?",
        _error(),
        rx.cond(
            AuthState.mail_sent,
            _sent("If that address has an account, a link to choose a new password is on its way."),
            rx.text("We mail you a link to choose a new one.", size="2", color_scheme="gray"),
        ),
        post_form(
            routes.FORGOT_POST,
            field("Email", "email", "email", "email"),
            rx.button("Send the link", type="submit", size="3", width="100%"),
        ),
        rx.link("Back to sign in", href=routes.SIGN_IN, size="2"),
    )
