"""Pricing: the plans, the cost of an image, top-ups and the FAQ. Static: nothing here reads the DB.

Every figure comes from the price table (app/services/billing/pricing.py) and the plan catalog,
so the page cannot drift from what the ledger charges.
"""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.purchase import api_packs, buy_button, format_price, purchase_feedback
from app.models.billing import Product
from app.services.billing.entitlements import EVERY_PLAN_FEATURES, PlanCatalog, PlanOffer
from app.services.billing.pricing import (
    FEATURE_LABELS,
    MEGAPIXEL,
    PRICE_TABLE,
    STANDARD_ONLY_FEATURES,
    Feature,
    cost_of,
    format_credits,
)
from app.settings import get_settings
from app.state.billing import PurchaseState
from app.state.pricing import PricingState

# Typical inputs: a small web image, a laptop screenshot, a phone photo, the largest accepted.
SAMPLE_SIZES: tuple[tuple[str, int, int], ...] = (
    ("Up to 1 MP (1000 × 1000)", 1000, 1000),
    ("2 MP (1920 × 1080)", 1920, 1080),
    ("5 MP (2592 × 1944)", 2592, 1944),
    ("8 MP, 4K (3840 × 2160)", 3840, 2160),
    ("12 MP phone photo (4000 × 3000)", 4000, 3000),
    ("25 MP, the largest (5000 × 5000)", 5000, 5000),
)
OPTION_COLUMNS: tuple[tuple[str, tuple[Feature, ...]], ...] = (
    ("Background removal", ()),
    ("+ AI Cut", (Feature.ai_cut,)),
    ("+ Hair refinement", (Feature.hair,)),
    ("+ both", (Feature.ai_cut, Feature.hair)),
)


def _credits(milli: int) -> str:
    return f"{format_credits(milli)} credits"


def _megapixels(pixels: int) -> str:
    """One decimal, rounded down, in integers: 11,999,999 pixels is '11.9', never '12.0'."""
    return f"{pixels // MEGAPIXEL}.{pixels % MEGAPIXEL // (MEGAPIXEL // 10)}"


def _subscribe(offer: PlanOffer) -> rx.Component:
    """Subscribe, or, on this plan already, say so and point to where plans are changed."""
    return rx.cond(
        PurchaseState.plan == offer.plan.value,
        rx.vstack(
            rx.badge("Your plan", color_scheme="green", size="2"),
            rx.link("Switch or cancel on your account page", href=routes.ACCOUNT, size="2"),
            spacing="2",
        ),
        buy_button(Product(offer.plan.value), f"Subscribe to {offer.name}"),
    )


def _plan_card(offer: PlanOffer, catalog: PlanCatalog) -> rx.Component:
    upcoming = [
        rx.hstack(
            rx.text(FEATURE_LABELS[feature], size="2"),
            rx.cond(
                PricingState.live_tools.contains(feature.value),
                rx.badge("Available", color_scheme="green", variant="soft"),
                rx.badge("Coming soon", color_scheme="gray", variant="soft"),
            ),
            align="center",
            wrap="wrap",
        )
        for feature in STANDARD_ONLY_FEATURES
        if feature in offer.features
    ]
    return rx.card(
        rx.vstack(
            rx.heading(offer.name, size="6", as_="h3"),
            rx.hstack(
                rx.text(format_price(offer.price_cents), size="8", weight="bold"),
                rx.text("/ month", size="3", color_scheme="gray"),
                align="baseline",
            ),
            rx.text(
                f"{_credits(offer.credits)} every month, each lot valid "
                f"{catalog.lot_valid_days} days",
                size="3",
            ),
            rx.text("Included:", weight="medium", size="2"),
            rx.unordered_list(
                *[rx.list_item(FEATURE_LABELS[feature]) for feature in EVERY_PLAN_FEATURES],
                size="2",
            ),
            rx.vstack(rx.text("Standard-only tools:", weight="medium", size="2"), *upcoming)
            if upcoming
            else rx.fragment(),
            rx.spacer(),
            _subscribe(offer),
            spacing="3",
            height="100%",
        ),
        width="100%",
    )


