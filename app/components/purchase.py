"""Buy buttons and what follows them: a button that opens Stripe Checkout for one product, the
message shown on return, and the API credit packs block (on /pricing#api-packs; the API page
can include it as is)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.models.billing import Product
from app.services.billing.entitlements import PlanCatalog
from app.services.billing.pricing import format_credits
from app.state.billing import PurchaseState

BILLING_NOT_READY = "Billing is not set up yet"


def format_price(cents: int) -> str:
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}" if not rest else f"${dollars:,}.{rest:02d}"


def buy_button(product: Product, label: str, **props: object) -> rx.Component:
    """Opens Checkout for `product`; disabled, and saying why, while billing is not set up."""
    return rx.vstack(
        rx.button(
            label,
            on_click=PurchaseState.buy(product.value),
            loading=PurchaseState.purchase_busy == product.value,
            disabled=~PurchaseState.billing_ready,
            width="100%",
            size="3",
            **props,
        ),
        rx.cond(
            PurchaseState.billing_ready,
            rx.fragment(),
            rx.text(BILLING_NOT_READY, size="1", color_scheme="gray"),
        ),
        width="100%",
        spacing="1",
    )


def purchase_feedback() -> rx.Component:
    """How the purchase the person just came back from went, and any refusal to start one."""
    return rx.fragment(
        rx.cond(
            PurchaseState.purchase_problem != "",
            rx.callout(
                PurchaseState.purchase_problem,
                icon="triangle-alert",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
        ),
        rx.cond(
            PurchaseState.purchase_outcome != "",
            # Two fixed icons, not one named by a var: a var's name pulls in lucide's
            # DynamicIcon, a 240 KB map of every icon, on every page showing this.
            rx.cond(
                PurchaseState.purchase_succeeded,
                rx.callout(
                    PurchaseState.purchase_outcome,
                    icon="circle-check",
                    color_scheme="green",
                    role="status",
                    width="100%",
                ),
                rx.callout(
                    PurchaseState.purchase_outcome,
                    icon="info",
                    color_scheme="blue",
                    role="status",
                    width="100%",
                ),
            ),
        ),
    )


def top_up_offer(catalog: PlanCatalog) -> rx.Component:
    """For someone short of credits: buy a web top-up right here, or see every option."""
    label = (
        f"Buy {format_credits(catalog.topup_credits)} credits for "
        f"{format_price(catalog.topup_price_cents)}"
    )
    return rx.flex(
        rx.cond(
            PurchaseState.billing_ready,
            rx.button(
                rx.icon("coins", size=16),
                label,
                on_click=PurchaseState.buy(Product.top_up.value),
                loading=PurchaseState.purchase_busy == Product.top_up.value,
                size="3",
            ),
        ),
        rx.link("See plans and top-ups", href=routes.PRICING, size="2"),
        gap="3",
        align="center",
        wrap="wrap",
    )


def api_packs(catalog: PlanCatalog) -> rx.Component:
    """API credit packs: a separate wallet that only the HTTP API spends."""
    credits = format_credits(catalog.api_pack_credits)
    price = format_price(catalog.api_pack_price_cents)
    return rx.card(
        rx.vstack(
            rx.heading("API credit pack", size="4", as_="h3"),
            rx.text(f"{credits} credits for {price}", size="3"),
            rx.text(
                "For the HTTP API only: API credits are a separate wallet from the web app's. "
                f"Valid {catalog.lot_valid_days} days; buy as many packs as you need.",
                size="2",
                color_scheme="gray",
            ),
            buy_button(Product.api_pack, f"Buy {credits} API credits"),
            spacing="2",
        ),
        id=routes.API_PACKS_ANCHOR,
        width="100%",
    )
