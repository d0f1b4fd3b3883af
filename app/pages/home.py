"""Home: what Cutout does, and one photo from drop zone to downloaded cutout."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.before_after import before_after
from app.components.dropzone import dropzone
from app.components.purchase import purchase_feedback, top_up_offer
from app.components.shell import block_callout, link_button, page_shell, page_skeleton
from app.services.billing.entitlements import PlanCatalog
from app.settings import get_settings
from app.state.cutout import SAMPLES, UPLOAD_ID, CutoutState


def _error() -> rx.Component:
    return rx.cond(
        CutoutState.error != "",
        rx.callout(
            CutoutState.error,
            icon="triangle-alert",
            color_scheme="red",
            role="alert",
            width="100%",
        ),
    )


def _progress() -> rx.Component:
    return rx.vstack(
        rx.cond(
            CutoutState.stage == "uploading",
            rx.vstack(
                rx.text("Uploading… ", CutoutState.upload_percent, "%", size="3"),
                rx.progress(value=CutoutState.upload_percent, max=100, width="100%"),
                width="100%",
            ),
            rx.vstack(
                rx.hstack(
                    rx.spinner(size="3"),
                    rx.text(
                        rx.cond(
                            CutoutState.stage == "checking",
                            "Checking your photo…",
                            "Removing the background…",
                        ),
                        size="3",
                    ),
                    align="center",
                ),
                rx.progress(width="100%"),  # no value: indeterminate while the model runs
                width="100%",
            ),
        ),
        role="status",
        aria_live="polite",
        width="100%",
        padding="1.5rem",
        border="1px solid var(--gray-a5)",
        border_radius="var(--radius-4)",
    )


def _quote() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.image(
                src=CutoutState.before_url,
                alt="Original: " + CutoutState.original_name,
                max_height="8rem",
                max_width="40%",
                object_fit="contain",
                border_radius="var(--radius-3)",
            ),
            rx.vstack(
                rx.text(CutoutState.original_name, weight="bold", size="3"),
                rx.text(CutoutState.size_label, size="2", color_scheme="gray"),
                rx.text("Cost: ", rx.text.strong(CutoutState.cost_label, " credits"), size="3"),
                rx.text(
                    "You have ",
                    CutoutState.balance_label,
                    " credits.",
                    size="2",
                    color_scheme="gray",
                ),
                spacing="1",
            ),
            spacing="4",
            align="center",
            width="100%",
        ),
        rx.cond(
            CutoutState.can_afford,
            rx.button(
                rx.icon("scissors", size=16),
                "Remove background · ",
                CutoutState.cost_label,
                " credits",
                on_click=CutoutState.confirm,
                size="3",
            ),
            block_callout(
                "coins",
                rx.vstack(
                    rx.text(
                        "Not enough credits for this photo: it costs ",
                        CutoutState.cost_label,
                        " and you have ",
                        CutoutState.balance_label,
                        ". Top up and come straight back to it.",
                    ),
                    top_up_offer(PlanCatalog.from_settings(get_settings())),
                    spacing="2",
                ),
                color_scheme="amber",
                width="100%",
            ),
        ),
        purchase_feedback(),
        rx.button(
            "Choose another photo", on_click=CutoutState.start_over, variant="soft", size="2"
        ),
        width="100%",
        spacing="3",
        padding="1.25rem",
        border="1px solid var(--gray-a5)",
        border_radius="var(--radius-4)",
    )


def _samples() -> rx.Component:
    """Sample photos to tap instead of uploading one."""
    return rx.vstack(
        rx.text(
            "No photo at hand? Try one of these:", size="2", color_scheme="gray", high_contrast=True
        ),
        rx.hstack(
            *[
                rx.el.button(
                    rx.image(
                        src=f"/samples/{name}-thumb.jpg",
                        alt="",
                        width="4.5rem",
                        height="4.5rem",
                        object_fit="cover",
                        border_radius="var(--radius-3)",
                        loading="lazy",
                        decoding="async",
                    ),
                    type="button",
                    aria_label=f"Try the sample photo: {label}",
                    on_click=CutoutState.try_sample(name),
                    style={
                        "padding": "0",
                        "border": "2px solid var(--gray-a5)",
                        "border_radius": "var(--radius-3)",
                        "background": "none",
                        "cursor": "pointer",
                        "line_height": "0",
                    },
                )
                for name, label in SAMPLES.items()
            ],
            spacing="3",
        ),
        spacing="2",
        align="center",
        width="100%",
    )


def _free_try_note() -> rx.Component:
    return rx.cond(
        CutoutState.signed_in,
        rx.fragment(),
        rx.text(
            "Try one photo free, no account needed: a preview cutout. ",
            rx.link("Sign up free", href=routes.SIGN_UP, underline="always"),
            " for 10 credits and full-resolution downloads.",
            size="2",
            align="center",
        ),
    )


def _start() -> rx.Component:
    settings = get_settings()
    return rx.vstack(
        rx.cond(CutoutState.signed_in, _high_quality_switch()),
        dropzone(
            UPLOAD_ID,
            on_drop=CutoutState.handle_upload,
            on_progress=CutoutState.upload_progress,
            on_rejected=CutoutState.drop_rejected,
            max_bytes=settings.max_upload_bytes,
        ),
        _free_try_note(),
        _samples(),
        spacing="4",
        width="100%",
    )


def _trial_result() -> rx.Component:
    """A signed-out visitor's free preview, and what signing up adds."""
    return rx.vstack(
        before_after(
            CutoutState.before_url,
            CutoutState.cutout_url,
            CutoutState.original_name,
            max_height="min(50vh, 30rem)",
        ),
        rx.text(
            "Free preview. Sign up to download it at full resolution (",
            CutoutState.size_label,
            "): new accounts get 10 credits, no card needed.",
            size="2",
        ),
        rx.flex(
            link_button(
                "Sign up and download",
                routes.SIGN_UP,
                size="3",
            ),
            rx.button(
                rx.icon("rotate-ccw", size=16),
                "New photo",
                size="3",
                variant="soft",
                on_click=CutoutState.start_over,
            ),
            spacing="3",
            wrap="wrap",
        ),
        width="100%",
        spacing="3",
    )


