"""A drop zone that is also the file picker (on a phone the picker offers the camera)."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ArrayVar, ObjectVar

from app.services.imaging.images import ACCEPT_MIME


def accept_images() -> dict[str, list[str]]:
    # "image/*" makes phones offer the camera; the extensions catch HEIC files whose browser
    # MIME type is empty. The server checks the real content anyway.
    extensions = sorted({ext for exts in ACCEPT_MIME.values() for ext in exts})
    return {"image/*": extensions}


def describe_rejections(rejected: rx.Var) -> rx.Var:
    """Reduce react-dropzone's rejections (File objects) to plain strings in the browser."""
    items = rejected.to(ArrayVar, list[dict[str, Any]])

    def describe(record: ObjectVar) -> rx.Var:
        record = record.to(ObjectVar, dict[str, Any])
        file = record["file"].to(ObjectVar, dict[str, Any])
        codes = (
            record["errors"].to(ArrayVar, list[dict[str, Any]]).map(lambda e: e["code"]).join(",")
        )
        return f"{file['name']}|{codes}"

    return items.map(describe)


def label_file_input(component: rx.Component, label: str) -> None:
    """react-dropzone's hidden file input gets a name for screen readers (and Lighthouse)."""
    for child in component.children:
        if getattr(child, "type", None) is not None and str(child.type).strip('"') == "file":
            child.custom_attrs["aria-label"] = label
        label_file_input(child, label)


def dropzone(
    upload_id: str,
    *,
    on_drop: rx.EventHandler,
    on_progress: rx.EventHandler,
    on_rejected: rx.EventHandler,
    max_bytes: int,
    disabled: rx.Var[bool] | bool = False,
) -> rx.Component:
    zone = rx.upload(
        rx.vstack(
            rx.icon("image-up", size=40, color="var(--accent-9)"),
            rx.text("Drop a photo here", size="4", weight="bold"),
            rx.text(
                f"JPEG, PNG, WebP, HEIC, GIF, BMP or TIFF · up to {max_bytes // (1024 * 1024)} MB "
                "and 25 megapixels",
                size="2",
                color_scheme="gray",
                align="center",
            ),
            rx.button(
                rx.icon("camera", size=16), "Choose or take a photo", size="3", type="button"
            ),
            align="center",
            spacing="3",
        ),
        id=upload_id,
        accept=accept_images(),
        multiple=False,
        max_files=1,
        max_size=max_bytes,
        disabled=disabled,
        on_drop=on_drop(rx.upload_files(upload_id=upload_id, on_upload_progress=on_progress)),
        on_drop_rejected=lambda rejected: on_rejected(describe_rejections(rejected)),
        border="2px dashed var(--accent-7)",
        border_radius="var(--radius-4)",
        padding=["1.5rem 1rem", "2rem", "3rem"],
        width="100%",
        cursor="pointer",
        background_color="var(--accent-a2)",
    )
    label_file_input(zone, "Choose a photo")
    return zone
