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
from tests.fakes import SteppedClock, work_item


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


# --------------------------------------------------------------------------- clock steps

T = 1_800_000_000.0  # a minute boundary (epoch seconds)


def planned_item(n: int, planned: float, reason: str = "schedule") -> WorkItem:
    return replace(work_item(n), planned=planned, reason=reason)


def take_all(queue: WorkQueue, now: float) -> tuple[list[str], float | None]:
    taken, head = queue.take(now, "w", lambda running: 100)
    return [c.item.id for c in taken], head


def test_a_step_back_moves_queued_items_so_none_waits_on_the_old_time() -> None:
    queue = WorkQueue()
    queue.submit([planned_item(1, T + 10), planned_item(2, T + 25), planned_item(3, T + 50)])
    # The wall clock goes back 5 minutes at T + 5: the items keep slots 5 minutes ahead.
    assert take_all(queue, T + 5 - 300) == ([], T + 10)

    assert queue.replan(-300.0, until=T - 300 + 60, droppable=lambda i: True) == (3, 0)

    assert take_all(queue, T + 5 - 300) == ([], T + 10 - 300)  # 5 s away, as before the step
    assert take_all(queue, T + 25 - 300) == (["i1", "i2"], T + 50 - 300)
    assert queue.is_busy_with("check:ping@h3")


def test_a_step_forward_moves_queued_items_so_they_do_not_fall_due_at_once() -> None:
    queue = WorkQueue()
    queue.submit([planned_item(1, T + 10), planned_item(2, T + 25), planned_item(3, T + 50)])
    assert take_all(queue, T + 5 + 7200)[0] == ["i1", "i2", "i3"]  # unmoved: a burst

    queue = WorkQueue()
    queue.submit([planned_item(1, T + 10), planned_item(2, T + 25), planned_item(3, T + 50)])
    assert queue.replan(7200.0, until=T + 7200 + 60, droppable=lambda i: True) == (3, 0)
    assert take_all(queue, T + 5 + 7200) == ([], T + 10 + 7200)
    assert take_all(queue, T + 30 + 7200) == (["i1", "i2"], T + 50 + 7200)


def test_a_run_moved_past_the_minute_is_left_to_that_minute_s_tick() -> None:
    # Forward 30 s at T + 20: the run at T + 45 would move to T + 75, into the next minute,
    # whose tick plans it again at its slot; dropped, its key is free for that tick. An
    # operator's run (not droppable) moves whatever the minute.
    queue = WorkQueue()
    queue.submit(
        [
            planned_item(1, T + 25),
            planned_item(2, T + 45),
            planned_item(3, T + 40, reason="request"),
        ]
    )
    moved, dropped = queue.replan(30.0, until=T + 60, droppable=lambda i: i.reason == "schedule")
    assert (moved, dropped) == (2, 1)
    assert not queue.is_busy_with("check:ping@h2")
    assert take_all(queue, T + 56) == (["i1"], T + 70)
    assert take_all(queue, T + 70) == (["i3"], None)


def test_due_items_and_follow_up_runs_move_too() -> None:
    queue = WorkQueue()
    queue.submit([planned_item(1, T + 1), planned_item(2, T + 2)])
    taken, _ = queue.take(T + 3, "w", lambda running: 1)  # i2 is due, held back (no room)
    assert [c.item.id for c in taken] == ["i1"]
    follow = replace(planned_item(3, T + 30), key=taken[0].item.key)
    assert queue.submit([follow]) == []  # i1 runs: i3 is its follow-up
    assert queue.replan(-300.0) == (2, 0)
    assert queue.held_back(1, T + 3 - 300) == (1, 1)  # still due, waited as long as before
    queue.finished(taken[0].item, ok=True)
    assert take_all(queue, T + 10 - 300) == (["i2"], T + 30 - 300)


def test_a_take_notices_a_step_back_and_moves_the_queue_first() -> None:
    queue = WorkQueue()
    assert queue.take(T + 5, "w", lambda running: 9, mono=1000.0) == ([], None)  # first reading
    queue.submit([planned_item(1, T + 10), planned_item(2, T + 50, reason="request")])
    # 0.5 s later the wall clock reads 5 minutes earlier: the items move back with it.
    taken, head = queue.take(T + 5.5 - 300, "w", lambda running: 9, mono=1000.5)
    assert (taken, head) == ([], pytest.approx(T + 10 - 300))
    [step] = queue.observe_clock((T + 6 - 300, 1001.0))
    assert (round(step.seconds), step.moved, step.dropped) == (-300, 2, 0)
    assert queue.observe_clock((T + 7 - 300, 1002.0)) == []  # reported once
    taken, _ = queue.take(T + 10 - 300, "w", lambda running: 9, mono=1005.0)
    assert [c.item.id for c in taken] == ["i1"]