def _plans(catalog: PlanCatalog) -> rx.Component:
    paid = [offer for offer in catalog.offers if offer.price_cents > 0]
    return rx.vstack(
        rx.heading("Plans", size="7", as_="h2"),
        rx.text(
            f"Every new account starts with {_credits(catalog.trial_credits)} to try every "
            "feature, on the web and through the API. No card needed.",
            size="3",
        ),
        rx.grid(
            *[_plan_card(offer, catalog) for offer in paid],
            columns=rx.breakpoints(initial="1", md=str(len(paid))),
            spacing="4",
            width="100%",
        ),
        width="100%",
        spacing="4",
    )


def _cost_table() -> rx.Component:
    header = rx.table.header(
        rx.table.row(
            rx.table.column_header_cell("Image size"),
            *[rx.table.column_header_cell(label) for label, _ in OPTION_COLUMNS],
        )
    )
    body = rx.table.body(
        *[
            rx.table.row(
                rx.table.row_header_cell(label),
                *[
                    rx.table.cell(format_credits(cost_of(width, height, features)))
                    for _, features in OPTION_COLUMNS
                ],
            )
            for label, width, height in SAMPLE_SIZES
        ]
    )
    # A wide table scrolls inside its own box on a phone instead of widening the page.
    return rx.box(
        rx.table.root(header, body, variant="surface", size="1"),
        overflow_x="auto",
        width="100%",
        max_width="100%",
    )


def _step_words() -> str:
    return f"each further started {PRICE_TABLE.step_pixels // MEGAPIXEL} megapixels"


