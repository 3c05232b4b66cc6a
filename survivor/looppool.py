"""LoopPool: the check pool, one thread that keeps up to `size` checks going at once.

A worker thread per running check cost a thread hand-off per check and, with
several threads runnable, a GIL hand-off at every system call (measured at
20,000 services: 46 context switches and 77 futex calls per check, against
2.6 switches for one thread alone). Here each work item is a generator of
steps (survivor.steps): the loop starts the item's child, watches its pipes
and pidfd in one poll set with every other run's, and when the run is over
sends its outcome back into the generator, which parses and records the
result before the item counts as done (DESIGN §6). One turn:

1. take the items whose planned time has come, as long as fewer than `size`
   are in flight, and run each to its first step;
2. finish each run that is over (or offloaded step that returned, or
   pause) and send the result into its generator, which records and yields
   its next step or ends;
3. poll every run's descriptors and the wake-up eventfd, no longer than the
   nearest deadline of a run or the start time of the next planned item.

The start time (`start_time`) gathers starts: when the loop would only wake
for the next planned item, it sleeps until `start_tick` after that item's
time and then starts every item due by then. Each wake-up of an idle loop
costs the same, cold caches and all, whether it starts one check or ten: at
5,000 services (83 checks/s) the loop spent 1.4 ms of CPU per check starting
them one by one and 0.6 ms with a 0.25 s tick, and the checks themselves ran
cheaper back to back (docs/benchmarks.md). An item starts at most a tick
after its planned time when there is room; an item handed over already due
(the re-run that confirms a fix) is taken at once. Only a loop that is mostly
idle gathers (`Utilisation`): near its capacity every pause is lost work, and
the items piled up in one tick took seconds to work off (at 40,000 services,
p99 start latency 2.8 s with the tick against 0.46 s without).

The bookkeeping (heap, keys, follow-up runs, cancel, stop, queue.json rows)
is WorkerPool's. An offloaded step (survivor.steps.Offload: work that can
only block) runs on a thread of its own and wakes the loop when done.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from survivor.clock import MINUTE_S, Clock
from survivor.model import WorkItem
from survivor.pool import WorkContext, WorkerPool
from survivor.runner import Running
from survivor.steps import Offload, Pause, Step, Steps

log = logging.getLogger(__name__)

StepHandler = Callable[[WorkItem, WorkContext], Steps[None]]
GATHER_BELOW = 0.5  # the loop gathers starts on a tick only while busy less than this share


def start_time(planned: float, tick: float) -> float:
    """When to start an item planned at `planned` (epoch seconds) if nothing else wakes
    the loop: a tick later, so that the items falling due meanwhile start with it; but
    never in a later minute than its own. The check scheduler hands out a minute's runs
    at the top of that minute and skips a check whose last run is still queued, so an
    item carried over the minute's end would cost its check the next minute's run."""
    later = planned + tick
    return later if later // MINUTE_S == planned // MINUTE_S else planned


class Utilisation:
    """The share of real time the loop spent working (not in poll), over the last
    complete window of `window` seconds."""

    __slots__ = ("busy", "share", "start", "window")

    def __init__(self, now: float, window: float = 1.0) -> None:
        self.window = window
        self.start = now
        self.busy = 0.0
        self.share = 0.0

    def worked(self, since: float, now: float) -> None:
        """The loop worked from `since` until `now` (monotonic seconds)."""
        self.busy += now - since
        if now - self.start >= self.window:
            self.share = self.busy / (now - self.start)
            self.start, self.busy = now, 0.0


class _Offloaded:
    """An Offload step running on its own thread; the loop collects it when `done`."""

    def __init__(self, fn: Callable[[], Any], wake: Callable[[], None], name: str):
        self.fn = fn
        self.wake = wake
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as err:  # handed to the generator that yielded the step
            self.error = err
        finally:
            self.done = True
            self.wake()


@dataclass(eq=False, slots=True)
class _Flight:
    """An item in flight: its generator and the step it waits for."""

    ctx: WorkContext
    steps: Steps[None]
    step: Running | _Offloaded | Pause | None = None


class _Registrar:
    """A run's view of the loop's poll set: it remembers whose descriptor each one is."""

    __slots__ = ("flight", "owners", "poll")

    def __init__(self, poll: Any, owners: dict[int, _Flight], flight: _Flight) -> None:
        self.poll = poll
        self.owners = owners
        self.flight = flight

    def register(self, fd: int, eventmask: int = select.POLLIN, /) -> None:
        self.poll.register(fd, eventmask)
        self.owners[fd] = self.flight

    def unregister(self, fd: int, /) -> None:
        self.poll.unregister(fd)
        del self.owners[fd]


class LoopPool(WorkerPool):
    def __init__(
        self, name: str, size: int, steps: StepHandler, clock: Clock, start_tick: float = 0.0
    ) -> None:
        super().__init__(name, size, _unused_handler, clock)
        self.steps = steps
        self.start_tick = start_tick
        self._wakefd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._pending: deque[WorkItem] = deque()  # due, waiting for room
        self._flights: dict[str, _Flight] = {}  # item id -> in flight (loop thread only)
        self._owners: dict[int, _Flight] = {}  # polled descriptor -> its flight
        self._loop_name = f"{name}-loop"
        self._load = Utilisation(clock.monotonic())
        self._polled = clock.monotonic()  # when the last poll returned

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._start_loop()

    def _start_loop(self) -> None:
        thread = threading.Thread(target=self._loop, name=self._loop_name, daemon=True)
        self._workers = [thread]
        thread.start()

    def check_health(self) -> int:
        """Start a new loop thread if the old one died; returns how many were replaced."""
        if self._stopping or not self._workers or self._workers[0].is_alive():
            return 0
        log.error("pool %s: loop thread died; starting a new one", self.name)
        self._start_loop()
        return 1

    def resize(self, size: int) -> None:
        """Run up to `size` items at once from now on (items in flight finish)."""
        with self._cond:
            self.size = size
            self._wake()

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wakefd, 1)
        except BlockingIOError:  # the counter is full: a wake-up is pending anyway
            pass

    # ---------------------------------------------------------------- the loop

    def _loop(self) -> None:
        poll = select.poll()
        poll.register(self._wakefd, select.POLLIN)
        self._polled = self.clock.monotonic()  # a new loop: the gap before it was not work
        try:
            while self._iterate(poll):
                pass
        except BaseException:
            log.critical(
                "pool %s: the loop failed; its checks in flight are killed and it will be replaced",
                self.name,
                exc_info=True,
            )
            raise
        finally:
            self._abandon_flights()

    def _iterate(self, poll: Any) -> bool:
        """One turn of the loop; False when the pool is stopping and nothing is in flight."""
        taken, next_planned = self._take(self.size - len(self._flights))
        for ctx in taken:
            flight = self._flights[ctx.item.id] = _Flight(ctx, self.steps(ctx.item, ctx))
            self._advance(flight, poll, None, None)
        self._collect(poll)
        if self._stopping and not self._flights:
            return False
        waits = [f.step.wait_s() for f in self._flights.values() if isinstance(f.step, Running)]
        if next_planned is not None and len(self._flights) < self.size:
            tick = self.start_tick if self._load.share < GATHER_BELOW else 0.0
            waits.append(self.clock.wait_seconds(start_time(next_planned, tick)))
        if self._pending and len(self._flights) < self.size:
            waits.append(0.0)  # an item landed and made room: take the next at once
        if any(isinstance(f.step, Pause) for f in self._flights.values()):
            waits.append(0.0)  # only look at the descriptors, then go on with the paused
        timeout = math.ceil(min(waits) * 1000) if waits else -1
        self._load.worked(self._polled, self.clock.monotonic())
        events = poll.poll(timeout)
        self._polled = self.clock.monotonic()
        self._dispatch_events(poll, events)
        return True

    def _take(self, room: int) -> tuple[list[WorkContext], float | None]:
        """Items whose time has come, up to `room`; and the planned time of the next one."""
        taken: list[WorkContext] = []
        with self._cond:
            if self._stopping:
                self._pending.clear()
                return taken, None
            self._pending.extend(self._pop_due(self.clock.time()))
            while len(taken) < room and self._pending:
                item = self._pending.popleft()
                ctx = self._begin_locked(item, self._loop_name)
                if ctx is not None:
                    taken.append(ctx)
            if self._pending or not self._heap:
                return taken, None
            return taken, self._heap[0][0]

    def _advance(self, flight: _Flight, poll: Any, value: Any, error: BaseException | None) -> None:
        """Send `value` (or throw `error`) into the flight's generator; start its next step."""
        item = flight.ctx.item
        try:
            step: Step = flight.steps.send(value) if error is None else flight.steps.throw(error)
        except StopIteration:
            self.completed += 1
            self._land(flight)
            return
        except Exception:
            self._failed(item)
            self._land(flight)
            return
        except BaseException:
            self._killed(item, self._loop_name)
            self._land(flight)
            raise
        if isinstance(step, Offload):
            flight.step = _Offloaded(step.fn, self._wake, f"{self.name}-offload")
            return
        if isinstance(step, Pause):
            flight.step = step  # goes on at the next turn, after the poll
            return
        flight.step = step
        try:
            step.attach(_Registrar(poll, self._owners, flight))
        except Exception as err:
            step.abort()
            self._advance(flight, poll, None, err)

    def _collect(self, poll: Any) -> None:
        """Finish the runs that are over and collect the offloaded steps that returned."""
        for flight in list(self._flights.values()):
            step = flight.step
            if isinstance(step, _Offloaded):
                if step.done:
                    self._advance(flight, poll, step.value, step.error)
                continue
            if isinstance(step, Pause):  # paused before this pass: goes on now
                self._advance(flight, poll, None, None)
                continue
            assert step is not None
            try:
                if not step.advance():
                    continue
                outcome = step.finish()
            except Exception as err:
                step.abort()
                self._advance(flight, poll, None, err)
            else:
                self._advance(flight, poll, outcome, None)

    def _dispatch_events(self, poll: Any, events: Sequence[tuple[int, int]]) -> None:
        mine: dict[_Flight, list[tuple[int, int]]] = {}
        for fd, mask in events:
            if fd == self._wakefd:
                try:
                    os.eventfd_read(self._wakefd)
                except BlockingIOError:
                    pass
                continue
            flight = self._owners.get(fd)
            if flight is not None:
                mine.setdefault(flight, []).append((fd, mask))
        for flight, its_events in mine.items():
            step = flight.step
            assert isinstance(step, Running)
            try:
                step.handle(its_events)
            except Exception as err:
                step.abort()
                self._advance(flight, poll, None, err)

    def _land(self, flight: _Flight) -> None:
        flight.step = None
        self._flights.pop(flight.ctx.item.id, None)
        self._finished(flight.ctx.item)

    def _abandon_flights(self) -> None:
        """The loop ends (stop, or a BaseException): kill what still runs and free the keys."""
        for flight in list(self._flights.values()):
            if isinstance(flight.step, Running):
                flight.step.abort()
            flight.steps.close()
            self._land(flight)
        self._owners.clear()


def _unused_handler(item: WorkItem, ctx: WorkContext) -> None:
    raise AssertionError("LoopPool runs generators, not handlers")
