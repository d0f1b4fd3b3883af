"""Before/after view: the original beside the cutout on a checkerboard (stacked on phones)."""

from __future__ import annotations

import reflex as rx

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


def _panel(label: str, image: rx.Component, **style: object) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium", color_scheme="gray"),
        rx.center(image, width="100%", border_radius="var(--radius-3)", overflow="hidden", **style),
        width="100%",
        spacing="1",
    )


def before_after(
    before_src: rx.Var[str], after_src: rx.Var[str], name: rx.Var[str]
) -> rx.Component:
    image_style = {
        "max_width": "100%",
        "max_height": ["60vh", "60vh", "28rem"],
        "object_fit": "contain",
    }
    return rx.grid(
        _panel(
            "Before",
            rx.image(src=before_src, alt="Original: " + name, **image_style),
            background_color="var(--gray-a3)",
        ),
        _panel(
            "After",
            rx.image(src=after_src, alt="Cutout: " + name, **image_style),
            **CHECKERBOARD,
        ),
        columns=rx.breakpoints(initial="1", sm="2"),
        spacing="4",
        width="100%",
    )
