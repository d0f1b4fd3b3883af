"""The shared page shell: navbar with the account's credits, content column, footer."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.state.auth import AuthState

NAV_LINKS: list[tuple[str, str]] = [
    ("Remove background", routes.HOME),
    ("Bulk", routes.BULK),
    ("Pricing", routes.PRICING),
    ("API", routes.API_PAGE),
]


def _account_links() -> rx.Component:
    return rx.cond(
        AuthState.signed_in,
        rx.hstack(
            rx.link(
                rx.badge(
                    rx.icon("coins", size=14),
                    AuthState.web_credits,
                    " credits",
                    size="2",
                    variant="soft",
                ),
                href=routes.ACCOUNT,
                aria_label="Account: " + AuthState.web_credits + " credits",
            ),
            # A form post: only the HTTP answer can clear the HttpOnly session cookie.
            rx.el.form(
                rx.button("Sign out", type="submit", variant="ghost", size="2"),
                action=routes.SIGN_OUT_POST,
                method="post",
                on_submit=None,
            ),
            spacing="3",
            align="center",
        ),
        rx.hstack(
            rx.link("Sign in", href=routes.SIGN_IN, size="2", weight="medium"),
            rx.button(
                rx.link("Sign up free", href=routes.SIGN_UP, underline="none", color="inherit"),
                as_child=True,
                size="2",
            ),
            spacing="3",
            align="center",
        ),
    )


def navbar() -> rx.Component:
    return rx.el.nav(
        rx.flex(
            rx.link(
                rx.hstack(
                    rx.icon("scissors", size=22),
                    rx.text("Cutout", weight="bold", size="5"),
                    align="center",
                ),
                href=routes.HOME,
                underline="none",
                color_scheme="gray",
                high_contrast=True,
            ),
            rx.spacer(),
            rx.hstack(
                *[
                    rx.link(label, href=href, size="2", weight="medium")
                    for label, href in NAV_LINKS
                ],
                _account_links(),
                spacing="4",
                wrap="wrap",
                justify="end",
                align="center",
            ),
            align="center",
            wrap="wrap",
            gap="2",
            width="100%",
            max_width="64rem",
            margin_x="auto",
            padding_x=["0.75rem", "1rem", "1.5rem"],
            padding_y="0.75rem",
        ),
        aria_label="Main",
        border_bottom="1px solid var(--gray-a5)",
        width="100%",
    )


def footer() -> rx.Component:
    return rx.el.footer(
        rx.text(
            "Cutout runs on your own server: your photos never leave it.",
            size="1",
            color_scheme="gray",
            align="center",
        ),
        padding="1.5rem 1rem",
        width="100%",
    )


def expiry_banner() -> rx.Component:
    """Credits about to expire: a week's notice, with the page where they can be used."""
    return rx.cond(
        AuthState.expiry_notice != "",
        rx.box(
            rx.callout(
                rx.text(
                    AuthState.expiry_notice,
                    " ",
                    rx.link("Use them now", href=routes.HOME),
                    " or see ",
                    rx.link("your credits", href=routes.ACCOUNT),
                    ".",
                ),
                icon="clock",
                color_scheme="amber",
                role="status",
                width="100%",
                max_width="64rem",
                margin_x="auto",
            ),
            width="100%",
            padding_x=["0.75rem", "1rem", "1.5rem"],
            padding_top="0.75rem",
        ),
    )


def page_shell(*children: rx.Component) -> rx.Component:
    return rx.box(
        navbar(),
        expiry_banner(),
        rx.el.main(
            rx.vstack(
                *children,
                width="100%",
                max_width="64rem",
                margin_x="auto",
                padding_x=["0.75rem", "1rem", "1.5rem"],
                padding_y=["1rem", "1.5rem", "2rem"],
                spacing="5",
            ),
            width="100%",
        ),
        footer(),
        min_height="100vh",
        width="100%",
    )
