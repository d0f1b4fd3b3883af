"""The worker pool shares its threads fairly: round-robin across accounts, a cap per account."""

from __future__ import annotations

import threading
import time

import pytest

from app.services.jobs.workers import FairPool


class Recorder:
    """Tasks that note when they start and wait for the test to let them finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running: dict[str, int] = {}
        self.most_running: dict[str, int] = {}
        self.gate = threading.Semaphore(0)
        self._lock = threading.Lock()

    def task(self, *, account: str, name: str) -> str:
        with self._lock:
            self.started.append(name)
            self.running[account] = self.running.get(account, 0) + 1
            self.most_running[account] = max(
                self.most_running.get(account, 0), self.running[account]
            )
        self.gate.acquire()
        with self._lock:
            self.running[account] -= 1
        return name

    def wait_started(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.started) < count:
            assert time.monotonic() < deadline, f"only {self.started} started"
            time.sleep(0.005)


def test_a_single_photo_goes_before_the_rest_of_a_running_batch() -> None:
    pool = FairPool(2, 2)
    rec = Recorder()
    batch = [pool.submit("batch", rec.task, account="batch", name=f"b{i}") for i in range(10)]
    rec.wait_started(2)
    single = pool.submit("other", rec.task, account="other", name="single")
    rec.gate.release()  # one batch photo finishes: the freed worker takes the other account's
    rec.wait_started(3)
    assert rec.started[2] == "single"
    for _ in range(10):
        rec.gate.release()
    assert [f.result(timeout=10) for f in batch] == [f"b{i}" for i in range(10)]
    assert single.result(timeout=10) == "single"


def test_accounts_take_turns() -> None:
    pool = FairPool(1, 1)
    rec = Recorder()
    first = pool.submit("a", rec.task, account="a", name="a0")  # holds the only worker
    rec.wait_started(1)
    futures = [first]
    for i in range(1, 4):
        futures.append(pool.submit("a", rec.task, account="a", name=f"a{i}"))
    for i in range(3):
        futures.append(pool.submit("b", rec.task, account="b", name=f"b{i}"))
    for _ in range(7):
        rec.gate.release()
    for future in futures:
        future.result(timeout=10)
    assert rec.started == ["a0", "b0", "a1", "b1", "a2", "b2", "a3"]


def test_one_account_never_holds_more_than_its_cap() -> None:
    pool = FairPool(3, 1)
    rec = Recorder()
    futures = [pool.submit("a", rec.task, account="a", name=f"a{i}") for i in range(4)]
    futures.append(pool.submit("b", rec.task, account="b", name="b0"))
    rec.wait_started(2)
    time.sleep(0.1)  # a third worker is idle; it must not take a second of "a"'s photos
    assert sorted(rec.started) == ["a0", "b0"]
    for _ in range(5):
        rec.gate.release()
    for future in futures:
        future.result(timeout=10)
    assert rec.most_running == {"a": 1, "b": 1}


def test_a_failing_task_hands_its_error_back_and_frees_its_worker() -> None:
    pool = FairPool(1, 1)

    def broken() -> None:
        raise ValueError("bad photo")

    with pytest.raises(ValueError, match="bad photo"):
        pool.submit("a", broken).result(timeout=10)
    assert pool.submit("a", lambda: 42).result(timeout=10) == 42
