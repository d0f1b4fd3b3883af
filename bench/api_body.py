"""Memory an API call's body takes while its fields are read, as a multiple of the photo's size.

A remove.bg client sends the photo as a multipart form (most clients), as base64 in JSON, or
url-encoded. This feeds `app.api.removebg`'s field reader a body of each kind, in 64 KB chunks
as a server hands it over, and prints the peak of Python's allocations (tracemalloc) while the
fields are read, divided by the photo's size. The photo's bytes themselves must be held once
(the model needs them): 1.0x is the floor.

    .venv/bin/python bench/api_body.py [--mb 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tracemalloc
from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.types import Message

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.api.removebg import _fields  # noqa: E402
from app.settings import Settings  # noqa: E402

CHUNK = 64 * 1024
BOUNDARY = "cutoutbenchboundary"


def multipart(photo: bytes) -> tuple[str, bytes]:
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\nauto\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image_file\"; "
        f"filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return f"multipart/form-data; boundary={BOUNDARY}", head + photo + tail


def as_json(photo: bytes) -> tuple[str, bytes]:
    return "application/json", json.dumps(
        {"image_file_b64": base64.b64encode(photo).decode(), "size": "auto"}
    ).encode()


def urlencoded(photo: bytes) -> tuple[str, bytes]:
    body = urlencode({"image_file_b64": base64.b64encode(photo).decode(), "size": "auto"})
    return "application/x-www-form-urlencoded", body.encode()


def peak_while_reading(content_type: str, body: bytes, settings: Settings) -> int:
    """Peak bytes allocated while the fields are read (the body's own bytes not counted)."""
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1.0/removebg",
        "headers": [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "query_string": b"",
    }

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def read() -> tuple[dict, int]:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        fields = await _fields(Request(scope, receive), settings)
        peak = tracemalloc.get_traced_memory()[1] - base  # before the event loop's teardown
        tracemalloc.stop()
        return fields, peak

    fields, peak = asyncio.run(read())
    assert fields.get("image_file") or fields.get("image_file_b64"), "the photo was not read"
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="the photo's size in MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    photo = os.urandom(int(args.mb * 2**20))
    print(
        f"photo {args.mb:g} MB, body cap {settings.max_upload_bytes * 3 / 2**20:.0f} MB; "
        f"peak allocations while the fields are read, as a multiple of the photo's size, "
        f"median (range) of {args.runs} runs"
    )
    for name, build in (("multipart", multipart), ("json", as_json), ("urlencoded", urlencoded)):
        content_type, body = build(photo)
        ratios = sorted(
            peak_while_reading(content_type, body, settings) / len(photo) for _ in range(args.runs)
        )
        print(
            f"{name:<11} {statistics.median(ratios):5.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
