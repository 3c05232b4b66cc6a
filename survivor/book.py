"""The daemon's in-memory books, shared by the check and alert sides.

`CheckBook` holds every pair's current CheckState (check.json is its durable
copy); `ItemIds` names work items; `DiskHealth` counts write failures and
says when the disk works again. Each is thread-safe and does no I/O of its
own, so `checks` and `alerts` can share them without importing each other.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from survivor.clock import Clock, utc_iso
from survivor.fsio import DiskWriteError
from survivor.state import CheckState, with_reschedule

log = logging.getLogger(__name__)


class CheckBook:
    """The daemon's in-memory check states; check.json files are their durable copies."""

    def __init__(self, states: Mapping[tuple[str, str], CheckState] | None = None) -> None:
        self._states: dict[tuple[str, str], CheckState] = dict(states or {})
        self._lock = threading.Lock()

    def get(self, check: str, host: str) -> CheckState | None:
        return self._states.get((check, host))

    def put(self, check: str, host: str, state: CheckState) -> None:
        with self._lock:
            self._states[(check, host)] = state

    def update(
        self, check: str, host: str, change: Callable[[CheckState | None], CheckState]
    ) -> tuple[CheckState | None, CheckState]:
        with self._lock:
            old = self._states.get((check, host))
            new = self._states[(check, host)] = change(old)
            return old, new

    def reschedule(self, check: str, host: str) -> CheckState:
        return self.update(check, host, with_reschedule)[1]

    def prune(self, keep: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [k for k in self._states if k not in keep]:
                del self._states[key]

    def items(self) -> list[tuple[tuple[str, str], CheckState]]:
        with self._lock:
            return list(self._states.items())


class ItemIds:
    """Short ids, unique across daemon runs: a random run prefix and a counter."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix or secrets.token_hex(2)
        self._counter = itertools.count(1)

    def next(self, kind: str) -> str:
        return f"{kind[0]}{self._prefix}{next(self._counter):x}"


class DiskHealth:
    """Counts write failures; logs them at most once a minute; remembers when it recovered."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.errors = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None
        self._last_logged = -1e18
        self._last_failure = -1e18
        self._lock = threading.Lock()

    def failed(self, err: DiskWriteError) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = str(err)
            self._last_failure = self.clock.monotonic()
            if self.failing_since is None:
                self.failing_since = self.clock.now()
            if self.clock.monotonic() - self._last_logged >= 60.0:
                self._last_logged = self.clock.monotonic()
                log.error(
                    "disk: %s (checks keep running; %d write errors so far)", err, self.errors
                )

    def succeeded(self) -> None:
        if self.failing_since is None:
            return
        with self._lock:
            # Recovered only after a minute without failures: on a nearly full disk some
            # writes succeed between failures, and that is not worth a log line each.
            if (
                self.failing_since is not None
                and self.clock.monotonic() - self._last_failure >= 60.0
            ):
                log.warning(
                    "disk: writes work again (failing since %s)", utc_iso(self.failing_since)
                )
                self.failing_since = None
                self.last_error = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "disk": "ok" if self.failing_since is None else "failing",
            "disk_errors": self.errors,
            "last_disk_error": self.last_error,
            "failing_since": None if self.failing_since is None else utc_iso(self.failing_since),
        }