def _result() -> rx.Component:
    return rx.vstack(
        before_after(CutoutState.before_url, CutoutState.cutout_url, CutoutState.original_name),
        rx.text(
            CutoutState.original_name, " · ", CutoutState.size_label, size="2", color_scheme="gray"
        ),
        rx.flex(
            rx.button(
                rx.link(
                    rx.icon("download", size=16),
                    "Download PNG",
                    href=CutoutState.download_url,
                    download=CutoutState.download_name,
                    # A file from the server, not a page: let the browser fetch it.
                    reload_document=True,
                    aria_label="Download " + CutoutState.download_name,
                    underline="none",
                ),
                as_child=True,
                size="3",
            ),
            rx.button(
                rx.link(
                    rx.icon("sliders-horizontal", size=16),
                    "Open in editor",
                    href=CutoutState.editor_url,
                    underline="none",
                    color="inherit",
                ),
                as_child=True,
                size="3",
                variant="soft",
            ),
            rx.button(
                rx.icon("rotate-ccw", size=16),
                "New photo",
                size="3",
                variant="soft",
                on_click=CutoutState.start_over,
            ),
            spacing="3",
            wrap="wrap",
        ),
        width="100%",
        spacing="3",
    )


def _high_quality_switch() -> rx.Component:
    """Shown only where the server has the full model: slower, finer on busy backgrounds."""
    return rx.cond(
        CutoutState.high_quality_offered,
        rx.el.label(
            rx.hstack(
                rx.switch(
                    checked=CutoutState.high_quality,
                    on_change=CutoutState.set_high_quality,
                    name="high_quality",
                    aria_label="High quality",
                ),
                rx.text("High quality (slower; better on busy backgrounds)", size="2"),
                align="center",
                spacing="2",
            ),
        ),
    )


def _intro() -> rx.Component:
    return rx.vstack(
        rx.heading(
            "Remove the background from any photo", size=rx.breakpoints(initial="7", md="8")
        ),
        rx.text(
            "Drop a photo and get a clean cutout with a transparent background, "
            "ready to download as PNG. Phone photos (HEIC) welcome.",
            size="4",
            color_scheme="gray",
            high_contrast=True,
        ),
        spacing="2",
        width="100%",
    )


def home() -> rx.Component:
    return page_shell(
        # The result and the quote need the whole phone screen: the introduction steps aside.
        rx.cond(
            (CutoutState.stage == "done") | (CutoutState.stage == "quoted"),
            rx.fragment(),
            _intro(),
        ),
        _error(),
        rx.cond(
            ~CutoutState.session_known,
            page_skeleton(),
            rx.cond(
                CutoutState.busy,
                _progress(),
                rx.match(
                    CutoutState.stage,
                    ("done", rx.cond(CutoutState.trial, _trial_result(), _result())),
                    ("quoted", _quote()),
                    _start(),
                ),
            ),
        ),
    )
