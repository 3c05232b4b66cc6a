"""Test doubles: a clock the test drives, a runner that returns canned results, work items."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from survivor.model.work import WorkItem, WorkKind


class FakeClock:
    """Settable time. `sleep_until` jumps ahead instead of sleeping (unless stopped)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set(self, when: datetime) -> None:
        with self._lock:
            self._mono += (when - self._now).total_seconds()
            self._now = when

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        with self._lock:
            if deadline > self._mono:
                self._now += timedelta(seconds=deadline - self._mono)
                self._mono = deadline
        return stop.is_set()

    def wait_seconds(self, epoch: float) -> float:
        return max(0.0, epoch - self.time())

    def after_real(self, seconds: float) -> float:
        return self.monotonic() + seconds


def work_item(n: int, key: str | None = None, delay: float = 0.0) -> WorkItem:
    """Check item `i<n>` for host `h<n>`, planned `delay` seconds from now (real time)."""
    return WorkItem(
        id=f"i{n}",
        kind=WorkKind.CHECK,
        check="ping",
        hosts=(f"h{n}",),
        planned=time.time() + delay,
        key=key or f"check:ping@h{n}",
    )
