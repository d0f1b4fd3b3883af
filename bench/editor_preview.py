"""How long the editor's preview takes to redraw after each kind of change, on a phone photo.

Run: NUMBA_CACHE_DIR=data/numba-cache .venv/bin/python bench/editor_preview.py [--runs 7] [--mp 12]
A real account, job and cutout in a temporary data folder (SQLite); each change is timed as
the page's preview event does it (render_preview: mask edits replayed on the reduced copy,
composed, encoded, written). Prints the median and range of --runs per change.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.cli.setup import migrate  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.services.clock import SystemClock  # noqa: E402
from app.services.imaging import aicut, retouch  # noqa: E402
from app.services.imaging.editor import EditSpec  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.usecases import cutouts, editing  # noqa: E402


def phone_photo(megapixels: float) -> bytes:
    pixels = skimage.data.astronaut()
    side = round((megapixels * 1e6 / (4 * 3)) ** 0.5)
    big = cv2.resize(pixels, (4 * side, 3 * side), interpolation=cv2.INTER_CUBIC)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--mp", type=float, default=12.0, help="photo size in megapixels")
    args = parser.parse_args()

    from tests.conftest import confirmed_account  # the tests' own way to make an account

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder) / "data", models_dir=REPO / "data" / "models", database_url=""
        )
        settings.data_dir.mkdir(parents=True)
        os.chdir(REPO)
        migrate(settings, url=settings.db_url)
        db = make_engine(settings.db_url)
        clock = SystemClock()
        owner = confirmed_account(db, clock, settings, "bench@example.com").id
        job = cutouts.submit_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=owner,
            filename="phone.jpg",
            data=phone_photo(args.mp),
        )
        cutouts.process_cutout(
            db=db, settings=settings, clock=clock, account_id=owner, job_id=job.id
        )
        started = time.perf_counter()
        editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job.id)
        print(
            f"photo {job.width}x{job.height}; first open (working copy) "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )
        w, h = job.width, job.height

        def preview(spec: EditSpec) -> Callable[[], None]:
            def run() -> None:
                editing.render_preview(
                    db=db, settings=settings, account_id=owner, job_id=job.id, spec=spec
                )

            return run

        def stroke(index: int) -> None:
            y = h * (0.5 + 0.01 * (index % 20))
            brush = retouch.Brush("erase", ((w * 0.4, y), (w * 0.6, y)), w * 0.01)
            editing.add_step(db=db, settings=settings, account_id=owner, job_id=job.id, step=brush)
            preview(EditSpec(background="color", color="#1e90ff"))()

        def ai_cut(index: int) -> None:
            keep = aicut.Stroke(((w * 0.05, h * 0.05), (w * 0.2, h * 0.05 + index)), w * 0.01)
            cut = retouch.Cut(aicut.Marks(keep=(keep,)))
            editing.add_step(db=db, settings=settings, account_id=owner, job_id=job.id, step=cut)
            preview(EditSpec())()

        def undo(_: int) -> None:
            editing.move_in_history(
                db=db, settings=settings, account_id=owner, job_id=job.id, by=-1
            )
            preview(EditSpec())()

        def hair(index: int) -> None:
            editing.set_hair(
                db=db, settings=settings, account_id=owner, job_id=job.id, on=index % 2 == 0
            )
            preview(EditSpec())()

        changes: list[tuple[str, Callable[[int], None]]] = [
            ("colour background", lambda i: preview(EditSpec(background="color"))()),
            ("blurred original", lambda i: preview(EditSpec(background="blur"))()),
            (
                "shadow + crop + 4:5",
                lambda i: preview(EditSpec(shadow=True, crop=True, margin=40, canvas="4:5"))(),
            ),
            ("erase stroke", stroke),
            ("AI Cut (keep stroke)", ai_cut),
            ("undo", undo),
            ("hair refinement on/off", hair),
        ]
        print(f"{'change':24} median     range   ({args.runs} runs)")
        for name, change in changes:
            times = []
            for index in range(args.runs):
                started = time.perf_counter()
                change(index)
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"{name:24} {statistics.median(times):6.0f} ms  "
                f"{min(times):.0f}-{max(times):.0f} ms"
            )
        print(f"load (1-min average): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        db.dispose()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
