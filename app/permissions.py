"""Files Cutout writes are readable by its own user only: the database, results, Reflex's state
pickles and everything else under the data folder."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from app.settings import Settings

log = logging.getLogger("cutout")

PRIVATE_UMASK = 0o077


def make_private(settings: Settings, *more: Path) -> None:
    """New files get no group or other bits (umask), and what is already there loses them:
    the data folder and any further folders (Reflex's `.states`)."""
    os.umask(PRIVATE_UMASK)
    for root in (settings.data_dir, *more):
        if root.exists():
            _restrict(root)


def _restrict(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        try:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            path.chmod(stat.S_IMODE(mode) & 0o700)
        except OSError as error:
            # Someone else's file in our folder: say so, and keep serving.
            log.warning("could not make %s private: %s", path, error.strerror)
