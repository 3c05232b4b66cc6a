"""DiskHealth: write failures counted, logged at most once a minute, and the recovery noticed.

Shared by everything that writes state or history in the daemon; `daemon.json`,
status and the metrics show it (DESIGN §6, faults).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.clock import Clock, utc_iso
from survivor.store.fsio import DiskWriteError

log = logging.getLogger(__name__)


class DiskHealth:
    """Counts write failures; logs them at most once a minute; remembers when it recovered."""

    def __init__(self, clock: Clock, history_root: Path | None = None) -> None:
        self.clock = clock
        self.errors = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None
        self._last_logged = -1e18
        self._last_failure = -1e18
        self._lock = threading.Lock()
        # The current outage (from failing_since): its errors, the history records it cost,
        # its last failure; and the outages that ended, for the daemon events history.
        self._history_prefix = None if history_root is None else f"{history_root}{os.sep}"
        self.outage_errors = 0
        self.records_lost = 0
        self._last_failure_at: datetime | None = None
        self._ended: list[dict[str, Any]] = []

    def failed(self, err: DiskWriteError, *, record_lost: bool = True) -> None:
        """Count a failed write; `record_lost=False` for a record that will be tried again."""
        with self._lock:
            now = self.clock.now()
            self.errors += 1
            self.last_error = str(err)
            self._last_failure = self.clock.monotonic()
            if self.failing_since is None:
                self.failing_since = now
                self.outage_errors = self.records_lost = 0
            self.outage_errors += 1
            self._last_failure_at = now
            if record_lost and self._is_history_record(err.path):
                self.records_lost += 1
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
                    "disk: writes work again (failing since %s; %d history records lost)",
                    utc_iso(self.failing_since),
                    self.records_lost,
                )
                self._ended.append(self._outage(self.failing_since, ongoing=False))
                self.failing_since = None
                self.last_error = None

    def _is_history_record(self, path: Path) -> bool:
        """A failed append of a history record (not a state file, not the results log)."""
        prefix = self._history_prefix
        return prefix is not None and str(path).startswith(prefix) and path.suffix == ".jsonl"

    def _outage(self, since: datetime, *, ongoing: bool) -> dict[str, Any]:
        last = self._last_failure_at or since
        return {
            "since": utc_iso(since),
            "until": utc_iso(last),
            "ongoing": ongoing,
            "errors": self.outage_errors,
            "history_records_lost": self.records_lost,
            "last_error": self.last_error,
        }

    def take_outages(self) -> list[dict[str, Any]]:
        """Outages that ended since the last call (for the daemon events history)."""
        with self._lock:
            ended, self._ended = self._ended, []
            return ended

    def keep_outage(self, outage: dict[str, Any]) -> None:
        """An outage whose record could not be written: offered again by take_outages()."""
        with self._lock:
            self._ended.append(outage)

    def current_outage(self) -> dict[str, Any] | None:
        """The outage going on now, if any (recorded at shutdown as `ongoing`)."""
        with self._lock:
            if self.failing_since is None:
                return None
            return self._outage(self.failing_since, ongoing=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "disk": "ok" if self.failing_since is None else "failing",
            "disk_errors": self.errors,
            "last_disk_error": self.last_error,
            "failing_since": None if self.failing_since is None else utc_iso(self.failing_since),
        }
