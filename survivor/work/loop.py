"""LoopPool: the check pool, a loop thread or two that keep up to `size` checks going at once.

A worker thread per running check cost a thread hand-off per check and, with
several threads runnable, a GIL hand-off at every system call (measured at
20,000 services: 46 context switches and 77 futex calls per check, against
2.6 switches for one thread alone). Here each work item is a generator of
steps (survivor.work.steps): the loop starts the item's child, watches its pipes
and pidfd in one poll set with every other run's, and when the run is over
sends its outcome back into the generator, which parses and records the
result before the item counts as done (DESIGN §6). One turn:

1. take the items whose planned time has come, as long as fewer than `size`
   are in flight, and run each to its first step;
2. finish each run that is over (or offloaded step that returned, or
   pause) and send the result into its generator, which records and yields
   its next step or ends;
3. wait on every run's descriptors and the wake-up eventfd (one epoll set), no
   longer than the nearest deadline of a run or the start time of the next
   planned item; hand each event to its run, and finish the runs it ended.

A turn costs what happened in it, not what is in flight: an event goes to its
run through the descriptor's owner, the runs' deadlines are in a heap
(survivor.work.timeouts) and only the runs whose deadline came are looked at,
paused items and returned offloads are in lists of their own. Walking every
run in flight on every turn (for its next deadline, and to enforce it) made
the daemon's CPU per check grow with the checks in flight: at 20,000
two-second services, with about 700 in flight, it cost twice as much per
check as at 5,000 (issue 20).

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

A pool may run several loops, each with its own poll set, on one queue
(`loops`). The daemon runs two: a spawn is a vfork, and the parent sleeps
until the child has exec'd (0.35-0.5 ms for /bin/true, half of one loop's
time near capacity). survivor.proc.spawn releases the GIL meanwhile, so the
other loop parses, records and starts checks instead of waiting its turn.

The bookkeeping (heap, keys, follow-up runs, cancel, stop, queue.json rows)
is the pool's WorkQueue (survivor.work.queue), as for the thread pool. An
offloaded step (survivor.work.steps.Offload: work that can only block) runs
on a thread of its own and wakes the loop when done; an awaited one
(survivor.work.steps.Await: a remote worker's answer) needs no thread: its
future wakes the loop the same way.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from survivor.clock import MINUTE_S, Clock, read_both
from survivor.model.work import WorkItem
from survivor.proc.runner import Running, run_time
from survivor.work.queue import WorkContext, WorkQueue
from survivor.work.steps import Await, Offload, Pause, Step, Steps
from survivor.work.threads import Pool
from survivor.work.timeouts import Timeouts

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
    """An Offload step running on its own thread; `returned` hands it back to the loop."""

    def __init__(self, fn: Callable[[], Any], returned: Callable[[], None], name: str):
        self.fn = fn
        self.returned = returned
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
            self.returned()


class _Awaited:
    """An Await step: `returned` hands it back to the loop when its future is done (on the
    thread that completes the future, or at once when it is done already)."""

    def __init__(self, future: Future[Any], returned: Callable[[], None]) -> None:
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self._returned = returned
        future.add_done_callback(self._landed)

    def _landed(self, future: Future[Any]) -> None:
        try:
            self.value = future.result()
        except BaseException as err:  # handed to the generator that yielded the step
            self.error = err
        self.done = True
        self._returned()


@dataclass(eq=False, slots=True)
class _Flight:
    """An item in flight: its generator and the step it waits for."""

    ctx: WorkContext
    steps: Steps[None]
    step: Running | _Offloaded | _Awaited | Pause | None = None


class _Registrar:
    """A run's view of the loop's poll set: it remembers whose descriptor each one is."""

    __slots__ = ("flight", "owners", "poll")

    def __init__(self, poll: Any, owners: dict[int, _Flight], flight: _Flight) -> None:
        self.poll = poll
        self.owners = owners
        self.flight = flight

    def register(self, fd: int, eventmask: int = select.POLLIN, /) -> None:
        # The POLL* bits are the EPOLL* bits on Linux (IN 1, OUT 4, ERR 8, HUP 16).
        self.poll.register(fd, eventmask)
        self.owners[fd] = self.flight

    def unregister(self, fd: int, /) -> None:
        self.poll.unregister(fd)
        del self.owners[fd]


class _Loop:
    """One loop thread's own state: its poll set's owners, its flights, its wake-up eventfd."""

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.wakefd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.flights: dict[str, _Flight] = {}  # item id -> in flight (this loop's thread only)
        self.owners: dict[int, _Flight] = {}  # polled descriptor -> its flight
        self.timeouts: Timeouts[_Flight] = Timeouts()  # runs by when they next need a look
        self.paused: list[_Flight] = []  # flights that yielded PAUSE, in order
        self.returned: deque[_Flight] = deque()  # offloaded steps done (appended by their threads)
        self.load = Utilisation(now)
        self.polled = now  # when the last poll returned
        self.thread: threading.Thread | None = None

    def wake(self) -> None:
        try:
            os.eventfd_write(self.wakefd, 1)
        except BlockingIOError:  # the counter is full: a wake-up is pending anyway
            pass


class LoopPool(Pool):
    """Up to `size` items at once, on `loops` loop threads that share one queue.

    Each loop takes at most its share (`size` / `loops`, rounded up) and the
    pool never more than `size`. More than one loop pays off only because a
    spawn releases the GIL (survivor.proc.spawn): while one loop waits for its
    child to exec, the other runs its Python.
    """

    def __init__(
        self,
        name: str,
        size: int,
        steps: StepHandler,
        clock: Clock,
        start_tick: float = 0.0,
        loops: int = 1,
    ) -> None:
        super().__init__(name, size, clock, WorkQueue(wake=self._wake))
        self.steps = steps
        self.start_tick = start_tick
        names = [f"{name}-loop"] if loops == 1 else [f"{name}-loop-{n + 1}" for n in range(loops)]
        self._loops = [_Loop(n, clock.monotonic()) for n in names]

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for loop in self._loops:
            self._start_loop(loop)

    def _start_loop(self, loop: _Loop) -> None:
        # The epoll set is made here, before the thread exists: the loop's descriptors are
        # all open once start() returns.
        poll = select.epoll()
        poll.register(loop.wakefd, select.EPOLLIN)
        loop.thread = threading.Thread(
            target=self._loop, args=(loop, poll), name=loop.name, daemon=True
        )
        loop.thread.start()

    def threads(self) -> list[threading.Thread]:
        return [lp.thread for lp in self._loops if lp.thread is not None]

    def check_health(self) -> int:
        """Start a new thread for each loop whose thread died; returns how many."""
        if self.queue.stopping:
            return 0
        dead = [lp for lp in self._loops if lp.thread is not None and not lp.thread.is_alive()]
        for loop in dead:
            log.error("pool %s: loop thread %s died; starting a new one", self.name, loop.name)
            self._start_loop(loop)
        return len(dead)

    def stats(self) -> dict[str, int]:
        """The queue's figures, and the back-pressure: due items held back because `size`
        are in flight (`waiting`), and how long the oldest has waited (`waiting_s`)."""
        doc = super().stats()
        doc["waiting"], doc["waiting_s"] = self.queue.held_back(self.size, self.clock.time())
        return doc

    def resize(self, size: int) -> None:
        """Run up to `size` items at once from now on (items in flight finish)."""
        with self.queue.cond:
            self.size = size
            self._wake()

    def _wake(self) -> None:
        for loop in self._loops:
            loop.wake()

    def _room(self, loop: _Loop) -> int:
        """How many more items `loop` may take: its share, and the pool's `size` in all."""
        share = -(-self.size // len(self._loops))
        return min(share - len(loop.flights), self.size - self.queue.running_count())

    # ---------------------------------------------------------------- the loop

    def _loop(self, loop: _Loop, poll: select.epoll) -> None:
        loop.polled = self.clock.monotonic()  # a new loop: the gap before it was not work
        try:
            while self._iterate(loop, poll):
                pass
        except BaseException:
            log.critical(
                "pool %s: the loop %s failed; its checks in flight are killed and it will be"
                " replaced",
                self.name,
                loop.name,
                exc_info=True,
            )
            raise
        finally:
            self._abandon_flights(loop)
            poll.close()

    def _iterate(self, loop: _Loop, poll: Any) -> bool:
        """One turn of the loop; False when the pool is stopping and nothing is in flight."""
        taken, next_planned, (wall, mono) = self._take(loop)
        for ctx in taken:
            self._advance(loop, loop.flights[ctx.item.id], poll, None, None)
        self._collect(loop, poll)
        if self.queue.stopping and not loop.flights:
            return False
        waits: list[float] = []
        next_deadline = loop.timeouts.next_at()
        if next_deadline is not None:
            waits.append(max(0.0, next_deadline - run_time()))
        has_room = self._room(loop) > 0
        if next_planned is not None and has_room:
            tick = self.start_tick if loop.load.share < GATHER_BELOW else 0.0
            # From the reading `take` checked for steps of the wall clock (a second reading
            # could be after a step the queue has not seen), moved on by the monotonic time
            # the items taken since then took to start: reckoned from the reading alone, a
            # loop that spends 0.2 s starting a tick's checks slept 0.2 s too long each turn
            # and fell behind at 20,000 services. Poll waits on the monotonic clock, and the
            # next take looks for a step again.
            now = wall + (self.clock.monotonic() - mono)
            waits.append(self.clock.wait_seconds(start_time(next_planned, tick), now))
        if has_room and self.queue.has_due():
            waits.append(0.0)  # an item landed and made room: take the next at once
        if loop.paused:
            waits.append(0.0)  # only look at the descriptors, then go on with the paused
        timeout = math.ceil(min(waits) * 1000) / 1000 if waits else -1.0
        loop.load.worked(loop.polled, self.clock.monotonic())
        events = poll.poll(timeout)
        loop.polled = self.clock.monotonic()
        self._dispatch_events(loop, poll, events)
        return True

    def _take(self, loop: _Loop) -> tuple[list[WorkContext], float | None, tuple[float, float]]:
        """Items whose time has come, as many as `loop` has room for; the planned time of the
        next one; and the clock reading (wall, monotonic) they were taken at."""
        share = -(-self.size // len(self._loops))

        def room(running: int) -> int:
            return min(share - len(loop.flights), self.size - running)

        wall, mono = read_both(self.clock)
        taken, next_planned = self.queue.take(wall, loop.name, room, mono)
        for ctx in taken:  # counted as in flight at once, for the room of the next one
            loop.flights[ctx.item.id] = _Flight(ctx, self.steps(ctx.item, ctx))
        return taken, next_planned, (wall, mono)

    def _advance(
        self, loop: _Loop, flight: _Flight, poll: Any, value: Any, error: BaseException | None
    ) -> None:
        """Send `value` (or throw `error`) into the flight's generator; start its next step."""
        item = flight.ctx.item
        try:
            step: Step = flight.steps.send(value) if error is None else flight.steps.throw(error)
        except StopIteration:
            self._land(loop, flight, ok=True)
            return
        except Exception:
            log.exception("pool %s: %s %s failed", self.name, item.kind.value, item.key)
            self._land(loop, flight, ok=False)
            return
        except BaseException:
            log.critical(
                "pool %s: %s %s ended the loop %s", self.name, item.kind.value, item.key, loop.name
            )
            self._land(loop, flight, ok=False)
            raise
        if isinstance(step, Offload | Await):

            def returned() -> None:  # on the offload's thread, or the one ending the future
                loop.returned.append(flight)
                loop.wake()

            if isinstance(step, Await):
                flight.step = _Awaited(step.future, returned)
            else:
                flight.step = _Offloaded(step.fn, returned, f"{self.name}-offload")
            return
        if isinstance(step, Pause):
            flight.step = step  # goes on at the next turn, after the poll
            loop.paused.append(flight)
            return
        flight.step = step
        try:
            step.attach(_Registrar(poll, loop.owners, flight))
        except Exception as err:
            step.abort()
            self._advance(loop, flight, poll, None, err)
            return
        loop.timeouts.arm(flight, step.wake_at())

    def _collect(self, loop: _Loop, poll: Any) -> None:
        """Go on with the offloaded steps that returned and the paused items, and look at
        the runs whose deadline came."""
        while loop.returned:
            flight = loop.returned.popleft()
            step = flight.step
            assert isinstance(step, _Offloaded | _Awaited) and step.done
            self._advance(loop, flight, poll, step.value, step.error)
        paused, loop.paused = loop.paused, []  # paused before this pass: go on now
        for flight in paused:
            self._advance(loop, flight, poll, None, None)
        for flight in loop.timeouts.due(run_time()):
            self._look_at(loop, flight, poll)

    def _look_at(self, loop: _Loop, flight: _Flight, poll: Any) -> None:
        """Enforce the run's deadlines; finish it when it is over, else re-arm its timeout."""
        step = flight.step
        assert isinstance(step, Running)
        try:
            if not step.advance():
                loop.timeouts.arm(flight, step.wake_at())
                return
            outcome = step.finish()
        except Exception as err:
            loop.timeouts.disarm(flight)
            step.abort()
            self._advance(loop, flight, poll, None, err)
        else:
            loop.timeouts.disarm(flight)
            self._advance(loop, flight, poll, outcome, None)

    def _dispatch_events(self, loop: _Loop, poll: Any, events: Sequence[tuple[int, int]]) -> None:
        mine: dict[_Flight, list[tuple[int, int]]] = {}
        for fd, mask in events:
            if fd == loop.wakefd:
                try:
                    os.eventfd_read(loop.wakefd)
                except BlockingIOError:
                    pass
                continue
            flight = loop.owners.get(fd)
            if flight is not None:
                mine.setdefault(flight, []).append((fd, mask))
        for flight, its_events in mine.items():
            step = flight.step
            assert isinstance(step, Running)
            try:
                step.handle(its_events)
            except Exception as err:
                loop.timeouts.disarm(flight)
                step.abort()
                self._advance(loop, flight, poll, None, err)
            else:
                self._look_at(loop, flight, poll)  # its exit or EOF may have ended it

    def _land(self, loop: _Loop, flight: _Flight, *, ok: bool | None) -> None:
        flight.step = None
        loop.timeouts.disarm(flight)
        loop.flights.pop(flight.ctx.item.id, None)
        self.queue.finished(flight.ctx.item, ok=ok)

    def _abandon_flights(self, loop: _Loop) -> None:
        """The loop ends (stop, or a BaseException): kill what still runs and free the keys."""
        for flight in list(loop.flights.values()):
            if isinstance(flight.step, Running):
                flight.step.abort()
            flight.steps.close()
            self._land(loop, flight, ok=None)
        loop.owners.clear()
        loop.paused.clear()
        loop.returned.clear()
