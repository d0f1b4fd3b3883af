"""A job's editor files, in an `editor/` folder beside its upload: the edit history (so a
reloaded or slept tab finds every stroke again), the reduced working copy the preview is drawn
from, an uploaded background, the latest preview and the latest export."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.jobs.storage import job_dir
from app.settings import Settings

HISTORY = "history.json"
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


def export_name(extension: str) -> str:
    return f"{EXPORT_STEM}.{extension}"
