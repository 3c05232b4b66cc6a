"""Timeouts: when each run in flight next needs the loop, in a heap, so a turn costs O(log n).

The check loop used to ask every run in flight for its next deadline on
every turn, and enforce every run's deadlines after every wake-up: with a
thousand two-second checks in flight that pass over all of them was most of
the daemon's time per check. Here a run is armed with the time it next
needs attention (its timeout, its kill after the grace period, the end of
the linger after exit); re-arming it replaces the old time without a search
(the old entry is left in the heap, marked stale by its number, and dropped
when it reaches the top or when stale entries outnumber live ones).

Pure: times are passed in (real monotonic seconds: runs are timed in real
seconds, survivor.proc.runner).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")

COMPACT_SLACK = 64  # stale entries tolerated beyond as many as there are live ones


class Timeouts(Generic[T]):
    """At most one live wake-up time per owner; the owners whose time has come, in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._live: dict[T, int] = {}  # owner -> the number of its live entry
        self._at: dict[T, float] = {}  # owner -> its live time
        self._numbers = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def arm(self, owner: T, at: float) -> None:
        """`owner` next needs attention at `at` (replacing any earlier arming). Arming it
        again for the same time costs nothing (a run that only printed keeps its deadline)."""
        if self._at.get(owner) == at and owner in self._live:
            return
        number = next(self._numbers)
        self._at[owner] = at
        self._live[owner] = number
        heapq.heappush(self._heap, (at, number, owner))
        if len(self._heap) > 2 * len(self._live) + COMPACT_SLACK:
            self._compact()

    def disarm(self, owner: T) -> None:
        """`owner` needs no attention any more (its entry goes stale)."""
        self._live.pop(owner, None)
        self._at.pop(owner, None)

    def next_at(self) -> float | None:
        """The earliest live wake-up time, or None when nothing is armed."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[T]:
        """The owners whose time is `now` or earlier, earliest first; they are disarmed."""
        found: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _at, number, owner = heapq.heappop(heap)
            if self._live.get(owner) == number:
                del self._live[owner]
                del self._at[owner]
                found.append(owner)
        return found

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
        heapq.heapify(self._heap)