def test_a_take_notices_a_step_forward_and_releases_no_burst() -> None:
    queue = WorkQueue()
    queue.take(T + 5, "w", lambda running: 9, mono=1000.0)
    queue.submit([planned_item(1, T + 10), planned_item(2, T + 20), planned_item(3, T + 40)])
    # Two hours and half a minute forward, at T + 5.5: all three would be due at once.
    taken, head = queue.take(T + 5.5 + 7230, "w", lambda running: 9, mono=1000.5)
    assert (taken, head) == ([], pytest.approx(T + 10 + 7230))
    # i3 would move to T + 7270, past the end of the minute: left to that minute's tick.
    assert not queue.is_busy_with("check:ping@h3") and queue.is_busy_with("check:ping@h2")
    [step] = queue.observe_clock((T + 6 + 7230, 1001.0))
    assert (round(step.seconds), step.moved, step.dropped) == (7230, 2, 1)


def test_a_reading_older_than_the_last_says_nothing_about_steps() -> None:
    # Two takers read the clock around a step and reach the queue in the other order: the
    # one read before the step must not look like a step back to the old time.
    queue = WorkQueue()
    queue.take(T, "w", lambda running: 9, mono=1000.0)
    queue.submit([planned_item(1, T + 30)])
    queue.take(T + 1 + 600, "w", lambda running: 9, mono=1001.0)  # after a step of 10 min
    queue.take(T + 0.9, "w2", lambda running: 9, mono=1000.9)  # read just before it
    [step] = queue.observe_clock((T + 2 + 600, 1002.0))
    assert round(step.seconds) == 600 and queue.take(T + 31 + 600, "w", lambda r: 9)[0]


def test_items_planned_before_a_step_are_moved_when_they_arrive() -> None:
    # The tick planned its items at T + 0.2; the clock went back an hour before they were
    # handed over (a tick over 20,000 pairs takes a while).
    queue = WorkQueue()
    queue.take(T, "w", lambda running: 9, mono=1000.0)
    items = [planned_item(1, T + 10), planned_item(2, T + 40)]
    assert queue.submit(items, planned_at=(T + 0.2, 1000.2), reading=(T + 1 - 3600, 1001.0)) == []
    assert queue.take(T + 1 - 3600, "w", lambda running: 9, mono=1001.0) == (
        [],
        pytest.approx(T + 10 - 3600),
    )


def test_a_worker_notices_a_step_at_its_next_take() -> None:
    clock = SteppedClock()
    started: list[float] = []
    pool = WorkerPool("t", 1, lambda it, ctx: started.append(clock.time()), clock)
    pool.start()
    assert pool.observe_clock() == []  # the reading before the step
    clock.step(-3600.0)
    # Planned (real time) a second before the clock went back; not a scheduled run, which
    # a step could move past its minute's end (and so drop) when the test runs at :59.
    item = replace(work_item(1, delay=1.0), reason="request")
    pool.submit([item])  # wakes the worker, whose take notices the step and moves it
    wait_until(lambda: started, 5, "the item moved with the clock to start")
    assert started[0] >= item.planned - 3600.0  # at its moved time, not before
    [step] = pool.observe_clock()
    assert (round(step.seconds), step.moved) == (-3600, 1)
    assert pool.stop(1.0, lambda ctx: None)


def test_a_worker_waits_in_the_time_its_take_read() -> None:
    # The clock is stepped back an hour between the worker's take (which saw no step) and
    # the reckoning of its wait: reckoned from a second reading, the wait would be an hour.
    clock = SteppedClock()
    started: list[str] = []
    pool = WorkerPool("t", 1, lambda it, ctx: started.append(it.id), clock)
    pool.start()
    assert pool.observe_clock() == []
    clock.step_after_next_read(-3600.0)
    pool.submit(
        [replace(work_item(1, delay=1.0), reason="request")]
    )  # wakes the worker: its take reads the clock
    wait_until(lambda: started, 5, "the item to start at its time")
    assert pool.stop(1.0, lambda ctx: None)


def test_a_running_row_is_built_again_only_when_its_pid_changes() -> None:
    """queue.json lists every running check each second: an unchanged row is the same
    object, so the heartbeat neither compares nor encodes it again (documents.RowTexts)."""
    queue = WorkQueue()
    queue.submit([work_item(1), work_item(2)])
    taken, _ = queue.take(time.time() + 1, "loop-1", lambda running: 10)
    first = queue.snapshot()
    assert [r["id"] for r in first] == ["i1", "i2"]
    assert [r["pid"] for r in first] == [None, None]
    again = queue.snapshot()
    assert all(a is b for a, b in zip(first, again, strict=True))
    taken[0].set_pid(4242)
    later = queue.snapshot()
    assert later[0] is not first[0] and later[0]["pid"] == 4242
    assert later[1] is first[1]
