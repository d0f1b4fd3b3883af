"""The in-process worker pool: model work runs here, never on the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pools: dict[int, ThreadPoolExecutor] = {}


def pool(size: int) -> ThreadPoolExecutor:
    """One pool per size per process; onnxruntime and Pillow release the GIL while they work."""
    if size not in _pools:
        _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cutout-worker")
    return _pools[size]


async def run_in_pool(size: int, fn: Callable[..., T], /, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool(size), functools.partial(fn, **kwargs))
