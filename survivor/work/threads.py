"""WorkerPool: named worker threads that take each item from a WorkQueue at its planned time.

The alert pool: each alert job runs on one thread from start to end (it may
run a fix, then format and transmit modules, one after the other). The
queue (survivor.work.queue) holds the items and their keys; the workers wait
on it for the next item due. A handler that raises is logged and the worker
goes on; a worker thread that dies anyway is replaced by `check_health()`.
`run_concurrently` runs a few calls at once, for a composite check's
components.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from survivor.clock import Clock, read_both
from survivor.model.work import WorkItem
from survivor.work.queue import ClockStep, Reading, WorkContext, WorkQueue

log = logging.getLogger(__name__)

Handler = Callable[[WorkItem, WorkContext], None]
T = TypeVar("T")


class Pool:
    """What every pool offers the daemon, whatever its threads: the front of its queue,
    stopping with a grace period, and its threads for health checks."""

    def __init__(self, name: str, size: int, clock: Clock, queue: WorkQueue) -> None:
        self.name = name
        self.size = size
        self.clock = clock
        self.queue = queue

    def start(self) -> None:
        raise NotImplementedError

    def threads(self) -> list[threading.Thread]:
        raise NotImplementedError

    def check_health(self) -> int:
        """Replace threads that died; returns how many."""
        raise NotImplementedError

    def submit(
        self, items: Iterable[WorkItem], *, first: bool = False, planned_at: Reading | None = None
    ) -> list[WorkItem]:
        """Queue items; returns those refused because their key is queued or running
        (`first`, and `planned_at`, the clock reading they were planned from: see
        WorkQueue.submit)."""
        reading = None if planned_at is None else read_both(self.clock)
        return self.queue.submit(items, first=first, planned_at=planned_at, reading=reading)

    def is_busy_with(self, key: str) -> bool:
        return self.queue.is_busy_with(key)

    def cancel(self, item_id: str) -> WorkContext | WorkItem | None:
        """Cancel a queued item (returns it) or flag a running one (returns its context)."""
        return self.queue.cancel(item_id)

    def observe_clock(self) -> list[ClockStep]:
        """Look for a step of the wall clock now (the takers do at every take) and return the
        steps the queue noticed since the last call, with what it moved and dropped."""
        return self.queue.observe_clock(read_both(self.clock))

    def stats(self) -> dict[str, int]:
        return self.queue.stats(self.size)

    def scheduled(self) -> int:
        return self.queue.scheduled()

    def snapshot(self) -> list[dict[str, Any]]:
        return self.queue.snapshot()

    def stop(self, grace: float, on_overdue: Callable[[WorkContext], None]) -> bool:
        """Drop queued work, let running items finish for `grace` seconds, then `on_overdue`
        each one still running (the daemon kills its process group). True if all finished."""
        self.begin_stop()
        return self.finish_stop(self.clock.after_real(grace), on_overdue)

    def begin_stop(self) -> None:
        """Drop queued work; the threads exit once their items are over."""
        self.queue.stop()

    def finish_stop(self, deadline: float, on_overdue: Callable[[WorkContext], None]) -> bool:
        """Wait until the monotonic `deadline` for running items; then `on_overdue` the rest."""
        finished = self._join_until(deadline)
        if not finished:
            for ctx in self.queue.running():
                on_overdue(ctx)
            finished = self._join_until(self.clock.after_real(5.0))
        return finished

    def _join_until(self, deadline: float) -> bool:
        for t in self.threads():
            while t.is_alive() and self.clock.monotonic() < deadline:
                t.join(0.05)
            if t.is_alive():
                return False
        return True


class WorkerPool(Pool):
    """Up to `size` items at once, each on a worker thread of its own from start to end."""

    def __init__(self, name: str, size: int, handler: Handler, clock: Clock) -> None:
        super().__init__(name, size, clock, WorkQueue())
        self.handler = handler
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._retire = 0  # workers asked to exit after their item (the pool shrank)
        self._seq = 0

    def start(self) -> None:
        for _ in range(self.size):
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        with self._workers_lock:
            self._seq += 1
            t = threading.Thread(target=self._work, name=f"{self.name}-{self._seq}", daemon=True)
            self._workers.append(t)
        t.start()

    def threads(self) -> list[threading.Thread]:
        with self._workers_lock:
            return list(self._workers)

    def check_health(self) -> int:
        """Replace dead worker threads; returns how many were replaced."""
        if self.queue.stopping:
            return 0
        with self._workers_lock:
            dead = [t for t in self._workers if not t.is_alive()]
            for t in dead:
                self._workers.remove(t)
        for t in dead:
            log.error("pool %s: worker %s died; starting a replacement", self.name, t.name)
            self._spawn_worker()
        return len(dead)

    def resize(self, size: int) -> None:
        """Grow or shrink to `size` workers (shrinking lets busy workers finish)."""
        with self.queue.cond:
            delta = size - self.size
            self.size = size
            if delta < 0:
                self._retire += -delta
                self.queue.cond.notify_all()
        for _ in range(max(0, delta)):
            self._spawn_worker()

    # ---------------------------------------------------------------- workers

    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            ctx = self._next(name)
            if ctx is None:
                return
            item = ctx.item
            ok: bool | None = False
            try:
                self.handler(item, ctx)
                ok = True
            except Exception:
                log.exception("pool %s: %s %s failed", self.name, item.kind.value, item.key)
            except BaseException:
                log.critical(
                    "pool %s: %s %s killed worker %s; it will be replaced",
                    self.name,
                    item.kind.value,
                    item.key,
                    name,
                    exc_info=True,
                )
                raise
            finally:
                self.queue.finished(item, ok=ok)

    def _next(self, name: str) -> WorkContext | None:
        """Wait for the next item due and take it; None when this worker is to exit."""
        queue = self.queue
        with queue.cond:
            while True:
                if queue.stopping:
                    return None
                if self._retire > 0:
                    self._retire -= 1
                    with self._workers_lock:
                        self._workers = [t for t in self._workers if t.name != name]
                    return None
                wall, mono = read_both(self.clock)
                taken, head = queue.take(wall, name, lambda running: 1, mono)
                if taken:
                    return taken[0]
                if head is None and queue.has_due():
                    continue
                # From the reading `take` checked for steps of the wall clock; waited out on
                # the monotonic clock, and the next take looks for a step again.
                queue.cond.wait(None if head is None else self.clock.wait_seconds(head, wall))


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
