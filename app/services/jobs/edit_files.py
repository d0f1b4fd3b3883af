"""A job's editor files, in an `editor/` folder beside its upload: the edit history (so a
reloaded or slept tab finds every stroke again), the look it was last drawn with (background and
layout), the reduced working copy the preview is drawn from, an uploaded background, the latest
preview and the latest export."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.services.jobs.storage import job_dir
from app.settings import Settings

HISTORY = "history.json"
LOOK = "look.json"
WORK = "work.png"  # reduced original with the model's mask as alpha
BACKGROUND = "background.jpg"
BACKGROUND_SMALL = "background-small.jpg"
PREVIEW = "preview.webp"
EXPORT_STEM = "export"


@dataclass
class History:
    """Steps in their JSON form; `position` of them are in effect (the rest can be redone)."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    hair: bool = False
    # Bumped before each charged export, so every attempt reserves under keys of its own.
    attempt: int = 0

    @property
    def active(self) -> list[dict[str, Any]]:
        return self.steps[: self.position]


def folder(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / "editor"


def path(settings: Settings, job_id: str, name: str) -> Path:
    return folder(settings, job_id) / name


def stage(target: Path, data: bytes) -> Path:
    """`data` written beside `target` under a name of its own (two writers never share one);
    `os.replace` it onto `target` to publish, or unlink it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f"{target.name}.{secrets.token_hex(6)}.part")
    staged.write_bytes(data)
    return staged


def write_atomic(target: Path, data: bytes) -> None:
    """The whole file or the previous one, never half: a reader may be serving it."""
    os.replace(stage(target, data), target)


def load_history(settings: Settings, job_id: str) -> History:
    try:
        raw = json.loads(path(settings, job_id, HISTORY).read_text())
    except FileNotFoundError:
        return History()
    return History(
        steps=list(raw["steps"]),
        position=int(raw["position"]),
        hair=bool(raw["hair"]),
        attempt=int(raw["attempt"]),
    )


def save_history(settings: Settings, job_id: str, history: History) -> None:
    data = {
        "steps": history.steps,
        "position": history.position,
        "hair": history.hair,
        "attempt": history.attempt,
    }
    write_atomic(path(settings, job_id, HISTORY), json.dumps(data).encode())


@dataclass(frozen=True)
class Look:
    """The editor's background, layout and export controls as the photo was last drawn or
    exported, so that it reopens as it was left. The page checks each value again before
    using it."""

    background: str = "transparent"
    color: str = "#ffffff"
    shadow: bool = False
    crop: bool = False
    margin: int = 0  # photo pixels
    preset: str = "original"
    position_x: int = 50  # percent
    position_y: int = 50
    export_format: str = "png"
    quality: int = 90
    export_size: str = "full"


def load_look(settings: Settings, job_id: str) -> Look:
    """The last look, or the defaults; a field of the wrong type (an older or damaged file)
    falls back to its default alone."""
    try:
        raw = json.loads(path(settings, job_id, LOOK).read_text())
    except (FileNotFoundError, ValueError):
        return Look()
    if not isinstance(raw, dict):
        return Look()
    defaults = Look()
    return Look(
        **{
            f.name: raw[f.name]
            for f in fields(Look)
            if type(raw.get(f.name)) is type(getattr(defaults, f.name))
        }
    )


def save_look(settings: Settings, job_id: str, look: Look) -> None:
    write_atomic(path(settings, job_id, LOOK), json.dumps(asdict(look)).encode())


def export_name(extension: str) -> str:
    return f"{EXPORT_STEM}.{extension}"
