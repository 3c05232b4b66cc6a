"""WorkQueue: a pool's bookkeeping, shared by the thread pool and the check loop.

A scheduler tick hands over a minute's work at once; the queue keeps it in a
heap ordered by planned start and releases each item when its time comes, so
20,000 checks a minute start at an even rate instead of a burst at :00. An
item whose key is already queued or running is refused (a slow check runs
less often instead of piling up), except that a running key may hold one
follow-up run, started when the running one ends (a check planned late in its
minute keeps its cadence).

The queue knows nothing of threads: `WorkerPool` (threads that block on
`take`) and `LoopPool` (loops that poll) each own one and ask it for due
items, report each item's end, and read its rows for queue.json. Every method
takes the one lock; the counters change only under it.

Planned times are wall-clock times (a record says which minute a run was
planned for), but the wall clock can be stepped (issue 23, item 1). So the
takers hand in the wall and the monotonic clock read together, and the queue
compares each reading with the last one: when they drifted apart by more than
a few seconds (survivor.clock.wall_step), every waiting item moves by the step
before anything is released, so each starts when it would have. A step back no
longer holds the queue until the old time comes round again, and a step
forward is no burst of everything planned up to the new time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from survivor.clock import MINUTE_S, WallClockWatch, wall_step
from survivor.model.work import WorkItem, WorkKind, WorkState

Reading = tuple[float, float]  # (wall-clock epoch seconds, monotonic seconds) read together


def planned_by_its_minute(item: WorkItem) -> bool:
    """A scheduled check run: its minute's tick plans it, so a run that a step of the clock
    would move into a later minute is dropped instead (that minute's tick plans it again
    at its slot: one run per planned minute)."""
    return item.kind is WorkKind.CHECK and item.reason == "schedule"


@dataclass(frozen=True, slots=True)
class ClockStep:
    """A step of the wall clock the queue noticed, and what it did about it."""

    seconds: float  # negative: back
    moved: int
    dropped: int


class CancelFlag:
    """Set once from any thread, read by the item's handler; nothing waits on it. (A
    threading.Event would build a Condition and an RLock for every check run.)"""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass(slots=True)
class WorkContext:
    """What a handler may tell the pool about the item it runs."""

    item: WorkItem
    worker: str = ""
    started: float | None = None  # epoch seconds
    pid: int | None = None
    cancelled: CancelFlag = field(default_factory=CancelFlag)
    _row: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def set_pid(self, pid: int | None) -> None:
        self.pid = pid

    def queue_row(self) -> dict[str, Any]:
        """This running item's row of queue.json: the same object at every write until its
        pid changes, so an unchanged queue compares (and encodes, documents.RowTexts) in
        no time. Readers must not change it."""
        row = self._row
        if row is None or row["pid"] != self.pid:
            row = _row(self.item, WorkState.RUNNING, self.started, self.pid, self.worker)
            self._row = row
        return row


class WorkQueue:
    """Items by planned time, their keys, follow-up runs, the running ones, and counters.

    `wake` is called (holding the lock) whenever a taker may have something new
    to do: an earlier item at the head, a follow-up queued, the queue stopping.
    Takers that block wait on `cond`, which is notified at the same moments.
    """

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.cond = threading.Condition()
        self._wake_hook = wake
        self._heap: list[tuple[float, int, WorkItem]] = []
        self._seq = itertools.count()
        self._keys: dict[str, str] = {}  # key -> item id, queued or running
        self._queued: dict[str, WorkItem] = {}  # id -> item (in the heap, or due)
        self._due: dict[str, WorkItem] = {}  # id -> item past its planned time, oldest first
        self._running: dict[str, WorkContext] = {}
        self._follow: dict[str, WorkItem] = {}  # key -> the next run of a running item
        self.stopping = False
        self.completed = 0
        self.failed = 0
        self._watch: WallClockWatch | None = None  # the last clock reading, for steps
        self._steps: list[ClockStep] = []  # noticed, not yet reported (observe_clock)

    # ---------------------------------------------------------------- handing over

    def submit(
        self,
        items: Iterable[WorkItem],
        *,
        first: bool = False,
        planned_at: Reading | None = None,
        reading: Reading | None = None,
    ) -> list[WorkItem]:
        """Queue items; returns those refused because their key is queued or running.

        With `first` (an operator's "run it now"), an item whose key is queued
        but not yet running goes first: it takes the queue's place and the
        queued run becomes its follow-up, still at its own planned time, so
        the extra run keeps the regular cadence.

        `planned_at` is the clock reading the items were planned from, `reading` one
        taken now: a step of the wall clock in between (a tick takes a while) moves
        them by the step, as it moved what was queued already.
        """
        refused: list[WorkItem] = []
        with self.cond:
            if self.stopping:
                return list(items)
            if reading is not None:
                self._observe(reading)
                shift = 0.0 if planned_at is None else wall_step(planned_at, reading)
                if shift:
                    items = [replace(item, planned=item.planned + shift) for item in items]
            head = self._heap[0][0] if self._heap else None
            for item in items:
                holder = self._keys.get(item.key)
                if holder is not None:
                    if holder in self._running and item.key not in self._follow:
                        # Running late (planned near the end of its minute): start the next
                        # run as soon as this one ends, instead of skipping a whole minute.
                        self._follow[item.key] = item
                        continue
                    if first and holder in self._queued and item.key not in self._follow:
                        waiting = self._queued.pop(holder)  # its heap entry is skipped
                        self._due.pop(holder, None)
                        self._follow[item.key] = waiting
                        self._enqueue(item)
                        continue
                    refused.append(item)
                    continue
                self._enqueue(item)
            if self._heap and (head is None or self._heap[0][0] < head):
                self._wake()
        return refused

    def _enqueue(self, item: WorkItem) -> None:
        self._keys[item.key] = item.id
        self._queued[item.id] = item
        heapq.heappush(self._heap, (item.planned, next(self._seq), item))

    def _wake(self) -> None:
        self.cond.notify_all()
        if self._wake_hook is not None:
            self._wake_hook()

    def is_busy_with(self, key: str) -> bool:
        with self.cond:
            return key in self._keys

    def cancel(self, item_id: str) -> WorkContext | WorkItem | None:
        """Cancel a queued item (returns it) or flag a running one (returns its context)."""
        with self.cond:
            item = self._queued.pop(item_id, None)
            if item is None:
                for key, nxt in list(self._follow.items()):
                    if nxt.id == item_id:
                        return self._follow.pop(key)
            if item is not None:
                self._due.pop(item_id, None)
                self._forget(item)
                return item
            ctx = self._running.get(item_id)
            if ctx is not None:
                ctx.cancelled.set()
            return ctx

    def _forget(self, item: WorkItem) -> None:
        if self._keys.get(item.key) == item.id:
            del self._keys[item.key]

    def stop(self) -> None:
        """Drop everything queued and refuse new items; running items go on to their end."""
        with self.cond:
            if self.stopping:
                return
            self.stopping = True
            self._heap.clear()
            self._follow.clear()
            self._due.clear()
            for item_id in list(self._queued):
                self._forget(self._queued.pop(item_id))
            self._wake()

    def observe_clock(self, reading: Reading) -> list[ClockStep]:
        """Compare `reading` with the last one (a step moves everything waiting, see
        `replan`); returns the steps noticed since the last call (for the daemon's log)."""
        with self.cond:
            self._observe(reading)
            steps, self._steps = self._steps, []
            return steps

    def _observe(self, reading: Reading) -> None:
        watch = self._watch
        if watch is None:
            self._watch = WallClockWatch(reading)
            return
        if reading[1] <= watch.last[1]:
            return  # read before the last one (on another thread): nothing new
        step = watch.observe(reading)
        if step:
            minute_end = (reading[0] // MINUTE_S + 1) * MINUTE_S
            moved, dropped = self.replan(step, until=minute_end, droppable=planned_by_its_minute)
            self._steps.append(ClockStep(step, moved, dropped))

    def replan(
        self,
        shift: float,
        *,
        until: float | None = None,
        droppable: Callable[[WorkItem], bool] | None = None,
    ) -> tuple[int, int]:
        """The wall clock was stepped by `shift` seconds: every item waiting for its time
        (queued, due or a follow-up run) moves by as much, so that it starts when it would
        have and none waits on a slot of the old time (a step back of an hour would hold
        the whole queue for an hour) or falls due with all the others at once (a step
        forward). An item that would move to `until` (epoch) or later and is `droppable`
        is dropped instead, its key freed: it belongs to a minute whose tick is still to
        come and plans it afresh. Returns (moved, dropped)."""
        moved = dropped = 0

        def keep(item: WorkItem) -> WorkItem | None:
            nonlocal moved, dropped
            planned = item.planned + shift
            if until is not None and planned >= until and droppable and droppable(item):
                dropped += 1
                return None
            moved += 1
            return replace(item, planned=planned)

        with self.cond:
            if self.stopping:
                return 0, 0
            queued, self._queued = self._queued, {}
            due, self._due = self._due, {}
            for item_id, item in queued.items():
                new = keep(item)
                if new is None:
                    self._forget(item)
                    continue
                self._queued[item_id] = new
            self._due = {i: self._queued[i] for i in due if i in self._queued}  # oldest first
            self._heap = [
                (item.planned, next(self._seq), item)
                for item_id, item in self._queued.items()
                if item_id not in self._due
            ]
            heapq.heapify(self._heap)
            for key, item in list(self._follow.items()):
                new = keep(item)
                if new is None:
                    del self._follow[key]  # the key stays with its running item
                else:
                    self._follow[key] = new
            self._wake()
        return moved, dropped

    # ---------------------------------------------------------------- taking

    def take(
        self, now: float, worker: str, room: Callable[[int], int], mono: float | None = None
    ) -> tuple[list[WorkContext], float | None]:
        """Items due at `now` (epoch), as many as `room(running)` allows, now running on
        `worker`; and the planned time of the next item still waiting, when nothing due is
        left over (None otherwise, or when the heap is empty). With `mono`, the monotonic
        time read with `now`: a step of the wall clock since the last reading moves the
        waiting items first."""
        taken: list[WorkContext] = []
        with self.cond:
            if self.stopping:
                return taken, None
            if mono is not None:
                self._observe((now, mono))
            self._release_due(now)
            limit = room(len(self._running))
            while self._due and len(taken) < limit:
                item_id = next(iter(self._due))
                item = self._due.pop(item_id)
                del self._queued[item_id]
                ctx = WorkContext(item, worker=worker, started=now)
                self._running[item_id] = ctx
                taken.append(ctx)
            if self._due or not self._heap:
                return taken, None
            return taken, self._heap[0][0]

    def _release_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, item = heapq.heappop(self._heap)
            if item.id in self._queued:  # not cancelled meanwhile
                self._due[item.id] = item

    def has_due(self) -> bool:
        with self.cond:
            return bool(self._due)

    def finished(self, item: WorkItem, *, ok: bool | None) -> None:
        """The item is over: done (`ok`), failed (not `ok`) or abandoned (None). Frees its
        key and queues its follow-up run."""
        with self.cond:
            if ok is True:
                self.completed += 1
            elif ok is False:
                self.failed += 1
            self._running.pop(item.id, None)
            self._forget(item)
            nxt = self._follow.pop(item.key, None)
            if nxt is not None and not self.stopping:
                self._enqueue(nxt)
                self._wake()

    def running(self) -> list[WorkContext]:
        with self.cond:
            return list(self._running.values())

    def running_count(self) -> int:
        with self.cond:
            return len(self._running)

    # ---------------------------------------------------------------- views

    def stats(self, size: int) -> dict[str, int]:
        with self.cond:
            return {
                "size": size,
                "busy": len(self._running),
                "queued": len(self._queued) + len(self._follow),
                "due": len(self._due) + len(self._follow),
                "completed": self.completed,
                "failed": self.failed,
            }

    def held_back(self, size: int, now: float) -> tuple[int, int]:
        """Items due but not running because `size` are running already: how many, and how
        many whole seconds the oldest has waited since its planned time (0, 0 when none).
        Due items with room to spare are only between two turns of the loop: not counted."""
        with self.cond:
            if not self._due or len(self._running) < size:
                return 0, 0
            oldest = next(iter(self._due.values())).planned
            return len(self._due), max(0, int(now - oldest))

    def scheduled(self) -> int:
        """Items accepted for later in the minute, not yet due (counted, not listed)."""
        with self.cond:
            return len(self._queued) - len(self._due)

    def snapshot(self) -> list[dict[str, Any]]:
        """Running items, and queued items that are due (waiting for room), for queue.json.

        Items planned for later in the current minute are only counted (`scheduled()`):
        listing a whole minute's 20,000 items every second cost a third of the daemon's CPU.
        """
        with self.cond:
            queued = [*self._due.values(), *self._follow.values()]
            running = list(self._running.values())
        rows = [c.queue_row() for c in running]
        for item in sorted(queued, key=lambda i: i.planned):
            rows.append(_row(item, WorkState.QUEUED, None, None, None))
        return rows


def _row(
    item: WorkItem, state: WorkState, started: float | None, pid: int | None, worker: str | None
) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind.value,
        "check": item.check,
        "hosts": list(item.hosts),
        "state": state.value,
        "planned": item.planned,
        "started": started,
        "pid": pid,
        "worker": worker,
        "reason": item.reason,
    }
