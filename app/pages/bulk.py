"""Bulk: many photos at once, their cost before starting, a queue, and every result as a ZIP."""

from __future__ import annotations

import reflex as rx

from app.components.dropzone import accept_images, describe_rejections, label_file_input
from app.components.purchase import purchase_feedback, top_up_offer
from app.components.shell import page_shell
from app.services.billing.entitlements import PlanCatalog
from app.services.jobs.bulk import Phase
from app.settings import get_settings
from app.state.bulk import UPLOAD_ID, BulkState

SWATCHES = (("Transparent", ""), ("White", "#ffffff"), ("Black", "#000000"), ("Blue", "#1e90ff"))
PHASE_COLOURS = {
    Phase.waiting: "gray",
    Phase.uploading: "blue",
    Phase.processing: "blue",
    Phase.done: "green",
    Phase.failed: "red",
    Phase.not_started: "amber",
}


def _drop_zone(max_bytes: int, max_files: int) -> rx.Component:
    zone = rx.upload(
        rx.vstack(
            rx.icon("images", size=36, color="var(--accent-9)"),
            rx.text(f"Drop up to {max_files} photos here", size="4", weight="bold"),
            rx.text(
                f"Up to {max_bytes // (1024 * 1024)} MB and 25 megapixels each",
                size="2",
                color_scheme="gray",
                align="center",
            ),
            rx.button(rx.icon("image-plus", size=16), "Choose photos", size="3", type="button"),
            align="center",
            spacing="2",
        ),
        id=UPLOAD_ID,
        accept=accept_images(),
        multiple=True,
        max_files=max_files,
        max_size=max_bytes,
        disabled=BulkState.uploading,
        on_drop=BulkState.handle_upload(
            rx.upload_files(upload_id=UPLOAD_ID, on_upload_progress=BulkState.upload_progress)
        ),
        on_drop_rejected=lambda rejected: BulkState.drop_rejected(describe_rejections(rejected)),
        border="2px dashed var(--accent-7)",
        border_radius="var(--radius-4)",
        padding=["1.25rem 1rem", "1.5rem", "2rem"],
        width="100%",
        cursor="pointer",
        background_color="var(--accent-a2)",
    )
    label_file_input(zone, "Choose photos")
    return zone


def _swatch(label: str, colour: str) -> rx.Component:
    chosen = BulkState.background == colour
    return rx.button(
        rx.box(
            width="1rem",
            height="1rem",
            border_radius="50%",
            border="1px solid var(--gray-a8)",
            background=colour or "repeating-conic-gradient(#ccc 0% 25%, #fff 0% 50%) 50% / 8px 8px",
        ),
        label,
        variant=rx.cond(chosen, "solid", "outline"),
        aria_pressed=rx.cond(chosen, "true", "false"),
        on_click=BulkState.set_background(colour),
        disabled=BulkState.status != "open",
        size="2",
        type="button",
    )


def _options() -> rx.Component:
    return rx.vstack(
        rx.text("Options for every photo", weight="bold", size="3"),
        rx.flex(
            *(_swatch(label, colour) for label, colour in SWATCHES),
            rx.el.input(
                type="color",
                aria_label="Other background colour",
                value=rx.cond(BulkState.background != "", BulkState.background, "#ffffff"),
                on_change=lambda value: BulkState.set_background(value),
                disabled=BulkState.status != "open",
                style={"width": "2.5rem", "height": "2rem", "border": "none"},
            ),
            spacing="2",
            wrap="wrap",
            align="center",
        ),
        rx.el.label(
            rx.flex(
                rx.switch(
                    checked=BulkState.hair,
                    on_change=BulkState.set_hair,
                    disabled=BulkState.status != "open",
                ),
                "Hair refinement (0.5 credits more per photo)",
                spacing="2",
                align="center",
            ),
            style={"font_size": "var(--font-size-2)"},
        ),
        rx.text("AI Cut is per photo: open a result in the editor.", size="1", color_scheme="gray"),
        spacing="2",
        width="100%",
    )


def _summary() -> rx.Component:
    return rx.vstack(
        rx.text(
            BulkState.count,
            " photos · ",
            rx.text.strong(BulkState.total_cost, " credits"),
            " · you have ",
            BulkState.balance,
            role="status",
            size="3",
        ),
        rx.cond(
            ~BulkState.can_afford_all,
            rx.callout(
                "Your credits do not cover every photo: processing stops when they run out, "
                "and photos not started are not charged. You can resume after a top-up.",
                icon="coins",
                color_scheme="amber",
                width="100%",
            ),
        ),
        rx.button(
            rx.icon("scissors", size=16),
            "Start · ",
            BulkState.total_cost,
            " credits",
            on_click=BulkState.start,
            disabled=(BulkState.count == 0) | BulkState.uploading,
            size="3",
        ),
        spacing="2",
        width="100%",
    )


def _stopped() -> rx.Component:
    return rx.callout(
        rx.vstack(
            rx.text(BulkState.stop_reason),
            top_up_offer(PlanCatalog.from_settings(get_settings())),
            rx.button(rx.icon("play", size=16), "Resume", on_click=BulkState.resume, size="3"),
            spacing="2",
        ),
        icon="circle-pause",
        color_scheme="amber",
        role="alert",
        width="100%",
    )


