"""Sign-up and sign-in: email and password, and any OAuth provider the operator configured."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.shell import page_shell
from app.services.identity.accounts import MIN_PASSWORD_LENGTH
from app.state.auth import AuthState


def _field(label: str, name: str, kind: str, autocomplete: str, **props: object) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, style={"font_weight": "500", "font_size": "0.9rem"}),
        rx.input(
            id=name,
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


def signin() -> rx.Component:
    return _card(
        "Sign in",
        _error(),
        rx.form(
            rx.vstack(
                _field("Email", "email", "email", "email"),
                _field("Password", "password", "password", "current-password"),
                rx.button(
                    "Sign in", type="submit", size="3", width="100%", loading=AuthState.auth_busy
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.sign_in,
            width="100%",
        ),
        _oauth_buttons(),
        rx.text(
            "New to Cutout? ",
            rx.link("Create an account", href=routes.SIGN_UP + "?next=" + AuthState.next_path),
            " and get 10 free credits.",
            size="2",
        ),
    )


def signup() -> rx.Component:
    return _card(
        "Create your account",
        rx.text(
            "10 free credits to start, for every feature. No card needed.",
            size="2",
            color_scheme="gray",
        ),
        _error(),
        rx.form(
            rx.vstack(
                _field("Email", "email", "email", "email"),
                _field(
                    "Password",
                    "password",
                    "password",
                    "new-password",
                    min_length=MIN_PASSWORD_LENGTH,
                    placeholder=f"At least {MIN_PASSWORD_LENGTH} characters",
                ),
                _field(
                    "Repeat password",
                    "confirm",
                    "password",
                    "new-password",
                    min_length=MIN_PASSWORD_LENGTH,
                ),
                rx.button(
                    "Create account",
                    type="submit",
                    size="3",
                    width="100%",
                    loading=AuthState.auth_busy,
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.sign_up,
            width="100%",
        ),
        _oauth_buttons(),
        rx.text(
            "Already have an account? ",
            rx.link("Sign in", href=routes.SIGN_IN + "?next=" + AuthState.next_path),
            size="2",
        ),
    )