def _worked_example(width: int, height: int, features: tuple[Feature, ...]) -> rx.Component:
    pixels = width * height
    steps = -(-max(0, pixels - PRICE_TABLE.base_pixels) // PRICE_TABLE.step_pixels)
    parts = [f"{_credits(PRICE_TABLE.base)} for the first megapixel"]
    if steps:
        parts.append(f"{steps} × {format_credits(PRICE_TABLE.per_step)} for {_step_words()}")
    removal = cost_of(width, height)
    capped = PRICE_TABLE.base + steps * PRICE_TABLE.per_step > removal
    parts += [
        f"{format_credits(PRICE_TABLE.surcharges[feature])} for {FEATURE_LABELS[feature]}"
        for feature in features
    ]
    extras = " with " + " and ".join(FEATURE_LABELS[f] for f in features) if features else ""
    cap_note = (
        f" (background removal is capped at {format_credits(PRICE_TABLE.cap)})" if capped else ""
    )
    return rx.list_item(
        rx.text(
            rx.text.strong(f"{width} × {height} ({_megapixels(pixels)} MP){extras}: "),
            " + ".join(parts),
            cap_note,
            " = ",
            rx.text.strong(_credits(cost_of(width, height, features))),
            size="2",
        )
    )


def _costs() -> rx.Component:
    limit_mp = PRICE_TABLE.max_pixels // MEGAPIXEL
    return rx.vstack(
        rx.heading("What an image costs", size="7", as_="h2"),
        rx.text(
            f"Background removal costs {format_credits(PRICE_TABLE.base)} credits for an image "
            f"up to 1 megapixel, plus {format_credits(PRICE_TABLE.per_step)} for {_step_words()}"
            f", and never more than {format_credits(PRICE_TABLE.cap)} credits however large the "
            f"image. AI Cut and hair refinement each add "
            f"{format_credits(PRICE_TABLE.surcharges[Feature.ai_cut])}. Images over {limit_mp} "
            "megapixels are refused before anything is charged. You see the cost of every file "
            "before it is processed.",
            size="3",
        ),
        _cost_table(),
        rx.heading("Worked examples", size="4", as_="h3"),
        rx.unordered_list(
            _worked_example(800, 600, ()),
            _worked_example(1920, 1080, ()),
            _worked_example(4000, 3000, ()),
            _worked_example(4000, 3000, (Feature.hair,)),
            _worked_example(5000, 5000, (Feature.ai_cut, Feature.hair)),
        ),
        width="100%",
        spacing="3",
    )


def _top_ups(catalog: PlanCatalog) -> rx.Component:
    web_top_up = rx.card(
        rx.vstack(
            rx.heading("Web top-up", size="4", as_="h3"),
            rx.text(
                f"{_credits(catalog.topup_credits)} for {format_price(catalog.topup_price_cents)}",
                size="3",
            ),
            rx.text(
                "For the web app: home, editor and bulk. With or without a plan.",
                size="2",
                color_scheme="gray",
            ),
            buy_button(Product.top_up, f"Buy {_credits(catalog.topup_credits)}"),
            spacing="2",
        ),
        width="100%",
    )

    return rx.vstack(
        rx.heading("Top-ups", size="7", as_="h2"),
        rx.text(
            "Need more this month? Buy credits any time; they add to what you have and are "
            f"valid {catalog.lot_valid_days} days.",
            size="3",
        ),
        rx.grid(
            web_top_up,
            api_packs(catalog),
            columns=rx.breakpoints(initial="1", sm="2"),
            spacing="4",
            width="100%",
        ),
        width="100%",
        spacing="4",
    )


def _faq(catalog: PlanCatalog) -> rx.Component:
    days = catalog.lot_valid_days
    questions = [
        (
            "What is a credit?",
            f"Credits pay for processing. Removing a background costs "
            f"{format_credits(PRICE_TABLE.base)} to {format_credits(PRICE_TABLE.cap)} credits "
            f"per image: {format_credits(PRICE_TABLE.base)} up to 1 megapixel, and a typical "
            f"photo up to 12 megapixels uses {format_credits(cost_of(4000, 3000))}. AI Cut and "
            "hair refinement cost more, as in the table above. Credits are only taken when a "
            "cut-out succeeds: if processing fails, the credits held for it are released.",
        ),
        (
            "Do credits expire?",
            f"Yes: every batch of credits (a month of your plan, a top-up, an API pack, the "
            f"trial) is valid {days} days from when it is issued. Unused credits add up across "
            "months, and the batch that expires soonest is always used first.",
        ),
        (
            "What are the web and API wallets?",
            "Plan credits and top-ups pay for the web app (home, editor, bulk). API packs pay "
            "for the HTTP API. The trial credits work for both.",
        ),
        (
            "How does the trial work?",
            f"Every new account gets {_credits(catalog.trial_credits)}, once, valid {days} days. "
            "They work for any feature, Standard-only tools included once they are available, "
            "on the web and through the API: one shared batch, spent by whichever you use.",
        ),
        (
            "What happens if I cancel?",
            "No new monthly credits are issued after you cancel. Credits you already have stay "
            f"usable until each batch's own {days}-day expiry.",
        ),
        (
            "How do I pay?",
            "By card (or another method Stripe offers), on Stripe's own checkout page: your card "
            "details go to Stripe and never reach Cutout. Plans renew monthly until you cancel; "
            "manage cards and invoices from your account page.",
        ),
        (
            "Can I get a refund?",
            "Ask the operator of this server. When a payment is refunded, the credits it bought "
            "that you have not used yet are cancelled; credits already spent, or held by a "
            "cut-out still running, stay spent. Other batches of credits are not affected.",
        ),
    ]
    return rx.vstack(
        rx.heading("Questions", size="7", as_="h2"),
        rx.accordion.root(
            *[
                rx.accordion.item(header=question, content=rx.text(answer, size="2"), width="100%")
                for question, answer in questions
            ],
            type="multiple",
            collapsible=True,
            width="100%",
            variant="ghost",
        ),
        width="100%",
        spacing="4",
    )


def pricing() -> rx.Component:
    catalog = PlanCatalog.from_settings(get_settings())
    # page_shell already centres and pads the column: no container of its own, whose padding
    # made the page wider than a phone.
    return rx.box(
        rx.vstack(
            rx.heading("Pricing", size="8", as_="h1"),
            rx.text(
                "Pay for what you process, in credits. The price of every image is shown "
                "before it is processed.",
                size="4",
            ),
            purchase_feedback(),
            _plans(catalog),
            _costs(),
            _top_ups(catalog),
            _faq(catalog),
            spacing="7",
            width="100%",
            padding_y=["4", "6", "8"],
        ),
        width="100%",
        max_width="100%",
    )
