from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from survivor.clock import SystemClock
from survivor.model.work import WorkItem
from survivor.work.queue import WorkContext, WorkQueue
from survivor.work.threads import WorkerPool
from tests.conftest import wait_until
from tests.fakes import work_item


def test_runs_items_and_refuses_duplicate_keys() -> None:
    release = threading.Event()
    done: list[str] = []

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        release.wait(5)
        done.append(it.id)

    pool = WorkerPool("t", 2, handler, SystemClock())
    pool.start()
    refused = pool.submit([work_item(1, key="same"), work_item(2, key="same"), work_item(3)])
    assert [r.id for r in refused] == ["i2"]
    wait_until(lambda: pool.stats()["busy"] == 2)
    assert pool.is_busy_with("same")
    assert [r["state"] for r in pool.snapshot()] == ["running", "running"]
    release.set()
    wait_until(lambda: sorted(done) == ["i1", "i3"])
    wait_until(lambda: not pool.is_busy_with("same"))
    assert pool.submit([work_item(4, key="same")]) == []
    assert pool.stop(1.0, lambda ctx: None)


def test_items_wait_for_their_planned_time() -> None:
    started: dict[str, float] = {}
    pool = WorkerPool("t", 2, lambda it, ctx: started.setdefault(it.id, time.time()), SystemClock())
    pool.start()
    later = work_item(1, delay=0.4)
    pool.submit([later, work_item(2)])
    wait_until(lambda: len(started) == 2)
    assert started["i1"] >= later.planned
    assert started["i2"] < later.planned
    pool.stop(1.0, lambda ctx: None)


def test_a_failing_handler_does_not_stop_the_pool() -> None:
    seen: list[str] = []

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        seen.append(it.id)
        if it.id == "i1":
            raise RuntimeError("boom")

    pool = WorkerPool("t", 1, handler, SystemClock())
    pool.start()
    pool.submit([work_item(1), work_item(2)])
    wait_until(lambda: seen == ["i1", "i2"])
    wait_until(lambda: pool.stats()["failed"] == 1 and pool.stats()["completed"] == 1)
    pool.stop(1.0, lambda ctx: None)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_worker_is_replaced() -> None:
    seen: list[str] = []

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        seen.append(it.id)
        if it.id == "i1":
            raise SystemExit  # not an Exception: kills the worker thread

    pool = WorkerPool("t", 1, handler, SystemClock())
    pool.start()
    pool.submit([work_item(1)])
    wait_until(lambda: not pool.threads()[0].is_alive())
    assert pool.check_health() == 1
    pool.submit([work_item(2)])
    wait_until(lambda: seen == ["i1", "i2"])
    pool.stop(1.0, lambda ctx: None)


def test_cancel_queued_and_flag_running() -> None:
    release = threading.Event()

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        ctx.set_pid(4242)
        release.wait(5)

    pool = WorkerPool("t", 1, handler, SystemClock())
    pool.start()
    pool.submit([work_item(1), work_item(2, delay=30)])
    wait_until(lambda: pool.stats()["busy"] == 1)
    cancelled = pool.cancel("i2")
    assert isinstance(cancelled, WorkItem) and cancelled.id == "i2"
    assert pool.stats()["queued"] == 0
    ctx = pool.cancel("i1")
    assert isinstance(ctx, WorkContext) and ctx.cancelled.is_set() and ctx.pid == 4242
    assert pool.cancel("nope") is None
    release.set()
    pool.stop(1.0, lambda c: None)


def test_stop_kills_overdue_work_after_grace() -> None:
    release = threading.Event()
    overdue: list[str] = []

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        release.wait(10)

    pool = WorkerPool("t", 1, handler, SystemClock())
    pool.start()
    pool.submit([work_item(1), work_item(2, delay=60)])
    wait_until(lambda: pool.stats()["busy"] == 1)

    def kill(ctx: WorkContext) -> None:
        overdue.append(ctx.item.id)
        release.set()

    assert pool.stop(0.2, kill)
    assert overdue == ["i1"]
    assert [r.id for r in pool.submit([work_item(3)])] == ["i3"]  # refused once stopping


def test_one_follow_up_run_is_held_for_a_running_key() -> None:
    release = threading.Event()
    done: list[str] = []

    def handler(it: WorkItem, ctx: WorkContext) -> None:
        if it.id == "i1":
            release.wait(5)
        done.append(it.id)

    pool = WorkerPool("t", 2, handler, SystemClock())
    pool.start()
    pool.submit([work_item(1, key="k")])
    wait_until(lambda: pool.stats()["busy"] == 1)
    # The next minute's run arrives while the first still runs: held, not refused...
    assert pool.submit([work_item(2, key="k")]) == []
    # ...but only one: a third is refused, so a slow check cannot pile up.
    assert [r.id for r in pool.submit([work_item(3, key="k")])] == ["i3"]
    assert [r["state"] for r in pool.snapshot()] == ["running", "queued"]
    release.set()
    wait_until(lambda: done == ["i1", "i2"])
    pool.stop(1.0, lambda ctx: None)


def test_a_run_asked_for_now_goes_ahead_of_the_queued_run_which_keeps_its_time() -> None:
    queue = WorkQueue()
    t0 = 1_000_000.0
    regular = replace(work_item(1, key="k"), planned=t0 + 20)
    assert queue.submit([regular]) == []
    now = replace(work_item(2, key="k"), planned=t0)
    # Without `first` the operator's run waits for the queued one (refused)...
    assert queue.submit([now]) == [now]
    # ...with it, it runs at once and the queued run follows at its own time.
    assert queue.submit([now], first=True) == []

    def take(at: float) -> list[str]:
        taken, _ = queue.take(at, "w", lambda running: 4)
        return [ctx.item.id for ctx in taken]

    assert take(t0) == ["i2"]
    queue.finished(now, ok=True)
    assert take(t0 + 1) == []
    assert take(t0 + 20) == ["i1"]
    queue.finished(regular, ok=True)
    assert take(t0 + 60) == []
