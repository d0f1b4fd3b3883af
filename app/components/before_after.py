"""Before/after compare slider: the cutout on a checkerboard, the original laid over it and
clipped at the handle. One image's height on a phone, not two stacked images."""

from __future__ import annotations

import reflex as rx
from reflex.experimental import ClientStateVar

CHECKERBOARD = {
    "background_color": "#ffffff",
    "background_image": (
        "linear-gradient(45deg, #d4d4d8 25%, transparent 25%),"
        "linear-gradient(-45deg, #d4d4d8 25%, transparent 25%),"
        "linear-gradient(45deg, transparent 75%, #d4d4d8 75%),"
        "linear-gradient(-45deg, transparent 75%, #d4d4d8 75%)"
    ),
    "background_size": "20px 20px",
    "background_position": "0 0, 0 10px, 10px -10px, -10px 0",
}

# Where the handle is, in percent from the left: kept in the browser, so dragging never waits
# for the server.
POSITION = ClientStateVar.create("compare_position", default=50)


def before_after(
    before_src: rx.Var[str],
    after_src: rx.Var[str],
    name: rx.Var[str],
    *,
    max_height: str = "min(58vh, 34rem)",
) -> rx.Component:
    position = POSITION.value.to(str) + "%"
    image_style = {
        "display": "block",
        "max_width": "100%",
        "max_height": max_height,
        "width": "auto",
        "height": "auto",
        "object_fit": "contain",
    }
    return rx.box(
        rx.box(
            rx.image(src=after_src, alt="Cutout: " + name, **image_style),
            rx.image(
                src=before_src,
                alt="Original: " + name,
                position="absolute",
                inset="0",
                width="100%",
                height="100%",
                object_fit="contain",
                background_color="var(--gray-3)",
                clip_path="inset(0 calc(100% - " + position + ") 0 0)",
                pointer_events="none",
            ),
            rx.box(  # the handle: a line with a grip
                rx.center(
                    rx.icon("chevrons-left-right", size=18),
                    width="2rem",
                    height="2rem",
                    border_radius="9999px",
                    background_color="white",
                    color="var(--gray-12)",
                    box_shadow="0 1px 4px rgba(0,0,0,0.35)",
                    position="absolute",
                    top="50%",
                    left="-1rem",
                    transform="translateY(-50%)",
                ),
                position="absolute",
                top="0",
                bottom="0",
                left=position,
                width="2px",
                margin_left="-1px",
                background_color="white",
                box_shadow="0 0 3px rgba(0,0,0,0.5)",
                pointer_events="none",
            ),
            rx.el.input(
                type="range",
                min="0",
                max="100",
                default_value="50",
                on_change=POSITION.set,
                aria_label="Compare the original and the cutout",
                style={
                    "position": "absolute",
                    "inset": "0",
                    "width": "100%",
                    "height": "100%",
                    "margin": "0",
                    "opacity": "0",
                    "cursor": "ew-resize",
                    "touch_action": "pan-y",
                },
            ),
            position="relative",
            display="inline-block",
            max_width="100%",
            line_height="0",
            border_radius="var(--radius-3)",
            overflow="hidden",
            **CHECKERBOARD,
        ),
        rx.flex(
            rx.text("Before", size="1", color_scheme="gray"),
            rx.text("After", size="1", color_scheme="gray"),
            justify="between",
            width="100%",
        ),
        width="100%",
        text_align="center",
    )