def _progress() -> rx.Component:
    return rx.vstack(
        rx.text(
            BulkState.finished_count,
            " of ",
            BulkState.count,
            " finished · ",
            BulkState.done_count,
            " done",
            rx.cond(
                BulkState.failed_count > 0, rx.text.span(" · ", BulkState.failed_count, " failed")
            ),
            rx.cond(
                BulkState.not_started_count > 0,
                rx.text.span(" · ", BulkState.not_started_count, " not started"),
            ),
            size="3",
        ),
        rx.progress(
            value=BulkState.progress_percent, max=100, width="100%", aria_label="Batch progress"
        ),
        rx.flex(
            rx.cond(
                BulkState.status == "running",
                rx.button(
                    rx.icon("square", size=16),
                    "Cancel the rest",
                    on_click=BulkState.cancel_rest,
                    color_scheme="red",
                    variant="soft",
                    size="2",
                ),
            ),
            rx.cond(
                BulkState.status == "cancelled",
                rx.button(rx.icon("play", size=16), "Resume", on_click=BulkState.resume, size="2"),
            ),
            rx.cond(
                BulkState.zip_url != "",
                rx.button(
                    rx.link(
                        rx.icon("folder-down", size=16),
                        "Download all (ZIP)",
                        href=BulkState.zip_url,
                        download="cutouts.zip",
                        reload_document=True,
                        underline="none",
                    ),
                    as_child=True,
                    size="2",
                ),
            ),
            rx.cond(
                (BulkState.status == "finished") | (BulkState.status == "cancelled"),
                rx.button("New batch", on_click=BulkState.new_batch, variant="soft", size="2"),
            ),
            spacing="2",
            wrap="wrap",
        ),
        role="status",
        aria_live="polite",
        spacing="2",
        width="100%",
    )


def _row(item: rx.Var) -> rx.Component:
    done = item["phase"] == Phase.done
    return rx.flex(
        rx.cond(
            item["thumb"] != "",
            rx.image(
                src=item["thumb"],
                alt="",
                width="3.5rem",
                height="3.5rem",
                object_fit="cover",
                border_radius="var(--radius-2)",
                loading="lazy",
            ),
            rx.box(width="3.5rem", height="3.5rem", background="var(--gray-a3)"),
        ),
        rx.vstack(
            rx.text(
                item["name"],
                weight="medium",
                size="2",
                trim="both",
                style={"word_break": "break-all"},
            ),
            rx.flex(
                rx.badge(
                    item["phase"],
                    color_scheme=rx.match(
                        item["phase"],
                        *((phase, colour) for phase, colour in PHASE_COLOURS.items()),
                        "gray",
                    ),
                ),
                rx.cond(
                    item["cost"] != "",
                    rx.text(item["cost"], " credits", size="1", color_scheme="gray"),
                ),
                spacing="2",
                align="center",
                wrap="wrap",
            ),
            rx.cond(item["error"] != "", rx.text(item["error"], size="1", color_scheme="red")),
            rx.flex(
                rx.cond(
                    done,
                    rx.link(
                        "Download",
                        href=item["download"],
                        download=item["download_name"],
                        reload_document=True,
                        size="2",
                        aria_label="Download " + item["name"],
                    ),
                ),
                rx.cond(
                    done,
                    rx.link(
                        "Open in editor",
                        href=item["editor"],
                        size="2",
                        aria_label="Open " + item["name"] + " in the editor",
                    ),
                ),
                rx.cond(
                    item["phase"] == Phase.failed,
                    rx.button(
                        "Retry",
                        on_click=BulkState.retry(item["job_id"]),
                        size="1",
                        variant="soft",
                        aria_label="Retry " + item["name"],
                    ),
                ),
                spacing="3",
                wrap="wrap",
            ),
            spacing="1",
            flex="1",
            min_width="0",
        ),
        role="listitem",
        aria_label=item["name"],
        spacing="3",
        align="start",
        padding="0.5rem 0",
        border_bottom="1px solid var(--gray-a4)",
        width="100%",
    )


def bulk_page() -> rx.Component:
    settings = get_settings()
    return page_shell(
        rx.vstack(
            rx.heading("Bulk background removal", size=rx.breakpoints(initial="7", md="8")),
            rx.text(
                "Many photos at once: see the cost first, follow the queue, download them all "
                "as one ZIP. The queue keeps going if you close this page.",
                size="3",
                color_scheme="gray",
            ),
            spacing="2",
            width="100%",
        ),
        rx.cond(
            BulkState.error != "",
            rx.callout(
                BulkState.error,
                icon="triangle-alert",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
        ),
        purchase_feedback(),
        rx.cond(
            (BulkState.status == "") | (BulkState.status == "open"),
            rx.vstack(
                _drop_zone(settings.max_upload_bytes, settings.bulk_max_files),
                rx.cond(
                    BulkState.uploading,
                    rx.vstack(
                        rx.text("Uploading… ", BulkState.upload_percent, "%", size="2"),
                        rx.progress(value=BulkState.upload_percent, max=100, width="100%"),
                        width="100%",
                    ),
                ),
                rx.cond(BulkState.count > 0, rx.vstack(_options(), _summary(), width="100%")),
                spacing="3",
                width="100%",
            ),
            rx.vstack(
                rx.cond(BulkState.status == "paused", _stopped()),
                _progress(),
                width="100%",
                spacing="3",
            ),
        ),
        rx.cond(
            BulkState.count > 0,
            rx.box(
                rx.foreach(BulkState.items, _row),
                role="list",
                aria_label="Queue",
                width="100%",
            ),
        ),
    )
