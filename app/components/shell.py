"""The shared page shell: navbar, content column, footer; phone-first."""

from __future__ import annotations

import reflex as rx

NAV_LINKS: list[tuple[str, str]] = [("Remove background", "/"), ("Pricing", "/pricing")]


def navbar() -> rx.Component:
    return rx.el.nav(
        rx.hstack(
            rx.link(
                rx.hstack(rx.icon("scissors", size=22), rx.text("Cutout", weight="bold", size="5")),
                href="/",
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
                spacing="4",
                wrap="wrap",
                justify="end",
            ),
            align="center",
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


def page_shell(*children: rx.Component) -> rx.Component:
    return rx.box(
        navbar(),
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
