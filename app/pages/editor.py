"""The photo editor: fix the mask, choose a background and a layout, export."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.components.editor_canvas import editor_canvas
from app.components.purchase import purchase_feedback, top_up_offer
from app.components.shell import page_shell
from app.components.slider import labelled_slider
from app.services.billing.entitlements import PlanCatalog
from app.settings import get_settings
from app.state.editor import BACKGROUND_UPLOAD_ID, EditorState

SWATCHES = ("#ffffff", "#000000", "#f4f4f5", "#fde68a", "#bfdbfe", "#fecaca", "#bbf7d0", "#1e90ff")


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(
            EditorState.error != "",
            rx.callout(
                EditorState.error,
                icon="triangle-alert",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
        ),
        rx.cond(
            EditorState.notice != "",
            rx.callout(
                EditorState.notice, icon="info", color_scheme="blue", role="status", width="100%"
            ),
        ),
    )


def _tool(mode: str, icon: str, label: str) -> rx.Component:
    return rx.button(
        rx.icon(icon, size=16),
        label,
        on_click=EditorState.set_mode(mode),
        variant=rx.cond(EditorState.mode == mode, "solid", "soft"),
        aria_pressed=rx.cond(EditorState.mode == mode, "true", "false"),
        size="2",
    )


def _history() -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("undo-2", size=16),
            "Undo",
            on_click=EditorState.undo,
            disabled=EditorState.steps == 0,
            variant="soft",
            size="2",
        ),
        rx.button(
            rx.icon("redo-2", size=16),
            "Redo",
            on_click=EditorState.redo,
            disabled=EditorState.redoable == 0,
            variant="soft",
            size="2",
        ),
        rx.button(
            rx.icon("scan", size=16),
            "Zoom to fit",
            id="editor-fit",  # the canvas script resets the zoom
            variant="soft",
            size="2",
        ),
        spacing="2",
        wrap="wrap",
    )


def _fix_panel() -> rx.Component:
    return rx.vstack(
        rx.flex(
            _tool("compare", "columns-2", "Compare"),
            _tool("erase", "eraser", "Erase"),
            _tool("restore", "brush", "Restore"),
            gap="2",
            wrap="wrap",
        ),
        rx.text("Brush size", size="2", id="brush-size-label"),
        labelled_slider(
            "brush-size-label",
            EditorState.brush,
            min=2,
            max=120,
            on_value_change=EditorState.set_brush,
        ),
        rx.divider(),
        rx.heading("AI Cut", size="3", as_="h2"),
        rx.text(
            "Draw a box around the subject, or strokes on what to keep or remove, then apply. "
            "Charged once per photo when you export.",
            size="2",
            color_scheme="gray",
        ),
        rx.flex(
            _tool("box", "square-dashed", "Box"),
            _tool("keep", "circle-plus", "Keep"),
            _tool("remove", "circle-minus", "Remove"),
            gap="2",
            wrap="wrap",
        ),
        rx.hstack(
            rx.button(
                rx.icon("sparkles", size=16),
                "Apply AI Cut",
                on_click=EditorState.apply_cut,
                disabled=EditorState.marks.length() == 0,
                size="2",
            ),
            rx.button("Clear marks", on_click=EditorState.clear_marks, variant="soft", size="2"),
            spacing="2",
            wrap="wrap",
        ),
        rx.divider(),
        rx.hstack(
            rx.switch(
                checked=EditorState.hair,
                on_change=EditorState.toggle_hair,
                id="hair-switch",
            ),
            rx.el.label("Hair refinement (charged once, at export)", html_for="hair-switch"),
            align="center",
        ),
        spacing="3",
        width="100%",
    )


def _swatch(colour: str) -> rx.Component:
    chosen = (EditorState.background == "color") & (EditorState.color == colour)
    # A real button: Enter and Space choose it from the keyboard, as a tap does.
    return rx.el.button(
        type="button",
        on_click=EditorState.set_color(colour),
        aria_label=f"Colour {colour}",
        aria_pressed=rx.cond(chosen, "true", "false"),
        width="2rem",
        height="2rem",
        padding="0",
        border_radius="50%",
        background=colour,
        border=rx.cond(chosen, "3px solid var(--accent-9)", "1px solid var(--gray-a7)"),
        cursor="pointer",
    )


def _background_panel() -> rx.Component:
    return rx.vstack(
        rx.flex(
            *[
                rx.button(
                    label,
                    on_click=EditorState.set_background(kind),
                    variant=rx.cond(EditorState.background == kind, "solid", "soft"),
                    aria_pressed=rx.cond(EditorState.background == kind, "true", "false"),
                    size="2",
                )
                for kind, label in (
                    ("transparent", "Transparent"),
                    ("color", "Colour"),
                    ("blur", "Blurred original"),
                    ("image", "Photo"),
                )
            ],
            gap="2",
            wrap="wrap",
        ),
        rx.flex(*[_swatch(c) for c in SWATCHES], gap="2", wrap="wrap"),
        rx.hstack(
            rx.el.label("Any colour", html_for="colour-picker"),
            rx.el.input(
                type="color",
                id="colour-picker",
                value=EditorState.color,
                on_change=EditorState.set_color,
            ),
            align="center",
        ),
        rx.upload.root(
            rx.button(
                rx.icon("image-up", size=16),
                "Upload a background photo",
                loading=EditorState.loading_background,
                size="2",
            ),
            id=BACKGROUND_UPLOAD_ID,
            accept={"image/*": []},
            max_files=1,
            on_drop=EditorState.upload_background(rx.upload_files(upload_id=BACKGROUND_UPLOAD_ID)),
        ),
        rx.hstack(
            rx.switch(checked=EditorState.shadow, on_change=EditorState.toggle_shadow, id="shadow"),
            rx.el.label("Shadow", html_for="shadow"),
            align="center",
        ),
        spacing="3",
        width="100%",
    )


def _percent_slider(label: str, value: rx.Var, handler: object) -> rx.Component:
    ident = label.lower().replace(" ", "-")
    return rx.vstack(
        rx.text(label, size="2", id=ident),
        labelled_slider(ident, value, min=0, max=100, on_value_change=handler),
        width="100%",
        spacing="1",
    )


def _layout_panel() -> rx.Component:
    return rx.vstack(
        rx.text("Canvas", size="2", weight="medium"),
        rx.flex(
            *[
                rx.button(
                    label,
                    on_click=EditorState.set_preset(key),
                    variant=rx.cond(EditorState.preset == key, "solid", "soft"),
                    size="2",
                )
                for key, label in (
                    ("original", "Original"),
                    ("1:1", "Square"),
                    ("4:5", "4:5"),
                    ("16:9", "16:9"),
                    ("marketplace", "Marketplace white"),
                )
            ],
            gap="2",
            wrap="wrap",
        ),
        rx.hstack(
            rx.switch(checked=EditorState.crop, on_change=EditorState.toggle_crop, id="crop"),
            rx.el.label("Crop to subject", html_for="crop"),
            align="center",
        ),
        rx.text("Margin around the subject: ", EditorState.margin, " px", size="2", id="margin"),
        labelled_slider(
            "margin", EditorState.margin, min=0, max=400, on_value_commit=EditorState.set_margin
        ),
        _percent_slider("Position across", EditorState.position_x, EditorState.set_position_x),
        _percent_slider("Position down", EditorState.position_y, EditorState.set_position_y),
        spacing="3",
        width="100%",
    )


def _export_panel() -> rx.Component:
    return rx.vstack(
        rx.el.label("Format", html_for="export-format"),
        rx.select.root(
            rx.select.trigger(id="export-format"),
            rx.select.content(
                rx.select.item("PNG (transparency kept)", value="png"),
                rx.select.item("JPEG", value="jpeg"),
                rx.select.item("WebP", value="webp"),
            ),
            value=EditorState.export_format,
            on_change=EditorState.set_export_format,
        ),
        rx.text("Quality (JPEG, WebP): ", EditorState.quality, size="2", id="quality"),
        labelled_slider(
            "quality", EditorState.quality, min=1, max=100, on_value_change=EditorState.set_quality
        ),
        rx.el.label("Size", html_for="export-size"),
        rx.select.root(
            rx.select.trigger(id="export-size"),
            rx.select.content(
                rx.select.item("Full resolution", value="full"),
                rx.select.item("2048 px long side", value="2048"),
                rx.select.item("1024 px long side", value="1024"),
            ),
            value=EditorState.export_size,
            on_change=EditorState.set_export_size,
        ),
        rx.text(
            rx.cond(
                EditorState.cost == 0,
                "Cost: free (background removal is paid; re-exports cost nothing).",
                "Cost: "
                + EditorState.cost_label
                + " credits for "
                + EditorState.unpaid_label
                + ", once for this photo. You have "
                + EditorState.balance_label
                + ".",
            ),
            size="2",
        ),
        rx.cond(
            EditorState.can_afford,
            rx.button(
                rx.icon("download", size=16),
                EditorState.export_label,
                on_click=EditorState.start_export,
                loading=EditorState.exporting,
                size="3",
            ),
            rx.callout(
                rx.vstack(
                    rx.text(
                        "Not enough credits for this export: it costs ",
                        EditorState.cost_label,
                        " and you have ",
                        EditorState.balance_label,
                        ". Top up, or undo the AI Cut and turn hair refinement off.",
                    ),
                    top_up_offer(PlanCatalog.from_settings(get_settings())),
                    spacing="2",
                ),
                icon="coins",
                color_scheme="amber",
                width="100%",
            ),
        ),
        rx.cond(
            EditorState.exporting,
            rx.vstack(
                rx.text("Exporting at full resolution…", size="2"),
                rx.progress(width="100%"),
                role="status",
                width="100%",
            ),
        ),
        rx.cond(
            EditorState.export_url != "",
            rx.link(
                rx.icon("download", size=16),
                "Download ",
                EditorState.export_name,
                href=EditorState.export_url,
                download=EditorState.export_name,
                reload_document=True,
            ),
        ),
        purchase_feedback(),
        spacing="3",
        width="100%",
    )


def _editor() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading("Edit ", EditorState.original_name, size="5", as_="h1"),
            rx.text(EditorState.size_label, size="2", color_scheme="gray"),
            align="baseline",
            wrap="wrap",
        ),
        editor_canvas(),
        _history(),
        rx.tabs.root(
            rx.tabs.list(
                rx.tabs.trigger("Fix", value="fix"),
                rx.tabs.trigger("Background", value="background"),
                rx.tabs.trigger("Layout", value="layout"),
                rx.tabs.trigger("Export", value="export"),
            ),
            rx.tabs.content(_fix_panel(), value="fix", padding_top="1rem"),
            rx.tabs.content(_background_panel(), value="background", padding_top="1rem"),
            rx.tabs.content(_layout_panel(), value="layout", padding_top="1rem"),
            rx.tabs.content(_export_panel(), value="export", padding_top="1rem"),
            default_value="fix",
            width="100%",
        ),
        rx.text("Preview drawn in ", EditorState.preview_ms, " ms", size="1", color_scheme="gray"),
        width="100%",
        spacing="3",
    )


def editor() -> rx.Component:
    return page_shell(
        _messages(),
        rx.cond(
            EditorState.ready,
            _editor(),
            rx.cond(
                EditorState.error == "",
                rx.hstack(rx.spinner(), rx.text("Opening the editor…"), role="status"),
                rx.link("Back to your photos", href=routes.HOME),
            ),
        ),
    )
