"""DiskHealth: write failures counted, logged at most once a minute, and the recovery noticed.

Shared by everything that writes state or history in the daemon; `daemon.json`,
status and the metrics show it (DESIGN §6, faults).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from survivor.clock import Clock, utc_iso
from survivor.store.fsio import DiskWriteError

log = logging.getLogger(__name__)


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
