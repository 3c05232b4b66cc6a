"""WorkerPool: named worker threads fed by a dispatcher that starts each item at its planned time.

A scheduler tick hands over a minute's work at once; the dispatcher keeps it
in a heap ordered by planned start and releases each item when its time comes,
so 20,000 checks a minute start at an even rate instead of a burst at :00.
An item whose key is already queued or running is refused (a slow check runs
less often instead of piling up). A handler that raises is logged and the
worker goes on; a worker thread that dies anyway is replaced by
`check_health()`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from survivor.clock import Clock
from survivor.model.work import WorkItem, WorkState

log = logging.getLogger(__name__)


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

    def set_pid(self, pid: int | None) -> None:
        self.pid = pid


Handler = Callable[[WorkItem, WorkContext], None]
T = TypeVar("T")
_STOP = object()


class WorkerPool:
    def __init__(self, name: str, size: int, handler: Handler, clock: Clock) -> None:
        self.name = name
        self.size = size
        self.handler = handler
        self.clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, WorkItem]] = []
        self._seq = itertools.count()
        self._keys: dict[str, str] = {}  # key -> item id, queued or running
        self._queued: dict[str, WorkItem] = {}  # id -> item (heap or ready queue)
        self._running: dict[str, WorkContext] = {}
        self._follow: dict[str, WorkItem] = {}  # key -> the next run of a running item
        self._due: set[str] = set()  # ids handed to the workers (past their planned time)
        self._ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self._worker_seq = itertools.count(1)
        self.completed = 0
        self.failed = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"{self.name}-dispatcher", daemon=True
        )
        self._dispatcher.start()
        for _ in range(self.size):
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        t = threading.Thread(
            target=self._work, name=f"{self.name}-{next(self._worker_seq)}", daemon=True
        )
        self._workers.append(t)
        t.start()

    def check_health(self) -> int:
        """Replace dead worker threads; returns how many were replaced."""
        if self._stopping:
            return 0
        dead = [t for t in self._workers if not t.is_alive()]
        for t in dead:
            log.error("pool %s: worker %s died; starting a replacement", self.name, t.name)
            self._workers.remove(t)
            self._spawn_worker()
        if self._dispatcher is not None and not self._dispatcher.is_alive():
            log.error("pool %s: dispatcher died; restarting it", self.name)
            self._dispatcher = threading.Thread(
                target=self._dispatch, name=f"{self.name}-dispatcher", daemon=True
            )
            self._dispatcher.start()
        return len(dead)

    def resize(self, size: int) -> None:
        """Grow or shrink to `size` workers (shrinking lets busy workers finish)."""
        with self._cond:
            delta = size - self.size
            self.size = size
        for _ in range(max(0, delta)):
            self._spawn_worker()
        for _ in range(max(0, -delta)):
            self._ready.put(_STOP)

    def stop(self, grace: float, on_overdue: Callable[[WorkContext], None]) -> bool:
        """Drop queued work, let running items finish for `grace` seconds, then `on_overdue`
        each one still running (the daemon kills its process group). True if all finished."""
        self.begin_stop()
        return self.finish_stop(self.clock.after_real(grace), on_overdue)

    def begin_stop(self) -> None:
        """Drop queued work and tell the workers to exit after their current item."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._heap.clear()
            self._follow.clear()
            for item_id in list(self._queued):
                self._forget(self._queued.pop(item_id))
            self._wake()
        for _ in self._workers:
            self._ready.put(_STOP)

    def finish_stop(self, deadline: float, on_overdue: Callable[[WorkContext], None]) -> bool:
        """Wait until the monotonic `deadline` for running items; then `on_overdue` the rest."""
        finished = self._join_until(deadline)
        if not finished:
            with self._cond:
                overdue = list(self._running.values())
            for ctx in overdue:
                on_overdue(ctx)
            finished = self._join_until(self.clock.after_real(5.0))
        return finished

    def _join_until(self, deadline: float) -> bool:
        for t in self._workers:
            while t.is_alive() and self.clock.monotonic() < deadline:
                t.join(0.05)
            if t.is_alive():
                return False
        return True

    # ---------------------------------------------------------------- submitting

    def submit(self, items: Iterable[WorkItem]) -> list[WorkItem]:
        """Queue items; returns those refused because their key is queued or running."""
        refused: list[WorkItem] = []
        with self._cond:
            if self._stopping:
                return list(items)
            head = self._heap[0][0] if self._heap else None
            for item in items:
                holder = self._keys.get(item.key)
                if holder is not None:
                    if holder in self._running and item.key not in self._follow:
                        # Running late (planned near the end of its minute): start the next
                        # run as soon as this one ends, instead of skipping a whole minute.
                        self._follow[item.key] = item
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
        """The head of the heap changed, or the pool is stopping (called holding `_cond`)."""
        self._cond.notify_all()

    def is_busy_with(self, key: str) -> bool:
        with self._cond:
            return key in self._keys

    def cancel(self, item_id: str) -> WorkContext | WorkItem | None:
        """Cancel a queued item (returns it) or flag a running one (returns its context)."""
        with self._cond:
            item = self._queued.pop(item_id, None)
            if item is None:
                for key, nxt in list(self._follow.items()):
                    if nxt.id == item_id:
                        return self._follow.pop(key)
            if item is not None:
                self._forget(item)
                return item
            ctx = self._running.get(item_id)
            if ctx is not None:
                ctx.cancelled.set()
            return ctx

    def _forget(self, item: WorkItem) -> None:
        if self._keys.get(item.key) == item.id:
            del self._keys[item.key]

    # ---------------------------------------------------------------- threads

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                for item in self._pop_due(self.clock.time()):
                    self._ready.put(item)
                timeout = self.clock.wait_seconds(self._heap[0][0]) if self._heap else None
                self._cond.wait(timeout)

    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            item = self._ready.get()
            if item is _STOP:
                return
            assert isinstance(item, WorkItem)
            ctx = self._begin(item, name)
            if ctx is None:
                continue  # cancelled between dispatch and pick-up
            try:
                self.handler(item, ctx)
                self.completed += 1
            except Exception:
                self._failed(item)
            except BaseException:
                self._killed(item, name)
                raise
            finally:
                self._finished(item)

    def _pop_due(self, now: float) -> Iterator[WorkItem]:
        """Take the items planned up to `now` off the heap, as due (holding `_cond`)."""
        while self._heap and self._heap[0][0] <= now:
            _, _, item = heapq.heappop(self._heap)
            if item.id in self._queued:  # not cancelled meanwhile
                self._due.add(item.id)
                yield item

    def _begin(self, item: WorkItem, worker: str) -> WorkContext | None:
        """A due item is taken up: running from now, or None if it was cancelled meanwhile."""
        with self._cond:
            return self._begin_locked(item, worker)

    def _begin_locked(self, item: WorkItem, worker: str) -> WorkContext | None:
        self._due.discard(item.id)
        if self._queued.pop(item.id, None) is None:
            return None
        ctx = WorkContext(item, worker=worker, started=self.clock.time())
        self._running[item.id] = ctx
        return ctx

    def _failed(self, item: WorkItem) -> None:
        """Log the exception being handled: the item failed, the pool goes on."""
        self.failed += 1
        log.exception("pool %s: %s %s failed", self.name, item.kind.value, item.key)

    def _killed(self, item: WorkItem, worker: str) -> None:
        """Log the BaseException being handled, which is about to end `worker`."""
        self.failed += 1
        log.critical(
            "pool %s: %s %s killed worker %s; it will be replaced",
            self.name,
            item.kind.value,
            item.key,
            worker,
            exc_info=True,
        )

    def _finished(self, item: WorkItem) -> None:
        """The item is over (done, failed or abandoned): free its key, queue its follow-up."""
        with self._cond:
            self._running.pop(item.id, None)
            self._forget(item)
            nxt = self._follow.pop(item.key, None)
            if nxt is not None and not self._stopping:
                self._enqueue(nxt)
                self._wake()

    # ---------------------------------------------------------------- views

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "size": self.size,
                "busy": len(self._running),
                "queued": len(self._queued) + len(self._follow),
                "due": len(self._due) + len(self._follow),
                "completed": self.completed,
                "failed": self.failed,
            }

    def scheduled(self) -> int:
        """Items accepted for later in the minute, not yet due (counted, not listed)."""
        with self._cond:
            return len(self._queued) - len(self._due)

    def snapshot(self) -> list[dict[str, Any]]:
        """Running items, and queued items that are due (waiting for a worker), for queue.json.

        Items planned for later in the current minute are only counted (`scheduled()`):
        listing a whole minute's 20,000 items every second cost a third of the daemon's CPU.
        """
        with self._cond:
            queued = [self._queued[i] for i in self._due if i in self._queued]
            queued += list(self._follow.values())
            running = list(self._running.values())
        rows: list[dict[str, Any]] = []
        for ctx in running:
            rows.append(_row(ctx.item, WorkState.RUNNING, ctx.started, ctx.pid, ctx.worker))
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


def run_concurrently(calls: Sequence[Callable[[], T]], name: str = "parallel") -> list[T]:
    """Run `calls` at the same time (one short-lived thread each) and return their results.

    For composite checks, whose components run together. An exception in one
    call is re-raised after all have finished.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], T]) -> None:
        try:
            results[i] = call()
        except BaseException as err:  # re-raised in the caller's thread below
            errors.append(err)

    threads = [
        threading.Thread(target=run, args=(i, c), name=f"{name}-{i}", daemon=True)
        for i, c in enumerate(calls)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
