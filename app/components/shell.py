"""The shared page shell: a one-row navbar (a menu holds the secondary links on phones),
the content column, the footer, and the 404 page."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.state.auth import AuthState
from app.state.cutout import CutoutState

NAV_LINKS: list[tuple[str, str]] = [
    ("Remove background", routes.HOME),
    ("Bulk", routes.BULK),
    ("Pricing", routes.PRICING),
    ("API", routes.API_PAGE),
]

PHONE_ONLY = ["flex", "flex", "none"]  # below 768 px
WIDE_ONLY = ["none", "none", "flex"]
# Below 360 px even "Sign in" moves into the menu, so the row never wraps.
NARROWEST_HIDDEN = {"@media (max-width: 359px)": {"display": "none"}}


def nav_link(label: str, href: str, **props: object) -> rx.Component:
    # "Remove background" always leads to a clean drop zone, even from a shown result.
    if href == routes.HOME:
        props["on_click"] = CutoutState.start_over
    return rx.link(label, href=href, **props)


def link_button(label: str, href: str, **props: object) -> rx.Component:
    """A link that looks like a button: its text takes the button's colours (contrast)."""
    return rx.button(rx.el.a(label, href=href), as_child=True, **props)


def block_callout(icon: str, *children: rx.Component, **props: object) -> rx.Component:
    """A callout holding blocks (paragraphs, forms): `rx.callout("…")` wraps its content in a
    <p>, and a block inside a <p> breaks the page's hydration."""
    return rx.callout.root(
        rx.callout.icon(rx.icon(icon)),
        rx.box(*children, width="100%", min_width="0"),
        **props,
    )


def _skeleton(width: str) -> rx.Component:
    return rx.box(
        width=width,
        height="2rem",
        border_radius="var(--radius-3)",
        background_color="var(--gray-a3)",
        aria_hidden="true",
    )


def _sign_out_form(*children: rx.Component, **props: object) -> rx.Component:
    # A form post: only the HTTP answer can clear the HttpOnly session cookie.
    return rx.el.form(
        *children, action=routes.SIGN_OUT_POST, method="post", on_submit=None, **props
    )


def _account_links() -> rx.Component:
    signed_in = rx.hstack(
        rx.link(
            rx.badge(
                rx.icon("coins", size=14),
                AuthState.web_credits,
                " credits",
                size="2",
                variant="soft",
                high_contrast=True,
            ),
            href=routes.ACCOUNT,
            aria_label="Account: " + AuthState.web_credits + " credits",
        ),
        _sign_out_form(
            rx.button(
                rx.icon("log-out", size=16),
                rx.text("Sign out", display=WIDE_ONLY),
                type="submit",
                variant="ghost",
                size="2",
                aria_label="Sign out",
                color_scheme="gray",
                high_contrast=True,
            ),
        ),
        spacing="3",
        align="center",
    )
    signed_out = rx.hstack(
        rx.link(
            "Sign in",
            href=routes.SIGN_IN,
            size="2",
            weight="medium",
            high_contrast=True,
            style=NARROWEST_HIDDEN,
        ),
        link_button("Sign up free", routes.SIGN_UP, size="2"),
        spacing="3",
        align="center",
    )
    return rx.cond(
        AuthState.session_known,
        rx.cond(AuthState.signed_in, signed_in, signed_out),
        _skeleton("8rem"),
    )


def _menu_item(label: str, href: str) -> rx.Component:
    # A menu item cannot wrap rx.link (nested slots): it navigates on select instead.
    events = [rx.redirect(href)]
    if href == routes.HOME:
        events.insert(0, CutoutState.start_over)
    return rx.menu.item(label, on_select=events)


def _menu() -> rx.Component:
    """Secondary links on phones."""
    return rx.box(
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(
                    rx.icon("menu", size=20),
                    variant="ghost",
                    color_scheme="gray",
                    high_contrast=True,
                    size="2",
                    aria_label="Menu",
                ),
            ),
            rx.menu.content(
                *[_menu_item(label, href) for label, href in NAV_LINKS],
                rx.menu.separator(),
                rx.cond(
                    AuthState.signed_in,
                    _menu_item("Account", routes.ACCOUNT),
                    _menu_item("Sign in", routes.SIGN_IN),
                ),
                align="end",
            ),
        ),
        display=PHONE_ONLY,
    )


def navbar() -> rx.Component:
    return rx.el.nav(
        rx.flex(
            rx.link(
                rx.hstack(
                    rx.icon("scissors", size=22),
                    rx.text("Cutout", weight="bold", size="5"),
                    align="center",
                    spacing="2",
                ),
                href=routes.HOME,
                on_click=CutoutState.start_over,
                underline="none",
                color_scheme="gray",
                high_contrast=True,
                aria_label="Cutout home",
            ),
            rx.spacer(),
            rx.hstack(
                *[
                    nav_link(label, href, size="2", weight="medium", high_contrast=True)
                    for label, href in NAV_LINKS
                ],
                spacing="4",
                align="center",
                display=WIDE_ONLY,
            ),
            _account_links(),
            _menu(),
            align="center",
            wrap="nowrap",
            spacing=rx.breakpoints(initial="2", xs="3", sm="4"),
            width="100%",
            max_width="64rem",
            margin_x="auto",
            padding_x=["0.75rem", "1rem", "1.5rem"],
            padding_y="0.625rem",
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
            high_contrast=True,
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
            block_callout(
                "clock",
                rx.text(
                    AuthState.expiry_notice,
                    " ",
                    rx.link("Use them now", href=routes.HOME, underline="always"),
                    " or see ",
                    rx.link("your credits", href=routes.ACCOUNT, underline="always"),
                    ".",
                ),
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
            # The footer starts below the fold, so content arriving after the first paint
            # (the account's tables, a result) never pushes anything visible around.
            min_height="100vh",
        ),
        footer(),
        min_height="100vh",
        width="100%",
    )


def page_skeleton(height: str = "16rem") -> rx.Component:
    """A neutral placeholder while the server says who is looking."""
    return rx.vstack(
        _skeleton("60%"),
        rx.box(
            width="100%",
            height=height,
            border_radius="var(--radius-4)",
            background_color="var(--gray-a2)",
        ),
        width="100%",
        spacing="3",
        aria_busy="true",
    )


def not_found() -> rx.Component:
    return page_shell(
        rx.vstack(
            rx.heading("Page not found", size="7"),
            rx.text(
                "There is nothing at this address. It may have been mistyped, or a result "
                "link may have expired (results are kept for 24 hours).",
                size="3",
            ),
            rx.flex(
                link_button("Remove a background", routes.HOME, size="3"),
                link_button("Pricing", routes.PRICING, size="3", variant="soft"),
                link_button("Your account", routes.ACCOUNT, size="3", variant="soft"),
                spacing="3",
                wrap="wrap",
            ),
            spacing="4",
            width="100%",
        )
    )
