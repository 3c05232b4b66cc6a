"""What the daemon tells the world while it runs: daemon.json, queue.json, metrics, STATUS=.

Other tools read these files instead of asking the daemon (DESIGN §5):
daemon.json is rewritten at least every HEARTBEAT_S seconds and on every
change of mood or reload; queue.json when what it lists changes, and at
least once a heartbeat; the Prometheus textfile once a minute; systemd's
STATUS= line when it changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor import __version__
from survivor.clock import utc_iso
from survivor.daemon import notify
from survivor.daemon.wiring import Parts
from survivor.model.documents import ConfigSnapshot, RowTexts
from survivor.model.work import Mood
from survivor.store.fsio import DiskWriteError
from survivor.store.overview import RESCAN_S
from survivor.views.metrics import export

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
PRESSURE_LOG_S = 60.0  # checks held back are logged at most this often
QUEUE_WRITE_S = 1.0  # queue.json at most this often...
QUEUE_SHARE = 0.05  # ...and so that writing it takes at most this share of the time
METRICS_S = 60.0
OVERVIEW_S = 5.0  # overview.json at most this often, when something changed, and at least
# every 2 * OVERVIEW_S; the views trust it for one heartbeat (views/snapshot.py)


@dataclass(slots=True)
class DaemonStatus:
    """The daemon's own facts that daemon.json reports beside its parts' figures."""

    config_path: Path
    started: datetime
    mood: Mood = Mood.STARTING
    last_reload: dict[str, Any] | None = None
    last_tick: dict[str, str | None] = field(default_factory=lambda: {"check": None, "alert": None})
    disk_config: dict[str, Any] = field(default_factory=lambda: {"stale": False})


class Heartbeat:
    """Writes the documents that describe the running daemon."""

    def __init__(self, parts: Parts, status: DaemonStatus) -> None:
        self.parts = parts
        self.status = status
        self._last_status = ""
        self._last_queue: tuple[list[dict[str, Any]], dict[str, int]] | None = None
        self._queue_rows = RowTexts()
        self._pressure_logged: float | None = None  # monotonic; None: not held back
        self._rescanned: float | None = None  # monotonic: the last rescan of ack/inhibit
        self._overview_at: float | None = None  # monotonic: the last overview.json written

    def log_back_pressure(self, mono: float) -> None:
        """Say in the log that due checks wait for room: once a minute while it lasts (not
        once per check), and once when it is over."""
        stats = self.parts.check_pool.stats()
        waiting = stats.get("waiting", 0)
        if waiting:
            if self._pressure_logged is None or mono >= self._pressure_logged + PRESSURE_LOG_S:
                inst = self.parts.running.config.instance
                log.warning(
                    "checks: %d due checks waiting for room, the oldest for %ds: %d running,"
                    " the most allowed (max_running_checks %s, check_workers %s, the"
                    " machine's limits %d)",
                    waiting,
                    stats.get("waiting_s", 0),
                    stats.get("busy", 0),
                    inst.max_running_checks,
                    inst.check_workers,
                    self.parts.machine,
                )
                self._pressure_logged = mono
        elif self._pressure_logged is not None:
            log.info("checks: no due check waits for room any more")
            self._pressure_logged = None

    def daemon_doc(self) -> dict[str, Any]:
        """daemon.json: the heartbeat other tools read instead of asking the daemon."""
        parts, status = self.parts, self.status
        config, generation = parts.running.get()
        loaded_at = parts.running.loaded_at
        return {
            "version": 1,
            "pid": os.getpid(),
            "survivor": __version__,
            "instance": config.instance.name,
            "mood": status.mood.value,
            "started": utc_iso(status.started),
            "updated": utc_iso(parts.clock.now()),
            "config": {
                "path": str(status.config_path),
                "files": [str(f) for f in config.files],
                "generation": generation,
                "fingerprint": config.fingerprint,
                "loaded_at": utc_iso(loaded_at),
                "stale": bool(status.disk_config.get("stale")),
                "on_disk": status.disk_config,
            },
            "last_reload": status.last_reload,
            "ticks": dict(status.last_tick),
            "pools": {"check": parts.check_pool.stats(), "alert": parts.alert_pool.stats()},
            "alerts": parts.alert_stats.to_dict(),
            "health": parts.health.to_dict(),
            "heartbeat_s": HEARTBEAT_S,
            **({} if parts.dispatcher is None else parts.dispatcher.daemon_part()),
        }

    def write_daemon_doc(self) -> None:
        try:
            self.parts.stores.state.write_daemon(self.daemon_doc())
        except DiskWriteError as err:
            self.parts.health.failed(err)

    def write_workers(self) -> None:
        """state/workers.json, with remote workers only (DESIGN §7b)."""
        if self.parts.dispatcher is not None:
            self.parts.stores.state.write_workers(self.parts.dispatcher.workers_doc())

    def write_running_config(self) -> None:
        """running-config.json: the files of the config this generation runs, so that the
        commands work from it while the files on disk do not load."""
        config, generation = self.parts.running.get()
        snapshot = ConfigSnapshot(
            path=str(config.path),
            generation=generation,
            loaded_at=self.parts.running.loaded_at,
            files=tuple((str(p), data) for p, data in config.sources),
        )
        try:
            self.parts.stores.state.write_running_config(snapshot)
        except DiskWriteError as err:
            self.parts.health.failed(err)

    def write_queue(self, force: bool = False) -> None:
        """queue.json, when what it lists changed (and on the heartbeat, to show it is fresh)."""
        pools = self.parts.pools()
        rows = [row for pool in pools for row in pool.snapshot()]
        scheduled = {"check": pools[0].scheduled(), "alert": pools[1].scheduled()}
        if not force and (rows, scheduled) == self._last_queue:
            return
        self._last_queue = (rows, scheduled)
        self.parts.stores.state.write_queue_text(
            {
                "version": 1,
                "updated": utc_iso(self.parts.clock.now()),
                "pid": os.getpid(),
                "scheduled": scheduled,
            },
            self._queue_rows.join(rows),
        )

    def write_overview(self, mono: float) -> None:
        """overview.json (store/overview.py) when something changed, and at least every
        2 * OVERVIEW_S so the views see it is fresh; ack and inhibit files are read again
        every RESCAN_S, for the ones changed by hand."""
        keeper = self.parts.stores.state.overview
        if keeper is None:
            return
        if self._rescanned is None:
            self._rescanned = mono  # wiring scanned them at start
        elif mono >= self._rescanned + RESCAN_S:
            self._rescanned = mono
            keeper.rescan_silencers()
        force = self._overview_at is None or mono >= self._overview_at + 2 * OVERVIEW_S
        if keeper.write(os.getpid(), utc_iso(self.parts.clock.now()), force=force):
            self._overview_at = mono

    def export_metrics(self, *, up: bool = True) -> None:
        """The Prometheus textfile; `up=False` on the way out (survivor_daemon_up 0)."""
        parts = self.parts
        path = parts.running.config.instance.prometheus_textfile
        if path is None:
            return
        rows = [row for pool in parts.pools() for row in pool.snapshot()]
        export(path, parts.stores.writer, self.daemon_doc(), rows, parts.book.items(), running=up)

    def notify_status(self, *, force: bool = False) -> None:
        """STATUS= for `systemctl status`, sent when it changes (disk trouble shows there)."""
        failing = self.parts.health.failing_since
        if failing is not None:
            status = f"STATUS=DISK FAILING since {utc_iso(failing)}"
        else:
            status = f"STATUS=running generation {self.parts.running.generation}"
        if force or status != self._last_status:
            self._last_status = status
            notify.sd_notify(status)

    def ready(self) -> None:
        """READY=1 with the status line: after start-up and after each reload."""
        self._last_status = f"STATUS=running generation {self.parts.running.generation}"
        notify.sd_notify("READY=1", self._last_status)


def queue_write_due(began: float, ended: float) -> float:
    """When to write queue.json next, after a write from `began` to `ended` (monotonic).

    Once a second; but with a backlog of tens of thousands of due items one
    write costs tens of milliseconds of the GIL, taken from the checks that
    would shrink the backlog. So a long queue is written less often: its
    writing never takes more than QUEUE_SHARE of the daemon's time.
    """
    return began + max(QUEUE_WRITE_S, (ended - began) / QUEUE_SHARE)
