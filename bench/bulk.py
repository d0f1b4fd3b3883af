"""Bulk processing figures: throughput against `cutout batch`, fair share, the ZIP's memory.

Run: NUMBA_CACHE_DIR=data/numba-cache .venv/bin/python bench/bulk.py [--runs 3] [--photos 20]

1. Throughput: the same phone photos (12 MP JPEGs made from scikit-image's, nothing
   downloaded) through `cutout batch` and through a web bulk batch (upload checks excluded,
   start to finish: reserve, model, capture per photo, exactly as /bulk runs it), alternated,
   images per minute as median and range of --runs.
2. Fair share: how long another account's single photo takes while a batch is running,
   against the same photo alone.
3. ZIP: a batch of --zip-photos 12 MP results downloaded as one ZIP from the real HTTP route
   served by uvicorn in its own process; prints that process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
MODELS_DIR = REPO / "data" / "models"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
PHONE = (4032, 3024)  # a 12 MP phone photo


def phone_photo(index: int) -> bytes:
    pixels = getattr(skimage.data, PHOTOS[index % len(PHOTOS)])()[..., :3]
    if index % 2:
        pixels = pixels[:, ::-1]
    big = cv2.resize(np.ascontiguousarray(pixels), PHONE, interpolation=cv2.INTER_CUBIC)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} (range {min(values):.1f}-{max(values):.1f})"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


def cli_batch(folder: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "cutout"), "batch", str(folder), str(out)],
        check=True,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "U2NET_HOME": str(MODELS_DIR)},
    )
    return time.perf_counter() - start


def web_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "CUTOUT_DATA_DIR": str(data_dir), "U2NET_HOME": str(MODELS_DIR)}


def fresh_site(root: Path, name: str):  # type: ignore[no-untyped-def]
    """A migrated database and data folder, and the settings and engine for it."""
    from app.cli.setup import migrate
    from app.db import make_engine
    from app.settings import Settings

    data_dir = root / name
    data_dir.mkdir(parents=True)
    settings = Settings(data_dir=data_dir, models_dir=MODELS_DIR, database_url="")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        migrate(settings, url=settings.db_url)
    finally:
        os.chdir(cwd)
    return settings, make_engine(settings.db_url)


def rich_account(db, clock, settings, email: str) -> int:  # type: ignore[no-untyped-def]
    from app.db import writing
    from app.services.identity.accounts import create_account

    with writing(db) as session:
        account = create_account(
            session=session,
            email=email,
            password_hash=None,
            clock=clock,
            trial_credits=1000,
            lot_valid_days=90,
        )
        assert account.id is not None
        return account.id


def queued_batch(db, settings, clock, account_id: int, photos: list[bytes]) -> str:  # type: ignore[no-untyped-def]
    from app.usecases import bulk

    batch_id = bulk.new_batch(db=db, settings=settings, clock=clock, account_id=account_id)
    for index, data in enumerate(photos):
        bulk.add_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=account_id,
            batch_id=batch_id,
            filename=f"IMG_{index:04d}.jpg",
            data=data,
        )
    return batch_id


def web_batch(root: Path, run: int, photos: list[bytes]) -> float:
    from app.services.clock import SystemClock
    from app.usecases import bulk

    settings, db = fresh_site(root, f"web-{run}")
    clock = SystemClock()
    account = rich_account(db, clock, settings, f"bench{run}@example.com")
    batch_id = queued_batch(db, settings, clock, account, photos)
    bulk.start(db=db, account_id=account, batch_id=batch_id)
    start = time.perf_counter()
    asyncio.run(
        bulk.drive(db=db, settings=settings, clock=clock, account_id=account, batch_id=batch_id)
    )
    elapsed = time.perf_counter() - start
    found = bulk.overview(
        db=db, clock=clock, account_id=account, batch_id=batch_id, since=clock.now()
    )
    assert found.batch is not None and found.batch.count("done") == len(photos), found.batch
    db.dispose()
    shutil.rmtree(settings.data_dir)
    return elapsed


def throughput(root: Path, runs: int, count: int) -> None:
    photos = [phone_photo(i) for i in range(count)]
    folder = root / "photos"
    folder.mkdir()
    for index, data in enumerate(photos):
        (folder / f"IMG_{index:04d}.jpg").write_bytes(data)
    cli, web = [], []
    for run in range(runs):
        cli.append(60 * count / cli_batch(folder, root / "cli-out"))
        web.append(60 * count / web_batch(root, run, photos))
        print(f"  run {run + 1}: cutout batch {cli[-1]:.1f}/min, bulk {web[-1]:.1f}/min")
    print(f"{count} phone photos (12 MP), {load()}")
    print(f"  cutout batch: {spread(cli)} images/min")
    print(f"  web bulk:     {spread(web)} images/min")


def fair_share(root: Path, runs: int, count: int) -> None:
    from app.services.clock import SystemClock
    from app.services.jobs.workers import run_in_pool
    from app.usecases import bulk, cutouts

    settings, db = fresh_site(root, "fair")
    clock = SystemClock()
    batcher = rich_account(db, clock, settings, "batcher@example.com")
    single = rich_account(db, clock, settings, "single@example.com")
    photos = [phone_photo(i) for i in range(count)]

    async def one_photo() -> float:
        job = cutouts.submit_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=single,
            filename="single.jpg",
            data=photos[0],
        )
        start = time.perf_counter()
        await run_in_pool(
            settings.workers,
            cutouts.process_cutout,
            db=db,
            settings=settings,
            clock=clock,
            account_id=single,
            job_id=job.id,
        )
        return time.perf_counter() - start

    async def during_batch() -> float:
        batch_id = queued_batch(db, settings, clock, batcher, photos)
        bulk.start(db=db, account_id=batcher, batch_id=batch_id)
        driver = asyncio.create_task(
            bulk.drive(db=db, settings=settings, clock=clock, account_id=batcher, batch_id=batch_id)
        )
        await asyncio.sleep(3)  # the batch is well under way
        waited = await one_photo()
        bulk.cancel_rest(db=db, account_id=batcher, batch_id=batch_id)
        await driver
        return waited

    alone = [asyncio.run(one_photo()) for _ in range(runs)]
    shared = [asyncio.run(during_batch()) for _ in range(runs)]
    print(f"another account's single 12 MP photo (workers={settings.workers}), {load()}")
    print(f"  alone:               {spread(alone)} s")
    print(f"  while a batch runs:  {spread(shared)} s")
    db.dispose()


SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from app.api.bulk_zip import bulk_zip_routes
uvicorn.run(Starlette(routes=bulk_zip_routes), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def zip_memory(root: Path, count: int) -> None:
    """Results made once through the real pipeline, then linked into every job's folder."""
    from app.db import writing
    from app.models.bulk import BatchStatus
    from app.services.clock import SystemClock
    from app.services.identity import auth
    from app.services.jobs import bulk as batches
    from app.services.jobs import cutouts as jobs
    from app.services.jobs import storage
    from app.services.jobs.storage import JobFile
    from app.usecases import bulk

    settings, db = fresh_site(root, "zip")
    clock = SystemClock()
    account = rich_account(db, clock, settings, "zip@example.com")
    batch_id = queued_batch(db, settings, clock, account, [phone_photo(0)])
    bulk.start(db=db, account_id=account, batch_id=batch_id)
    asyncio.run(
        bulk.drive(db=db, settings=settings, clock=clock, account_id=account, batch_id=batch_id)
    )
    first = bulk.overview(
        db=db, clock=clock, account_id=account, batch_id=batch_id, since=clock.now()
    ).batch
    assert first is not None
    result = storage.file_path(settings, first.items[0].job_id, JobFile.cutout)
    with writing(db) as session:
        batch = batches.owned(session, f"account:{account}", batch_id)
        for index in range(1, count):
            job_id = f"bench-{index}"
            storage.job_dir(settings, job_id).mkdir(parents=True)
            os.link(result, storage.file_path(settings, job_id, JobFile.cutout))
            jobs.add_job(
                session=session,
                clock=clock,
                settings=settings,
                job_id=job_id,
                owner=batch.owner,
                name=f"IMG_{index:04d}.jpg",
                width=PHONE[0],
                height=PHONE[1],
            )
            batches.add_item(session=session, batch=batch, job_id=job_id, limit=count)
            jobs.start_processing(session=session, clock=clock, owner=batch.owner, job_id=job_id)
            jobs.finish(session=session, clock=clock, job_id=job_id, attempt=0)
        batch.status = BatchStatus.finished
        session.add(batch)
    with writing(db) as session:  # a session as sign-in opens it: the route checks the cookie
        token = auth.create_session(
            session=session,
            clock=clock,
            account_id=account,
            user_agent="bench",
            lifetime=timedelta(days=1),
        )
    port = 8765
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], cwd=REPO, env=web_env(settings.data_dir)
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/bulk-zip/x", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        before = peak_rss_mb(server.pid)
        size = 0
        start = time.perf_counter()
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{port}/bulk-zip/{batch_id}",
            cookies={"cutout_session": token},
            timeout=600,
        ) as response:
            assert response.status_code == 200, response.read()
            for chunk in response.iter_bytes():
                size += len(chunk)
        elapsed = time.perf_counter() - start
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait()
    print(f"ZIP of {count} x 12 MP results ({size / 2**20:.0f} MiB) in {elapsed:.1f} s, {load()}")
    print(f"  server peak RSS: {peak:.0f} MiB (idle after start-up: {before:.0f} MiB)")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--zip-photos", type=int, default=50)
    parser.add_argument("--only", choices=("throughput", "fair", "zip"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cutout-bulk-bench-") as tmp:
        root = Path(tmp)
        if args.only in (None, "zip"):
            zip_memory(root, args.zip_photos)
        if args.only in (None, "throughput"):
            throughput(root, args.runs, args.photos)
        if args.only in (None, "fair"):
            fair_share(root, args.runs, min(args.photos, 8))


if __name__ == "__main__":
    main()
