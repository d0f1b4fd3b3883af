"""The editor's stage: the original under the edited preview, a draggable divider between them,
and a drawing layer for brush and AI Cut marks. Pointer work happens in /editor.js."""

from __future__ import annotations

import reflex as rx

from app.components.before_after import CHECKERBOARD
from app.state.editor import EditorState

SCRIPT = "/editor.js"


def _layer(**style: object) -> dict[str, object]:
    return {
        "position": "absolute",
        "inset": "0",
        "width": "100%",
        "height": "100%",
        "object_fit": "contain",
        **style,
    }


def editor_canvas() -> rx.Component:
    comparing = EditorState.mode == "compare"
    surface = rx.box(
        rx.image(
            src=EditorState.before_url,
            alt="Before: " + EditorState.original_name,
            id="editor-before",
            draggable=False,
            style=_layer(display=rx.cond(comparing, "block", "none")),
        ),
        rx.image(
            src=EditorState.preview_url,
            alt="After: " + EditorState.original_name,
            id="editor-after",
            draggable=False,
            style=_layer(
                clip_path=rx.cond(comparing, "inset(0 0 0 var(--split))", "none"),
                **CHECKERBOARD,
            ),
        ),
        rx.el.canvas(
            id="editor-overlay",
            style=_layer(pointer_events="none", object_fit="fill"),
        ),
        rx.cond(
            comparing,
            rx.box(
                position="absolute",
                top="0",
                bottom="0",
                left="var(--split)",
                width="2px",
                margin_left="-1px",
                background="white",
                box_shadow="0 0 0 1px rgba(0,0,0,0.35)",
                pointer_events="none",
            ),
        ),
        id="editor-surface",
        position="relative",
        width="100%",
        height="100%",
        transform_origin="0 0",
        touch_action="none",
        cursor=rx.cond(comparing, "ew-resize", "crosshair"),
        style={"--split": "50%"},
    )
    return rx.vstack(
        rx.box(
            surface,
            rx.cond(
                EditorState.previewing,
                rx.hstack(
                    rx.spinner(size="1"),
                    rx.text("Updating preview…", size="1"),
                    position="absolute",
                    top="0.5rem",
                    left="0.5rem",
                    padding="0.25rem 0.5rem",
                    background="var(--color-panel-solid)",
                    border_radius="var(--radius-2)",
                    role="status",
                    align="center",
                ),
            ),
            id="editor-stage",
            custom_attrs={
                "data-mode": EditorState.mode,
                "data-brush": EditorState.brush,
                "data-marks": EditorState.marks.length(),
            },
            position="relative",
            overflow="hidden",
            width=EditorState.stage_width,
            aspect_ratio=EditorState.view_ratio,
            margin_x="auto",
            border="1px solid var(--gray-a5)",
            border_radius="var(--radius-3)",
            background_color="var(--gray-a2)",
            user_select="none",
        ),
        rx.cond(
            comparing,
            rx.el.input(
                type="range",
                id="editor-divider",
                min=0,
                max=100,
                default_value=50,
                aria_label="Before and after divider",
                # The brand's accent, like the editor's other sliders, not the browser's blue.
                style={"width": "100%", "accent_color": "var(--accent-9)"},
            ),
        ),
        # The canvas script writes each finished stroke here (JSON) to hand it to the server.
        rx.el.input(
            id="editor-marks",
            type="text",
            on_change=EditorState.receive_marks,
            aria_hidden="true",
            tab_index=-1,
            style={"display": "none"},
        ),
        rx.script(src=SCRIPT),
        width="100%",
        spacing="2",
        align="center",
    )
