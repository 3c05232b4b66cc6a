"""Daemon: start-up order, the main loop, shutdown (DESIGN §6).

Threads: the main thread (signals, reload, requests, heartbeat, flushing), the
check and alert scheduler threads (survivor.daemon.schedulers), the check
pool's loops (survivor.work.loop) and the alert pool's workers. Signal
handlers only record (survivor.daemon.signals); the main loop acts.

Start: take the pidfile lock, load the config (exit 78 with every error),
build every part from the state on disk (survivor.daemon.wiring), start pools
and schedulers, then READY=1. SIGHUP: survivor.daemon.reload.
SIGTERM/SIGINT/SIGQUIT: stop ticking, let running modules finish for the grace
period, kill what is left, write final state, exit 0. A second SIGINT: now.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor import __version__
from survivor.clock import Clock, WallClockWatch, from_epoch, read_both, utc_iso
from survivor.config import load_config
from survivor.daemon import notify
from survivor.daemon.heartbeat import (
    HEARTBEAT_S,
    METRICS_S,
    OVERVIEW_S,
    DaemonStatus,
    Heartbeat,
    queue_write_due,
)
from survivor.daemon.logsetup import reopen_log_files, setup_logging
from survivor.daemon.malloc import limit_arenas
from survivor.daemon.reload import ConfigOnDisk, Reloader
from survivor.daemon.requests import apply_requests
from survivor.daemon.schedulers import MinuteLoops
from survivor.daemon.signals import REOPEN_SIGNAL, STOP_SIGNALS, SignalInbox
from survivor.daemon.watch import ChangeInbox, FileWatcher
from survivor.daemon.wiring import Parts, RunningConfig, Stores, build_parts
from survivor.errors import ConfigError
from survivor.model.config import Config
from survivor.model.documents import as_int
from survivor.model.words import counted
from survivor.model.work import Mood
from survivor.proc.limits import machine_capacity, raise_limits
from survivor.store.fsio import DiskWriteError, refuse_symlinked_pairs
from survivor.store.pidfile import AlreadyRunningError
from survivor.work.queue import WorkContext

log = logging.getLogger(__name__)

EXIT_CONFIG = 78  # EX_CONFIG: systemd and init scripts show it as a configuration error
WATCH_QUIET_S = 2.0  # debounce: act on file changes after this long without another
FLUSH_S = 1.0  # fsync: batch commits at least this often
STEP_LOG_S = 60.0  # a failing main-loop step is logged with its traceback at most this often


class Daemon:
    def __init__(self, config_path: Path, clock: Clock, *, grace: float = 10.0) -> None:
        self.config_path = config_path
        self.clock = clock
        self.grace = grace
        self.inbox = SignalInbox()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._step_logged: dict[str, float] = {}

    # ---------------------------------------------------------------- start-up

    def prepare(self, config: Config) -> None:
        """Open the stores and take the pidfile: a second daemon stops here, before any write."""
        self.config = config
        self.stores = Stores.open(config)
        self.stores.pidfile.acquire()

    def start(self) -> None:
        """Build every part from the state on disk, then start pools and threads; READY=1."""
        limit_arenas()  # before any thread of ours allocates
        config, stores, clock = self.config, self.stores, self.clock
        stores.pidfile.write_pid()
        now = clock.now()
        generation = self._previous_generation(now) + 1
        stores.state.sweep_temps(now)
        self._prepare_dirs()
        running = RunningConfig(config, generation, now)
        limits = raise_limits()
        machine = machine_capacity(limits)
        self.parts: Parts = build_parts(config, stores, running, clock, now, machine=machine)
        log.info(
            "limits: %s open files, %s processes: up to %d checks at once, %d with this config",
            limits.open_files or "unlimited",
            limits.processes or "unlimited",
            machine,
            self.parts.check_pool.size,
        )
        parts = self.parts
        for path, err in stores.pidfile.problems:  # a full or read-only disk: say so in health
            parts.health.failed(DiskWriteError(path, err))
        self.status = DaemonStatus(self.config_path, started=now)
        self.heartbeat = Heartbeat(parts, self.status)
        self.on_disk = ConfigOnDisk(parts, self.status, self.heartbeat)
        self.reloader = Reloader(parts, self.status, self.heartbeat, self.on_disk, self.event)
        self.loops = MinuteLoops(parts, self.status, self.stop_event)
        self.status.mood = Mood.RUNNING
        self.event(
            "start",
            pid=os.getpid(),
            version=__version__,
            generation=generation,
            fingerprint=config.fingerprint,
        )
        self.heartbeat.write_daemon_doc()
        self.heartbeat.write_running_config()
        log.info(
            "scheduler ready: %d checks, %d check@host pairs, generation %d, pid %d",
            len(config.checks),
            config.pair_count(),
            generation,
            os.getpid(),
        )
        if parts.dispatcher is not None:  # placed checks run locally until it connects
            parts.dispatcher.start()
        for pool in parts.pools():
            pool.start()
        self._start_thread("check-scheduler", self.loops.check_loop)
        self._start_thread("alert-scheduler", self.loops.alert_loop)
        self.changes = ChangeInbox(
            {p.parent for p in config.files}, config.instance.module_dirs, self.inbox.wake
        )
        self.watcher = FileWatcher(self.changes, clock.monotonic)
        self.watcher.start()
        self.heartbeat.ready()

    def _prepare_dirs(self) -> None:
        """No planted symlink among the pair directories; requests/ exists with modes that
        let operators write and the daemon read (issue 23, items 2 and 3)."""
        state = self.stores.state
        for hosts in (state.layout.hosts, self.stores.history.layout.hosts):
            try:
                refuse_symlinked_pairs(hosts)
            except OSError as err:
                log.error("state: cannot check %s for planted symlinks: %s", hosts, err)
        try:
            state.prepare_requests()
        except OSError as err:
            log.error("state: cannot create %s: %s", state.layout.requests, err)
        problem = state.check_requests_dir()
        if problem is not None:
            log.error("state: %s", problem)

    def _previous_generation(self, now: datetime) -> int:
        """The generation the last daemon on this state directory ran, from its daemon.json."""
        state = self.stores.state
        doc = state.load_document(state.layout.daemon, now)
        if doc is not None and doc.get("version") != 1:
            state.move_aside(state.layout.daemon, f"version {doc.get('version')!r}", now)
            return 0
        config = (doc or {}).get("config")
        generation = as_int(config.get("generation")) if isinstance(config, dict) else None
        return generation if generation is not None and generation >= 0 else 0

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def event(self, event: str, **fields: Any) -> None:
        """One record in the daemon events history (history/daemon/events-*.jsonl)."""
        try:
            self.stores.history.append_event(self.clock.now(), event, **fields)
        except DiskWriteError as err:
            self.parts.health.failed(err)

    # ---------------------------------------------------------------- main loop

    def run(self) -> int:
        """The main thread's loop until a stop signal; returns the exit code."""
        parts = self.parts
        next_queue = next_flush = next_beat = next_metrics = self.clock.monotonic()
        next_overview = next_beat
        wd_interval = notify.watchdog_interval()
        next_wd = self.clock.monotonic()
        watch = WallClockWatch(read_both(self.clock))
        while True:
            sig = self.inbox.take()
            if sig is not None:
                if sig == signal.SIGHUP:
                    if self.status.mood is Mood.RUNNING:
                        self.reloader.reload()
                    continue
                if sig == REOPEN_SIGNAL:
                    self._reopen_files()
                    continue
                if sig not in STOP_SIGNALS:
                    log.warning("signal %s: ignored (pid %d)", sig.name, os.getpid())
                    continue
                return self.shutdown(sig)
            before = watch.last
            step = watch.observe(read_both(self.clock))
            if step:
                self._step("clock", self._clock_stepped, step, before, watch.last)
            mono = self.clock.monotonic()
            # Each step on its own: one that fails (an unreadable requests/, a full disk)
            # never skips the flush, queue, heartbeat or watchdog after it.
            self._step("requests", apply_requests, parts)
            if mono >= next_flush and self._step("flush", self.stores.writer.flush):
                next_flush = mono + FLUSH_S  # a failed flush is tried again at once
            if mono >= next_queue:
                self._step("queue", self.heartbeat.write_queue, force=mono >= next_beat)
                next_queue = queue_write_due(mono, self.clock.monotonic())
            self._step("changes", self._notice_changes, mono, heartbeat=mono >= next_beat)
            if mono >= next_overview:
                next_overview = mono + OVERVIEW_S
                self._step("overview", self.heartbeat.write_overview, mono)
            if mono >= next_beat:
                for pool in parts.pools():
                    self._step("pool health", pool.check_health)
                self._step("outages", self._record_outages)
                if self._step("heartbeat", self.heartbeat.write_daemon_doc):
                    next_beat = mono + HEARTBEAT_S  # a failed one is tried again at once
                self._step("workers", self.heartbeat.write_workers)
                self._step("status", self.heartbeat.notify_status)
                self._step("back pressure", self.heartbeat.log_back_pressure, mono)
            if mono >= next_metrics:
                next_metrics = mono + METRICS_S
                self._step("metrics", self.heartbeat.export_metrics)
            if wd_interval is not None and mono >= next_wd:
                next_wd = mono + wd_interval
                if all(t.is_alive() for t in self.threads):
                    self._step("watchdog", notify.sd_notify, "WATCHDOG=1")
            self.inbox.wake.wait(0.5)  # signals and file events wake it at once
            self.inbox.wake.clear()

    def _step(self, name: str, fn: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
        """One step of the main loop; its failure is counted or logged (once a minute a step)."""
        try:
            fn(*args, **kwargs)
        except DiskWriteError as err:
            self.parts.health.failed(err)
        except Exception:
            mono = self.clock.monotonic()
            if mono - self._step_logged.get(name, -1e18) >= STEP_LOG_S:
                self._step_logged[name] = mono
                log.exception("main loop: step %s failed; the other steps go on", name)
        else:
            return True
        return False

    def _clock_stepped(
        self, step: float, before: tuple[float, float], after: tuple[float, float]
    ) -> None:
        """The wall clock was stepped by `step` seconds between the readings `before` and
        `after` (wall, monotonic): the pools move their queued work with it (each notices
        the step itself, at its next take or here, WorkQueue.observe_clock), the check
        scheduler is woken to plan its minute again; logged, and recorded in the events
        history."""
        parts = self.parts
        checks = parts.check_pool.observe_clock()
        alerts = parts.alert_pool.observe_clock()
        self.loops.clock_stepped()
        moved = sum(s.moved for s in checks)
        dropped = sum(s.dropped for s in checks)
        alerts_moved = sum(s.moved for s in alerts)
        expected = before[0] + (after[1] - before[1])
        direction = "back" if step < 0 else "forward"
        log.warning(
            "clock: the wall clock was stepped %s %.0f s (%s, expected %s); %d queued checks"
            " and %d alerts moved with it, %d checks left to the next minute's tick",
            direction,
            abs(step),
            utc_iso(from_epoch(after[0])),
            utc_iso(from_epoch(expected)),
            moved,
            alerts_moved,
            dropped,
        )
        self.event(
            "clock-jump",
            seconds=round(step, 3),
            direction=direction,
            expected=utc_iso(from_epoch(expected)),
            checks_moved=moved,
            checks_dropped=dropped,
            alerts_moved=alerts_moved,
        )

    def _record_outages(self, *, ongoing: bool = False) -> None:
        """Each disk outage that ended, with its span and the history records it cost, as a
        `disk-outage` event (DESIGN §5: disk errors in the daemon events history). Written
        once the disk works again (the events file may be on the disk that failed); at
        shutdown an outage still going on is recorded as `ongoing`."""
        health = self.parts.health
        outages = health.take_outages()
        current = health.current_outage() if ongoing else None
        if current is not None:
            outages.append(current)
        for outage in outages:
            try:
                self.stores.history.append_event(self.clock.now(), "disk-outage", **outage)
            except DiskWriteError as err:
                health.failed(err, record_lost=outage["ongoing"])  # else tried again, not lost
                if not outage["ongoing"]:
                    health.keep_outage(outage)
                continue
            log.warning(
                "disk: outage from %s to %s recorded: %d write errors, %d history records lost",
                outage["since"],
                outage["until"],
                outage["errors"],
                outage["history_records_lost"],
            )

    def _reopen_files(self) -> None:
        """SIGUSR1: reopen the log file and results_log (after logrotate moved them)."""
        reopened = reopen_log_files()
        self.parts.results.reopen()
        if self.parts.results.path is not None:
            reopened.append(str(self.parts.results.path))
        log.info("SIGUSR1: reopened %s", ", ".join(reopened) or "nothing (no log files)")

    def _notice_changes(self, mono: float, heartbeat: bool) -> None:
        """Debounced file events; on the heartbeat also compare stamps (no events on NFS)."""
        config_paths, module_paths = self.changes.take_if_quiet(mono, WATCH_QUIET_S)
        for path in sorted(module_paths):
            log.info("mod: %s changed on disk; used from its next run", path)
        if config_paths or (heartbeat and self.on_disk.changed()):
            self.on_disk.check()

    # ---------------------------------------------------------------- shutdown

    def shutdown(self, sig: signal.Signals) -> int:
        log.info(
            "stopping (%s): letting running checks finish for up to %.0f s", sig.name, self.grace
        )
        notify.sd_notify("STOPPING=1")
        self.status.mood = Mood.STOPPING
        self.loops.halt()
        deadline = self.clock.after_real(self.grace)
        pools = self.parts.pools()
        for pool in pools:
            pool.begin_stop()
        finished = all([pool.finish_stop(deadline, self._kill_overdue) for pool in pools])
        if not finished:
            log.warning("stopping: some checks did not finish after being killed")
        for t in self.threads:
            t.join(2.0)
        if self.parts.dispatcher is not None:
            self.parts.dispatcher.stop()
        self._finish()
        return 0

    def _kill_overdue(self, ctx: WorkContext) -> None:
        ctx.cancelled.set()  # killed by us: not a result worth recording
        if ctx.pid:
            log.warning(
                "stopping: killing %s %s (pid %d) after the grace period",
                ctx.item.kind.value,
                ctx.item.key,
                ctx.pid,
            )
            self.parts.runner.kill_group(ctx.pid)

    def _finish(self) -> None:
        self.status.mood = Mood.STOPPED
        self.watcher.stop()
        generation = self.parts.running.generation
        for step in (
            lambda: self.heartbeat.write_queue(force=True),
            self.heartbeat.write_daemon_doc,
            self.heartbeat.write_workers,
            lambda: self._record_outages(ongoing=True),
            lambda: self.heartbeat.export_metrics(up=False),
            lambda: self.event("stop", pid=os.getpid(), generation=generation),
            self.stores.writer.flush,
        ):
            try:
                step()
            except (DiskWriteError, OSError) as err:  # each final write on its own
                log.error("stopping: final state not fully written: %s", err)
        self.parts.results.close()
        self.stores.pidfile.release()
        log.info("stopped")


def run_daemon(config_path: Path, clock: Clock, *, grace: float = 10.0) -> int:
    """Load, start, run: the body of `survivor run` (foreground)."""
    config_path = config_path.absolute()  # the daemon moves to "/" below
    try:
        config = load_config(config_path)
    except ConfigError as err:
        # No log target yet (it is in the config): the terminal or the journal, plainly.
        logging.basicConfig(level=logging.INFO, format="survivor: %(levelname)s %(message)s")
        for problem in err.problems:
            log.error("%s", problem)
        log.error("not starting: %s", counted(len(err.problems), "configuration problem"))
        return EXIT_CONFIG
    setup_logging(config.instance.log)
    daemon = Daemon(config_path, clock, grace=grace)
    daemon.inbox.install()
    try:
        daemon.prepare(config)
    except AlreadyRunningError as err:
        log.error("not starting: %s", err)
        if config.instance.log.target != "stderr":  # whoever started it must see why
            print(f"survivor: not starting: {err}", file=sys.stderr)
        return 1
    # As a detached daemon does: hold no mount point busy, and let the runner start
    # modules in "/" with posix_spawn, which cannot change directory itself.
    os.chdir("/")
    daemon.start()
    return daemon.run()
