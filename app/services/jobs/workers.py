"""The in-process worker pool: model work runs here, never on the event loop.

The pool is shared fairly between accounts: each account has its own queue, free workers take
the next task round-robin across the accounts that have work waiting, and no account holds more
than `per_account` workers at once. A 50-photo batch therefore never makes another person's
single photo wait for more than the tasks already running.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Task:
    future: Future
    call: Callable[[], Any]


@dataclass
class _Account:
    waiting: deque[_Task] = field(default_factory=deque)
    running: int = 0


class FairPool:
    """Worker threads shared round-robin across accounts, with a cap per account.

    onnxruntime and Pillow release the GIL while they work, so threads run images in parallel.
    """

    def __init__(self, workers: int, per_account: int, *, name: str = "cutout-worker") -> None:
        if workers < 1 or per_account < 1:
            raise ValueError("a pool needs at least one worker and one per account")
        self.workers = workers
        self.per_account = min(per_account, workers)
        self._name = name
        self._lock = threading.Condition()
        # Accounts in turn order: the one served last moves to the end.
        self._accounts: OrderedDict[Hashable, _Account] = OrderedDict()
        self._threads: list[threading.Thread] = []

    def submit(self, account: Hashable, fn: Callable[..., T], /, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if account not in self._accounts:
                self._accounts[account] = _Account()
                # Never served yet: first in line, ahead of accounts that just had a turn.
                self._accounts.move_to_end(account, last=False)
            self._accounts[account].waiting.append(_Task(future, functools.partial(fn, **kwargs)))
            if len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._lock.notify()
        return future

    def waiting(self, account: Hashable) -> int:
        with self._lock:
            found = self._accounts.get(account)
            return len(found.waiting) if found else 0

    def _take(self) -> tuple[Hashable, _Task] | None:
        """The next task in round-robin order among accounts below their cap (lock held)."""
        for key, account in self._accounts.items():
            if account.waiting and account.running < self.per_account:
                task = account.waiting.popleft()
                account.running += 1
                self._accounts.move_to_end(key)
                return key, task
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                taken = self._take()
                while taken is None:
                    self._lock.wait()
                    taken = self._take()
            key, task = taken
            try:
                if task.future.set_running_or_notify_cancel():
                    try:
                        task.future.set_result(task.call())
                    except BaseException as error:  # handed to whoever awaits the future
                        task.future.set_exception(error)
            finally:
                with self._lock:
                    account = self._accounts[key]
                    account.running -= 1
                    if not account.waiting and not account.running:
                        del self._accounts[key]
                    self._lock.notify_all()


_pools: dict[int, FairPool] = {}
_pools_lock = threading.Lock()
_anonymous = itertools.count()


def pool(size: int, per_account: int | None = None) -> FairPool:
    """The process's one pool of `size` workers; `per_account`, when given, sets its cap."""
    with _pools_lock:
        if size not in _pools:
            _pools[size] = FairPool(size, per_account or size)
        found = _pools[size]
    if per_account is not None:
        with found._lock:
            found.per_account = min(per_account, size)
            found._lock.notify_all()
    return found


def account_key(account_id: int | None) -> Hashable:
    """Whose turn a task takes: its account's, or (no account) a turn of its own."""
    return ("account", account_id) if account_id is not None else ("task", next(_anonymous))


async def run_in_pool(
    size: int, fn: Callable[..., T], /, *, per_account: int | None = None, **kwargs: Any
) -> T:
    """Run `fn(**kwargs)` on the shared pool. Work for an account (an `account_id` keyword)
    takes turns with every other account's; `per_account` caps how many run at once for one."""
    key = account_key(kwargs.get("account_id"))
    future = pool(size, per_account).submit(key, fn, **kwargs)
    return await asyncio.wrap_future(future)
