"""The API page: what the remove.bg-compatible API does, the account's keys and API credits,
a curl example that works when pasted, and what each size costs."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.purchase import api_packs, purchase_feedback
from app.services.billing.entitlements import PlanCatalog
from app.services.billing.pricing import Feature, cost_of, format_credits
from app.services.imaging.removebg_layout import fitted_size
from app.services.imaging.removebg_options import SIZE_PIXELS
from app.settings import get_settings
from app.state.api import ApiPageState

# Each size and what it gives; the price column is for a 12 MP phone photo (EXAMPLE).
SIZES: tuple[tuple[str, str], ...] = (
    ("preview", "up to 0.25 megapixels (also: small, regular)"),
    ("medium", "up to 1.5 megapixels"),
    ("hd", "up to 4 megapixels"),
    ("full", "up to 25 megapixels (also: 4k, auto)"),
)
EXAMPLE = (4000, 3000)


def curl_example(public_url: str) -> str:
    return (
        f"curl -H 'X-Api-Key: YOUR_API_KEY' \\\n"
        f"  -F 'image_file=@photo.jpg' -F 'size=auto' \\\n"
        f"  -o no-bg.png {public_url.rstrip('/')}{routes.API_REMOVEBG}"
    )


def price_rows() -> list[tuple[str, str, str]]:
    """Each size, what it gives, and what a 12 MP photo costs at it (the price table's figure)."""
    rows = []
    for size, words in SIZES:
        width, height = fitted_size(*EXAMPLE, SIZE_PIXELS[size])
        rows.append((size, words, format_credits(cost_of(width, height, (Feature.api,)))))
    return rows


def _prices() -> rx.Component:
    header = rx.table.header(
        rx.table.row(
            rx.table.column_header_cell("size"),
            rx.table.column_header_cell("Result"),
            rx.table.column_header_cell("Credits for a 12 MP photo"),
        )
    )
    body = rx.table.body(
        *[
            rx.table.row(
                rx.table.row_header_cell(rx.code(size)),
                rx.table.cell(words),
                rx.table.cell(cost),
            )
            for size, words, cost in price_rows()
        ]
    )
    return rx.vstack(
        rx.heading("What a call costs", size="5", as_="h2"),
        rx.box(rx.table.root(header, body, variant="surface", size="1"), overflow_x="auto"),
        rx.text(
            "A call costs what the web app charges for the result's resolution: 0.5 credits up "
            "to 1 megapixel, then 0.1 more per started 2 megapixels, never more than 1.1. "
            "Errors cost nothing.",
            size="2",
            color_scheme="gray",
        ),
        spacing="3",
        width="100%",
    )


def _keys() -> rx.Component:
    signed_in = rx.vstack(
        rx.cond(
            ApiPageState.keys.length() > 0,
            rx.box(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Name"),
                            rx.table.column_header_cell("Key"),
                            rx.table.column_header_cell("Last used"),
                        )
                    ),
                    rx.table.body(
                        rx.foreach(
                            ApiPageState.keys,
                            lambda key: rx.table.row(
                                rx.table.cell(key["name"]),
                                rx.table.cell(rx.code(key["prefix"])),
                                rx.table.cell(key["used"]),
                            ),
                        )
                    ),
                    variant="surface",
                    size="1",
                ),
                overflow_x="auto",
                width="100%",
            ),
            rx.text("You have no API key yet.", size="2"),
        ),
        rx.link("Create or revoke keys on your account page", href=routes.ACCOUNT, size="2"),
        rx.text("API credits: ", rx.text.strong(ApiPageState.api_credits), size="3"),
        spacing="3",
        width="100%",
    )
    signed_out = rx.text(
        rx.link("Sign in", href=routes.sign_in_url(routes.API_PAGE)),
        " to see your keys and API credits.",
        size="3",
    )
    return rx.vstack(
        rx.heading("Your keys and credits", size="5", as_="h2"),
        rx.cond(ApiPageState.signed_in, signed_in, signed_out),
        spacing="3",
        width="100%",
    )


def api_page() -> rx.Component:
    settings = get_settings()
    catalog = PlanCatalog.from_settings(settings)
    return rx.container(
        rx.vstack(
            rx.heading("Cutout API", size="8", as_="h1"),
            rx.text(
                "Remove backgrounds from your own scripts, plug-ins and no-code tools. The API "
                "speaks remove.bg's dialect: a remove.bg client works once its base address "
                "points at this server.",
                size="4",
            ),
            rx.el.a(
                "Interactive API reference (OpenAPI)",
                href=routes.API_DOCS,
                style={"color": "var(--accent-11)"},
            ),
            _keys(),
            rx.vstack(
                rx.heading("Try it", size="5", as_="h2"),
                rx.text("Replace YOUR_API_KEY with a key from your account page:", size="2"),
                rx.el.pre(
                    curl_example(settings.public_url),
                    aria_label="curl example",
                    style={
                        "white-space": "pre-wrap",
                        "word-break": "break-all",
                        "background": "var(--gray-3)",
                        "padding": "0.75rem",
                        "border-radius": "0.5rem",
                        "width": "100%",
                        "font-size": "0.85rem",
                    },
                ),
                spacing="3",
                width="100%",
            ),
            _prices(),
            purchase_feedback(),
            api_packs(catalog),
            spacing="6",
            width="100%",
            padding_y=["4", "6", "8"],
        ),
        size="3",
        padding_x=["3", "4"],
    )
