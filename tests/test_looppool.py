"""LoopPool: loop threads running many items, each a generator of steps, with real children.

Every test that takes `pools` runs with one loop thread and with two."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace

import pytest

from survivor.clock import SystemClock
from survivor.model.work import WorkItem
from survivor.proc.runner import ModuleRunner
from survivor.proc.session import ProcessOutcome
from survivor.work.loop import LoopPool, Utilisation, start_time
from survivor.work.queue import WorkContext
from survivor.work.steps import PAUSE, Await, Offload, Steps, outcome_of
from tests.conftest import wait_until
from tests.fakes import SteppedClock, work_item

SH = "/bin/sh"


@pytest.fixture
def runner() -> ModuleRunner:
    return ModuleRunner([], [], kill_grace=0.2)


class Pools(list[LoopPool]):
    """The pools a test started (stopped after it), and how many loop threads each gets."""

    def __init__(self, loops: int) -> None:
        super().__init__()
        self.loops = loops


@pytest.fixture(params=[1, 2], ids=["one-loop", "two-loops"])
def pools(request: pytest.FixtureRequest) -> Iterator[Pools]:
    made = Pools(request.param)
    yield made
    for pool in made:
        pool.stop(1.0, lambda ctx: None)


def start(
    pools: Pools, size: int, steps: Callable[..., Steps[None]], start_tick: float = 0.0
) -> LoopPool:
    pool = LoopPool("t", size, steps, SystemClock(), start_tick, loops=pools.loops)
    pools.append(pool)
    pool.start()
    return pool


def noting_starts(runner: ModuleRunner) -> tuple[dict[str, float], Callable[..., Steps[None]]]:
    """Steps that run `true` and note when each item started, by item id."""
    started: dict[str, float] = {}

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        started[it.id] = time.time()
        yield from shell(runner, "true", ctx)

    return started, steps


def running_pid(pool: LoopPool) -> int | None:
    """The pid of the first running item, once its child has started (taken is not started)."""
    rows = [r for r in pool.snapshot() if r["state"] == "running"]
    return rows[0]["pid"] if rows else None


def shell(
    runner: ModuleRunner, script: str, ctx: WorkContext, timeout: float = 10.0
) -> Steps[ProcessOutcome]:
    running = runner.start([SH, "-c", script], b"", timeout, on_start=ctx.set_pid)
    return outcome_of(running)


def test_runs_up_to_size_items_at_once_each_to_its_end(runner: ModuleRunner, pools: Pools) -> None:
    spans: dict[str, tuple[float, float]] = {}
    outputs: dict[str, bytes] = {}

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        began = time.monotonic()
        outcome = yield from shell(runner, f"sleep 0.2; echo {it.id}", ctx)
        outputs[it.id] = outcome.stdout
        spans[it.id] = (began, time.monotonic())

    pool = start(pools, 2, steps)
    assert pool.submit([work_item(n) for n in range(5)]) == []
    wait_until(lambda: pool.stats()["completed"] == 5)
    assert outputs == {f"i{n}": f"i{n}\n".encode() for n in range(5)}
    edges = sorted([(b, 1) for b, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    at_once = peak = 0
    for _, delta in edges:
        at_once += delta
        peak = max(peak, at_once)
    assert peak == 2  # two at a time: not one after another, not all five
    assert pool.stats()["busy"] == 0 and not pool.is_busy_with("check:ping@h0")


def test_items_wait_for_their_planned_time(runner: ModuleRunner, pools: Pools) -> None:
    started, steps = noting_starts(runner)
    pool = start(pools, 4, steps)
    later = work_item(1, delay=0.4)
    pool.submit([later, work_item(2)])
    wait_until(lambda: len(started) == 2)
    assert started["i1"] >= later.planned
    assert started["i2"] < later.planned


def test_items_falling_due_within_a_tick_start_together(runner: ModuleRunner, pools: Pools) -> None:
    started, steps = noting_starts(runner)
    pool = start(pools, 4, steps, start_tick=0.5)
    first, second = work_item(1, delay=0.2), work_item(2, delay=0.4)
    pool.submit([first, second])
    wait_until(lambda: len(started) == 2)
    # Without the tick the first would start at its own time, 0.2 s before the second's.
    assert started["i1"] >= second.planned
    assert started["i1"] < first.planned + 0.5 + 2.0  # a tick late, with room for a slow CI
    assert abs(started["i2"] - started["i1"]) < 0.1


@pytest.mark.parametrize(
    ("planned", "expect"),
    [
        (1_800_000_000.0, 1_800_000_000.25),  # the top of a minute
        (1_800_000_059.5, 1_800_000_059.75),  # ends right at the minute's last tick
        (1_800_000_059.8, 1_800_000_059.8),  # a tick later would be the next minute's
    ],
)
def test_the_tick_never_carries_a_start_into_the_next_minute(planned: float, expect: float) -> None:
    assert start_time(planned, 0.25) == pytest.approx(expect)


def test_utilisation_is_the_busy_share_of_the_last_whole_window() -> None:
    load = Utilisation(100.0, window=1.0)
    load.worked(100.0, 100.3)
    assert load.share == 0.0  # the first window is not over yet
    load.worked(100.5, 101.0)
    assert load.share == pytest.approx(0.8)
    load.worked(101.9, 102.0)
    assert load.share == pytest.approx(0.1)


def test_a_busy_loop_does_not_hold_items_for_the_tick(runner: ModuleRunner, pools: Pools) -> None:
    started, steps = noting_starts(runner)
    pool = start(pools, 4, steps, start_tick=30.0)
    busy = Utilisation(time.monotonic(), window=600.0)
    busy.share = 0.9  # as if near its capacity: every pause would be lost work
    for loop in pool._loops:
        loop.load = busy  # read again at the next turn, which the submission below wakes
    soon = work_item(1, delay=0.2)
    pool.submit([soon])
    wait_until(lambda: "i1" in started)  # well before the 30 s tick
    assert started["i1"] >= soon.planned


def test_an_item_already_due_is_not_held_for_the_tick(runner: ModuleRunner, pools: Pools) -> None:
    started, steps = noting_starts(runner)
    pool = start(pools, 4, steps, start_tick=30.0)
    now = work_item(1)
    pool.submit([now, work_item(2, delay=60.0)])
    wait_until(lambda: "i1" in started)  # the default deadline is well under the 30 s tick
    assert "i2" not in started


def test_a_run_past_its_timeout_is_killed_while_others_go_on(
    runner: ModuleRunner, pools: Pools
) -> None:
    outcomes: dict[str, ProcessOutcome] = {}

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        script = "exec sleep 30" if it.id == "i1" else "echo quick"
        outcomes[it.id] = yield from shell(runner, script, ctx, timeout=0.3)

    pool = start(pools, 2, steps)
    pool.submit([work_item(1), work_item(2)])
    wait_until(lambda: len(outcomes) == 2)
    assert outcomes["i1"].timed_out and outcomes["i1"].signal == signal.SIGTERM
    assert outcomes["i2"].stdout == b"quick\n" and not outcomes["i2"].timed_out


def test_a_failing_item_is_counted_and_the_loop_goes_on(runner: ModuleRunner, pools: Pools) -> None:
    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from shell(runner, "true", ctx)
        if it.id == "i1":
            raise RuntimeError("boom")

    pool = start(pools, 1, steps)
    pool.submit([work_item(1), work_item(2)])
    wait_until(lambda: pool.stats()["failed"] == 1 and pool.stats()["completed"] == 1)
    assert not pool.is_busy_with("check:ping@h1")


def test_an_offloaded_step_runs_beside_the_loop_and_returns_into_its_generator(
    runner: ModuleRunner, pools: Pools
) -> None:
    release = threading.Event()
    got: dict[str, object] = {}

    def blocking() -> str:
        assert release.wait(10)
        return "from the thread"

    def failing() -> str:
        raise ValueError("bad step")

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        if it.id == "i1":
            got["i1"] = yield Offload(blocking)
        elif it.id == "i2":
            try:
                yield Offload(failing)
            except ValueError as err:  # raised where the step was yielded
                got["i2"] = f"caught {err}"
        else:
            outcome = yield from shell(runner, "echo quick", ctx)
            got["i3"] = outcome.stdout

    pool = start(pools, 3, steps)
    pool.submit([work_item(1), work_item(2), work_item(3)])
    wait_until(lambda: "i2" in got and "i3" in got)
    assert "i1" not in got  # still blocked on its thread, holding up nobody
    release.set()
    wait_until(lambda: "i1" in got)
    assert got == {"i1": "from the thread", "i2": "caught bad step", "i3": b"quick\n"}


def test_an_awaited_future_returns_into_its_generator_without_a_thread(
    runner: ModuleRunner, pools: Pools
) -> None:
    pending: Future[str] = Future()
    failed: Future[str] = Future()
    failed.set_exception(ValueError("no answer"))  # done before the step is yielded
    got: dict[str, object] = {}

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        if it.id == "i1":
            got["i1"] = yield Await(pending)
        elif it.id == "i2":
            try:
                yield Await(failed)
            except ValueError as err:  # raised where the step was yielded
                got["i2"] = f"caught {err}"
        else:
            outcome = yield from shell(runner, "echo quick", ctx)
            got["i3"] = outcome.stdout

    pool = start(pools, 3, steps)
    threads = threading.active_count()
    pool.submit([work_item(1), work_item(2), work_item(3)])
    wait_until(lambda: "i2" in got and "i3" in got)
    assert "i1" not in got and threading.active_count() == threads  # waiting, on no thread
    threading.Thread(target=pending.set_result, args=("from afar",)).start()
    wait_until(lambda: "i1" in got)
    assert got == {"i1": "from afar", "i2": "caught no answer", "i3": b"quick\n"}
    wait_until(lambda: pool.stats()["completed"] == 3)


def test_a_paused_item_lets_the_others_go_on(runner: ModuleRunner, pools: Pools) -> None:
    other_done = threading.Event()
    pauses: list[int] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        if it.id == "i1":  # a long batch: pauses until the other item has finished
            while not other_done.is_set():
                assert len(pauses) < 1_000_000, "the other item never ran"
                pauses.append(1)
                yield PAUSE
        else:
            yield from shell(runner, "true", ctx)
            other_done.set()

    pool = start(pools, 2, steps)
    pool.submit([work_item(1), work_item(2)])
    wait_until(lambda: pool.stats()["completed"] == 2)
    assert pauses  # it did pause, and its pauses did not starve the run


def test_stop_kills_runs_still_going_after_the_grace(runner: ModuleRunner, pools: Pools) -> None:
    outcomes: list[ProcessOutcome] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        outcomes.append((yield from shell(runner, "exec sleep 30", ctx)))

    pool = start(pools, 2, steps)
    pool.submit([work_item(1), work_item(2, delay=60)])
    wait_until(lambda: running_pid(pool), what="the child to start")
    overdue: list[str] = []

    def kill(ctx: WorkContext) -> None:
        overdue.append(ctx.item.id)
        assert ctx.pid is not None
        runner.kill_group(ctx.pid)

    assert pool.stop(0.2, kill)
    assert overdue == ["i1"]
    assert [o.signal for o in outcomes] == [signal.SIGKILL]
    assert not any(t.is_alive() for t in pool.threads())
    assert [r.id for r in pool.submit([work_item(3)])] == ["i3"]  # refused once stopping


def test_cancel_drops_queued_items_and_flags_running_ones(
    runner: ModuleRunner, pools: Pools
) -> None:
    seen: list[str] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from shell(runner, "exec sleep 30", ctx)
        seen.append(f"{it.id} cancelled={ctx.cancelled.is_set()}")

    pool = start(pools, 1, steps)
    pool.submit([work_item(1), work_item(2)])  # both due; one runs, one waits for room
    wait_until(lambda: running_pid(pool), what="the child to start")
    assert [r["state"] for r in pool.snapshot()] == ["running", "queued"]
    queued = pool.cancel("i2")
    assert isinstance(queued, WorkItem)
    running = pool.cancel("i1")
    assert isinstance(running, WorkContext) and running.pid is not None
    runner.kill_group(running.pid)
    wait_until(lambda: pool.stats()["busy"] == 0)
    assert seen == ["i1 cancelled=True"]
    assert pool.stats()["queued"] == 0


def test_one_follow_up_run_is_held_for_a_running_key(runner: ModuleRunner, pools: Pools) -> None:
    done: list[str] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from shell(runner, "sleep 0.3" if it.id == "i1" else "true", ctx)
        done.append(it.id)

    pool = start(pools, 2, steps)
    pool.submit([work_item(1, key="k")])
    wait_until(lambda: pool.stats()["busy"] == 1)
    assert pool.submit([work_item(2, key="k")]) == []
    assert [r.id for r in pool.submit([work_item(3, key="k")])] == ["i3"]
    wait_until(lambda: done == ["i1", "i2"])


def test_resize_lets_more_run_at_once(runner: ModuleRunner, pools: Pools) -> None:
    release = threading.Event()

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield Offload(lambda: release.wait(10))

    pool = start(pools, 1, steps)
    pool.submit([work_item(n) for n in range(3)])
    wait_until(lambda: pool.stats()["busy"] == 1)
    pool.resize(3)
    wait_until(lambda: pool.stats()["busy"] == 3)
    release.set()
    wait_until(lambda: pool.stats()["completed"] == 3)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_loop_frees_its_items_and_is_replaced(runner: ModuleRunner, pools: Pools) -> None:
    seen: list[str] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        seen.append(it.id)
        if it.id == "i1":
            raise SystemExit  # not an Exception: ends the loop thread
        yield from shell(runner, "true", ctx)

    pool = start(pools, 2, steps)
    pool.submit([work_item(1)])
    wait_until(lambda: not all(t.is_alive() for t in pool.threads()))
    assert not pool.is_busy_with("check:ping@h1")
    assert pool.check_health() == 1
    pool.submit([work_item(2)])
    wait_until(lambda: pool.stats()["completed"] == 1)
    assert seen == ["i1", "i2"]


def test_no_descriptor_outlives_its_run(runner: ModuleRunner, pools: Pools) -> None:
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from shell(runner, "echo out; echo err >&2", ctx)

    pool = start(pools, 4, steps)
    before = open_fds()
    pool.submit([work_item(n) for n in range(20)])
    wait_until(lambda: pool.stats()["completed"] == 20)
    assert open_fds() <= before
    assert all(loop.owners == {} for loop in pool._loops)


def test_two_loops_share_the_work_and_never_run_more_than_size(runner: ModuleRunner) -> None:
    spans: list[tuple[float, float]] = []
    loops_seen: set[str] = set()

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        began = time.monotonic()
        loops_seen.add(ctx.worker)
        yield from shell(runner, "sleep 0.2", ctx)
        spans.append((began, time.monotonic()))

    pools = Pools(2)
    pool = start(pools, 3, steps)  # shares of 2 and 2, but 3 at most in all
    try:
        pool.submit([work_item(n) for n in range(8)])
        wait_until(lambda: pool.stats()["completed"] == 8)
    finally:
        pool.stop(1.0, lambda ctx: None)
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    at_once = peak = 0
    for _, delta in edges:
        at_once += delta
        peak = max(peak, at_once)
    assert peak == 3
    assert loops_seen == {"t-loop-1", "t-loop-2"}


def test_items_held_back_by_the_cap_are_counted_with_their_wait(
    runner: ModuleRunner, pools: Pools
) -> None:
    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from shell(runner, "sleep 30", ctx)

    pool = start(pools, 1, steps)
    pool.submit([work_item(n, delay=-5.0) for n in range(3)])  # due five seconds ago
    wait_until(lambda: pool.stats()["busy"] == 1 and pool.stats()["waiting"] == 2)
    assert pool.stats()["waiting_s"] >= 5
    pool.resize(3)  # room for all: nothing waits any more
    wait_until(lambda: pool.stats()["busy"] == 3)
    assert (pool.stats()["waiting"], pool.stats()["waiting_s"]) == (0, 0)


def test_many_runs_in_flight_each_end_on_its_own_event(runner: ModuleRunner, pools: Pools) -> None:
    """300 runs at once, ending in a staggered order: each is finished when its child
    exits (its pidfd and pipes), not by a pass over all of them."""
    done: list[str] = []

    def steps(it: WorkItem, ctx: WorkContext) -> Steps[None]:
        delay = (int(it.id[1:]) % 10) / 10
        outcome = yield from shell(runner, f"sleep {delay}", ctx)
        assert outcome.exit_status == 0 and not outcome.timed_out
        done.append(it.id)

    pool = start(pools, 1000, steps)
    pool.submit([work_item(n) for n in range(300)])
    wait_until(lambda: pool.stats()["completed"] == 300, 60, "300 runs")
    assert sorted(done) == sorted(f"i{n}" for n in range(300))
    assert all(not loop.timeouts and not loop.owners for loop in pool._loops)


def test_a_loop_notices_a_step_at_its_next_take(runner: ModuleRunner, pools: Pools) -> None:
    # Planned a second ahead, then the wall clock goes back an hour: the loop's next take
    # moves the item back with it, and it starts a second later, not an hour.
    clock = SteppedClock()
    started, steps = noting_starts(runner)
    pool = LoopPool("t", 2, steps, clock, loops=pools.loops)
    pools.append(pool)
    pool.start()
    assert pool.observe_clock() == []  # the reading before the step
    clock.step(-3600.0)
    # Planned (real time) a second before the clock went back; not a scheduled run, which
    # a step could move past its minute's end (and so drop) when the test runs at :59.
    item = replace(work_item(1, delay=1.0), reason="request")
    pool.submit([item])
    wait_until(lambda: "i1" in started, 5, "the item moved with the clock to start")
    assert started["i1"] >= item.planned  # real time: at its moved slot, not before


def test_a_loop_waits_in_the_time_its_take_read(runner: ModuleRunner, pools: Pools) -> None:
    # The clock is stepped back an hour between the loop's take (which saw no step) and the
    # reckoning of its poll timeout: reckoned from a second reading, it would be an hour.
    clock = SteppedClock()
    started, steps = noting_starts(runner)
    pool = LoopPool("t", 2, steps, clock, loops=pools.loops)
    pools.append(pool)
    pool.start()
    assert pool.observe_clock() == []
    clock.step_after_next_read(-3600.0)
    pool.submit(
        [replace(work_item(1, delay=1.0), reason="request")]
    )  # wakes the loop: its take reads the clock
    wait_until(lambda: "i1" in started, 5, "the item to start at its time")
