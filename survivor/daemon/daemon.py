"""Daemon: start-up order, the signal inbox, the main loop, reload, shutdown, health.

Threads: the main thread (signals, reload, requests, heartbeat, flushing), the
check scheduler (one tick per wall-clock minute), the check pool's loop (up to
`check_workers` checks at once, survivor.looppool), the alert scheduler and the
alert pool's dispatcher and workers. Signal handlers only record; the main loop
acts (STYLE habit 3).

Start: take the pidfile lock, load the config (exit 78 with every error),
reconcile state with it, start pools and schedulers, then READY=1.
SIGHUP: load the new config beside the running one; on any error keep the old
one and say so in the log, daemon.json and the events history; on success swap
the one reference (queued work picks up the new definitions, running work
finishes on the old), prune removed state, log the diff.
SIGTERM/SIGINT/SIGQUIT: stop ticking, let running modules finish for the grace
period, kill what is left, write final state, exit 0. A second SIGINT: now.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from survivor import __version__
from survivor.alerts.deliver import AlertExecutor
from survivor.alerts.fixes import FixRunner
from survivor.alerts.jobs import AlertStats
from survivor.alerts.scheduler import AlertScheduler
from survivor.checks.execute import CheckExecutor, CheckRunner
from survivor.checks.record import CheckRecorder, ResultsLog
from survivor.checks.scheduler import CheckScheduler, check_item, pairs_of
from survivor.clock import MINUTE, Clock, floor_minute, local_zone, utc_iso
from survivor.config import diff_configs, load_config
from survivor.daemon import notify
from survivor.daemon.malloc import limit_arenas
from survivor.daemon.watch import ChangeInbox, FileWatcher, file_stamps
from survivor.errors import ConfigError
from survivor.model.config import Config, FsyncPolicy
from survivor.model.documents import Request
from survivor.model.work import ItemIds, Mood, WorkItem
from survivor.proc.runner import ModuleRunner
from survivor.store.books import AlertBook, CheckBook
from survivor.store.fsio import (
    AlreadyRunningError,
    DiskWriteError,
    EntityLocks,
    FileWriter,
    PidFile,
)
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.views.metrics import export
from survivor.work.loop import LoopPool
from survivor.work.queue import WorkContext
from survivor.work.threads import WorkerPool, run_concurrently

log = logging.getLogger(__name__)

EXIT_CONFIG = 78  # EX_CONFIG: systemd and init scripts show it as a configuration error
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
HEARTBEAT_S = 15.0
QUEUE_WRITE_S = 1.0  # queue.json at most this often...
QUEUE_SHARE = 0.05  # ...and so that writing it takes at most this share of the time
METRICS_S = 60.0
START_PREPARE_S = 60.0  # the longest the first checks wait for never-run pairs' directories
CHECK_START_TICK = 0.25  # checks falling due this close together start together (looppool)
# Two check loops: while one waits for its child to exec (the GIL released, survivor.spawn),
# the other records and starts checks. Three or four did no better than two at 72,000-76,000
# services (docs/benchmarks.md).
CHECK_LOOPS = 2
WATCH_QUIET_S = 2.0  # debounce: act on file changes after this long without another


class SignalInbox:
    """Signal handlers append here and return; the main loop takes them."""

    def __init__(self) -> None:
        self._received: deque[signal.Signals] = deque()
        self._stopping = False
        self.wake = threading.Event()

    def record(self, signum: int, frame: FrameType | None) -> None:
        # Runs between any two bytecodes of the main thread: append, wake, return.
        sig = signal.Signals(signum)
        if sig == signal.SIGINT and self._stopping:
            # A second SIGINT means "now". State files are replaced atomically and history
            # lines are single writes, so exiting here tears nothing.
            os._exit(1)
        if sig in STOP_SIGNALS:
            self._stopping = True
        self._received.append(sig)
        self.wake.set()

    def take(self) -> signal.Signals | None:
        return self._received.popleft() if self._received else None

    def install(self) -> None:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(sig, self.record)


class Daemon:
    def __init__(self, config_path: Path, clock: Clock, *, grace: float = 10.0) -> None:
        self.config_path = config_path
        self.clock = clock
        self.grace = grace
        self.inbox = SignalInbox()
        self.mood = Mood.STARTING
        self.stop_event = threading.Event()
        self._config_lock = threading.Lock()
        self.config: Config
        self.generation = 0
        self.loaded_at: datetime | None = None
        self.started = clock.now()
        self.last_reload: dict[str, Any] | None = None
        self.last_tick: dict[str, str | None] = {"check": None, "alert": None}
        self.threads: list[threading.Thread] = []
        self.disk_config: dict[str, Any] = {"stale": False}  # the config on disk vs the running one
        self._last_status = ""
        self._last_queue: tuple[list[dict[str, Any]], dict[str, int]] | None = None
        self._prepared_for: Config | None = None  # the config whose new pairs have directories

    # ---------------------------------------------------------------- start-up

    def prepare(self, config: Config) -> None:
        """Everything up to starting threads: stores, pidfile, state reconciled."""
        self.config = config
        inst = config.instance
        self.tz = local_zone(inst.timezone)
        self.writer = FileWriter(inst.fsync)
        self.locks = EntityLocks()
        self.state = StateStore(inst.state_dir, self.writer, self.locks)
        self.history = HistoryStore(inst.history_dir, self.writer)
        self.pidfile = PidFile(self.state.pid_path)
        self.pidfile.acquire()  # before anything else writes: a second daemon stops here

    def start(self) -> None:
        limit_arenas()  # before any thread of ours allocates
        config = self.config
        inst = config.instance
        self.pidfile.write_pid()
        now = self.clock.now()
        previous = self._previous_daemon_doc(now)
        self.generation = int((previous.get("config") or {}).get("generation", 0)) + 1
        self.loaded_at = now
        self.health = DiskHealth(self.clock)
        self.state.sweep_temps(now)
        self.book = CheckBook(self.state.load_checks(now))
        self._reconcile(config)
        self.runner = ModuleRunner(
            inst.module_dirs,
            inst.plugin_dirs,
            output_cap=inst.output_cap,
            extra_env={"SURVIVOR_INSTANCE": inst.name},
        )
        self.results = ResultsLog(inst.results_log, self.clock)
        self.recorder = CheckRecorder(
            self.book, self.state, self.history, self.results, self.health, self.tz
        )
        self.executor = CheckExecutor(
            CheckRunner(self.runner, run_concurrently),
            self.recorder,
            self.clock,
            self.current,
            offload_records=inst.fsync is FsyncPolicy.ALWAYS,
        )
        self.ids = ItemIds()
        self.scheduler = CheckScheduler(self.book, self.ids, self.tz)
        self.check_pool = LoopPool(
            "check",
            inst.check_workers,
            self.executor.steps,
            self.clock,
            CHECK_START_TICK,
            loops=CHECK_LOOPS,
        )
        self.alert_stats = AlertStats()
        self.alert_book = AlertBook.load(self.state, self.health, now)
        self.alert_book.prune(set(pairs_of(config)))
        self.alert_pool = WorkerPool("alert", inst.alert_workers, self._run_alert, self.clock)
        self.alert_scheduler = AlertScheduler(
            self.book,
            self.alert_book,
            self.state,
            self.history,
            self.ids,
            self.alert_stats,
            self.tz,
            self.alert_pool.is_busy_with,
        )
        self.alert_executor = AlertExecutor(
            self.runner,
            FixRunner(self.runner, self.state, self.history, self.clock),
            self.alert_book,
            self.state,
            self.history,
            self.alert_stats,
            self.clock,
            self.current,
            self.confirm_fix,
        )
        self.mood = Mood.RUNNING
        self._event(
            "start",
            pid=os.getpid(),
            version=__version__,
            generation=self.generation,
            fingerprint=config.fingerprint,
        )
        self.write_daemon_doc()
        log.info(
            "scheduler ready: %d checks, %d check@host pairs, generation %d, pid %d",
            len(config.checks),
            config.pair_count(),
            self.generation,
            os.getpid(),
        )
        self.check_pool.start()
        self.alert_pool.start()
        self._start_thread("check-scheduler", self._check_loop)
        self._start_thread("alert-scheduler", self._alert_loop)
        self._watch_start()
        self._last_status = f"STATUS=running generation {self.generation}"
        notify.sd_notify("READY=1", self._last_status)

    def _previous_daemon_doc(self, now: datetime) -> dict[str, Any]:
        doc = self.state.load_document(self.state.daemon_path, now)
        if doc is not None and doc.get("version") != 1:
            self.state.move_aside(self.state.daemon_path, f"version {doc.get('version')!r}", now)
            return {}
        return doc or {}

    def _reconcile(self, config: Config) -> None:
        keep = set(pairs_of(config))
        removed = self.state.prune({(c, h) for c, h in keep})
        self.book.prune(keep)
        if hasattr(self, "alert_book"):
            self.alert_book.prune(keep)
        if removed:
            log.info("state: pruned %d check@host pairs no longer configured", len(removed))

    def _start_thread(self, name: str, target: Any) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def current(self) -> tuple[Config, int]:
        with self._config_lock:
            return self.config, self.generation

    # ---------------------------------------------------------------- the check scheduler

    def _check_loop(self) -> None:
        # Before the first tick, for at most START_PREPARE_S; what is left, after it.
        config, _ = self.current()
        made, fresh = self._prepare_new_pairs(config, self.clock.now(), START_PREPARE_S, "start")
        if made == fresh:
            self._prepared_for = config
        self._minute_loop("check", timedelta(0), self._check_tick)

    def _alert_loop(self) -> None:
        # Alerts look at the results of the minute before: alert_shift after the check tick,
        # and the first run only after one shift (Survivor delays the first alert run).
        shift = self.config.instance.alert_shift
        first_at = self.clock.monotonic() + shift.total_seconds()
        if shift and self.clock.sleep_until(first_at, self.stop_event):
            return
        self._minute_loop("alert", shift, lambda now, first: self._alert_tick(now))

    def _minute_loop(self, name: str, shift: timedelta, tick: Any) -> None:
        """Call `tick(now, first)` once per wall-clock minute (+ shift); skip missed minutes."""
        first = True
        last_minute: datetime | None = None
        while not self.stop_event.is_set():
            now = self.clock.now()
            minute = floor_minute(now - shift)
            if not first and minute == last_minute:
                nxt = minute + timedelta(minutes=1) + shift
                deadline = self.clock.monotonic() + (nxt.timestamp() - self.clock.time())
                if self.clock.sleep_until(deadline, self.stop_event):
                    return
                continue
            try:
                tick(now, first)
            except Exception:
                log.exception(
                    "%s scheduler: tick at %s failed; trying again next minute",
                    name,
                    utc_iso(minute),
                )
            self.last_tick[name] = utc_iso(now)
            first = False
            last_minute = minute

    def _check_tick(self, now: datetime, first: bool) -> None:
        config, generation = self.current()
        report = self.scheduler.tick(config, now, first=first)
        _log_refused("check", self.check_pool.submit(report.items))
        for check, host, why in report.blocked:
            self.recorder.record_blocked(config, generation, check, host, why, now)
        if config is not self._prepared_for:  # started with pairs left over, or reloaded
            self._prepared_for = config
            left = (report.minute + MINUTE - now).total_seconds()
            self._prepare_new_pairs(config, now, left, f"check tick {utc_iso(report.minute)}")
        log.debug(
            "check tick %s: %d items, %d pairs due, %d blocked",
            utc_iso(now),
            len(report.items),
            report.due_pairs,
            len(report.blocked),
        )

    def _prepare_new_pairs(
        self, config: Config, now: datetime, seconds: float, when: str
    ) -> tuple[int, int]:
        """Make the directories of the pairs that have never run, in slot order from `now`,
        for at most `seconds` or until the daemon stops; returns (made, pairs never run).

        Made while checks run, they take about half the check loop's throughput for
        as long as they last (the GIL, and a file system busy with new directories):
        on a fresh state directory with 50,000 services the first checks fell 10-30 s
        behind. So at start they are made before the first tick (about 20 s at
        50,000 on our test VM; the first checks then fell 6-9 s behind at most, and
        caught up sooner; docs/benchmarks.md), and after a reload that adds pairs
        right after its first tick, until that minute ends, while the checks go on.
        A restart has nothing to make.
        """
        fresh = self.scheduler.never_run(config, now)
        if not fresh:
            return 0, 0
        began = self.clock.monotonic()
        until = began + seconds

        def keep_going() -> bool:
            return not self.stop_event.is_set() and self.clock.monotonic() < until

        made = self.recorder.prepare(fresh, keep_going)
        log.info(
            "%s: directories ready for %d of %d pairs that have never run, in %.1f s",
            when,
            made,
            len(fresh),
            self.clock.monotonic() - began,
        )
        return made, len(fresh)

    def _alert_tick(self, now: datetime) -> None:
        config, _ = self.current()
        _log_refused("alert", self.alert_pool.submit(self.alert_scheduler.tick(config, now)))

    def _run_alert(self, item: WorkItem, ctx: WorkContext) -> None:
        self.alert_executor.execute(item, ctx)

    def confirm_fix(self, check: str, host: str) -> None:
        """A fix succeeded: re-run the check at once; the recovery notice waits for its result."""
        self.book.reschedule(check, host)
        config, _ = self.current()
        checkdef = config.checks.get(check)
        if checkdef is not None:  # refused while it runs: the reschedule flag covers it
            item = check_item(self.ids, checkdef, (host,), self.clock.time(), "fix-confirm")
            self.check_pool.submit([item])

    # ---------------------------------------------------------------- main loop

    def run(self) -> int:
        """The main thread's loop until a stop signal; returns the exit code."""
        next_queue = next_flush = next_beat = next_metrics = self.clock.monotonic()
        wd_interval = notify.watchdog_interval()
        next_wd = self.clock.monotonic()
        while True:
            sig = self.inbox.take()
            if sig is not None:
                if sig == signal.SIGHUP:
                    if self.mood is Mood.RUNNING:
                        self.reload()
                    continue
                return self.shutdown(sig)
            mono = self.clock.monotonic()
            try:
                self._apply_requests()
                if mono >= next_flush:
                    self.writer.flush()
                    next_flush = mono + 1.0
                if mono >= next_queue:
                    self._write_queue(force=mono >= next_beat)
                    next_queue = queue_write_due(mono, self.clock.monotonic())
                self._notice_changes(mono, heartbeat=mono >= next_beat)
                if mono >= next_beat:
                    self.check_pool.check_health()
                    self.alert_pool.check_health()
                    self.write_daemon_doc()
                    self._notify_status()
                    next_beat = mono + HEARTBEAT_S
                if mono >= next_metrics:
                    next_metrics = mono + METRICS_S
                    self._export_metrics()
                if wd_interval is not None and mono >= next_wd:
                    if self._schedulers_alive():
                        notify.sd_notify("WATCHDOG=1")
                    next_wd = mono + wd_interval
            except DiskWriteError as err:
                self.health.failed(err)
            except Exception:
                log.exception("main loop: unexpected error; carrying on")
            self.inbox.wake.wait(0.5)  # signals and file events wake it at once
            self.inbox.wake.clear()

    def _schedulers_alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    # ---------------------------------------------------------------- reload

    def reload(self) -> bool:
        log.info("reloading configuration (SIGHUP) from %s", self.config_path)
        notify.reloading()
        self.mood = Mood.RELOADING
        now = self.clock.now()
        try:
            new = load_config(self.config_path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("reload: %s", problem)
            log.error(
                "reload failed: %d problems; still running generation %d",
                len(err.problems),
                self.generation,
            )
            self.last_reload = {
                "at": utc_iso(now),
                "ok": False,
                "errors": [str(p) for p in err.problems],
            }
            self._event(
                "reload-failed", errors=self.last_reload["errors"], generation=self.generation
            )
            self.mood = Mood.RUNNING
            self.write_daemon_doc()
            notify.sd_notify(
                "READY=1", f"STATUS=reload failed; running generation {self.generation}"
            )
            return False
        except Exception as err:  # a bug must not take the running config down
            log.exception("reload failed unexpectedly; keeping the running config")
            self.last_reload = {"at": utc_iso(now), "ok": False, "errors": [repr(err)]}
            self.mood = Mood.RUNNING
            self.write_daemon_doc()
            notify.sd_notify("READY=1")
            return False
        old = self.config
        diff = diff_configs(old, new)
        refused = self._refused_instance_changes(old, new)
        with self._config_lock:
            self.config = new
            self.generation += 1
            self.loaded_at = now
        self._reconcile(new)
        self._config_stamps = self._stamp_config(new)
        self.disk_config = {"stale": False}
        if new.instance.check_workers != self.check_pool.size:
            self.check_pool.resize(new.instance.check_workers)
        if new.instance.alert_workers != self.alert_pool.size:
            self.alert_pool.resize(new.instance.alert_workers)
        self.last_reload = {
            "at": utc_iso(now),
            "ok": True,
            "errors": [],
            "diff": diff.summary(),
            "not_applied": refused,
        }
        self._event(
            "reload",
            generation=self.generation,
            fingerprint=new.fingerprint,
            diff=diff.summary(),
            not_applied=refused,
        )
        log.info("reload: generation %d: %s", self.generation, diff.summary())
        for what in refused:
            log.warning("reload: %s changed; restart the daemon to apply it", what)
        self.mood = Mood.RUNNING
        self.write_daemon_doc()
        log.info("scheduler ready: generation %d", self.generation)
        self._last_status = f"STATUS=running generation {self.generation}"
        notify.sd_notify("READY=1", self._last_status)
        return True

    @staticmethod
    def _refused_instance_changes(old: Config, new: Config) -> list[str]:
        """Instance settings a reload cannot apply to a running daemon."""
        fields = (
            "state_dir",
            "history_dir",
            "fsync",
            "results_log",
            "log",
            "module_dirs",
            "plugin_dirs",
            "output_cap",
            "timezone",
        )
        return [
            f"instance.{f}" for f in fields if getattr(old.instance, f) != getattr(new.instance, f)
        ]

    # ---------------------------------------------------------------- requests

    def _apply_requests(self) -> None:
        for request in self.state.take_requests(self.clock.now()):
            try:
                self._apply(request)
            except Exception:
                log.exception("request %s (%s) failed", request.id, request.action)

    def _apply(self, request: Request) -> None:
        config, _ = self.current()
        if request.action == "reschedule" and request.check and request.host:
            check = config.checks.get(request.check)
            if check is None or request.host not in check.host_set:
                log.warning(
                    "request %s: %s@%s is not configured", request.id, request.check, request.host
                )
                return
            state = self.book.reschedule(request.check, request.host)
            self.state.write_check(request.host, request.check, state)
            log.info("check %s@%s: rescheduled by %s", request.check, request.host, request.user)
        elif request.action == "cancel" and request.target:
            found = self.check_pool.cancel(request.target) or self.alert_pool.cancel(request.target)
            if isinstance(found, WorkContext) and found.pid:
                found.cancelled.set()
                self.runner.kill_group(found.pid)
            log.info(
                "queue: %s cancelled by %s (%s)",
                request.target,
                request.user,
                "not found" if found is None else "ok",
            )
        else:
            log.warning("request %s: unknown action %r", request.id, request.action)

    # ---------------------------------------------------------------- documents

    def _write_queue(self, force: bool = False) -> None:
        """queue.json, when what it lists changed (and on the heartbeat, to show it is fresh)."""
        rows = self.check_pool.snapshot() + self.alert_pool.snapshot()
        scheduled = {"check": self.check_pool.scheduled(), "alert": self.alert_pool.scheduled()}
        if not force and (rows, scheduled) == self._last_queue:
            return
        self._last_queue = (rows, scheduled)
        self.state.write_queue(
            {
                "version": 1,
                "updated": utc_iso(self.clock.now()),
                "pid": os.getpid(),
                "items": rows,
                "scheduled": scheduled,
            }
        )

    def write_daemon_doc(self) -> None:
        try:
            self.state.write_daemon(self.daemon_doc())
        except DiskWriteError as err:
            self.health.failed(err)

    def daemon_doc(self) -> dict[str, Any]:
        """daemon.json: the heartbeat other tools read instead of asking the daemon."""
        config, generation = self.current()
        now = self.clock.now()
        return {
            "version": 1,
            "pid": os.getpid(),
            "survivor": __version__,
            "instance": config.instance.name,
            "mood": self.mood.value,
            "started": utc_iso(self.started),
            "updated": utc_iso(now),
            "config": {
                "path": str(self.config_path),
                "files": [str(f) for f in config.files],
                "generation": generation,
                "fingerprint": config.fingerprint,
                "loaded_at": utc_iso(self.loaded_at) if self.loaded_at else None,
                "stale": bool(self.disk_config.get("stale")),
                "on_disk": self.disk_config,
            },
            "last_reload": self.last_reload,
            "ticks": dict(self.last_tick),
            "pools": {"check": self.check_pool.stats(), "alert": self.alert_pool.stats()},
            "alerts": self.alert_stats.to_dict(),
            "health": self.health.to_dict(),
            "heartbeat_s": HEARTBEAT_S,
        }

    def _notify_status(self) -> None:
        """STATUS= for `systemctl status`, sent when it changes (disk trouble shows there)."""
        if self.health.failing_since is not None:
            status = f"STATUS=DISK FAILING since {utc_iso(self.health.failing_since)}"
        else:
            status = f"STATUS=running generation {self.generation}"
        if status != self._last_status:
            self._last_status = status
            notify.sd_notify(status)

    def _export_metrics(self) -> None:
        path = self.config.instance.prometheus_textfile
        if path is None:
            return
        rows = self.check_pool.snapshot() + self.alert_pool.snapshot()
        export(path, self.writer, self.daemon_doc(), rows, self.book.items())

    # ---------------------------------------------------------------- config and mod/ on disk

    def _watch_start(self) -> None:
        config = self.config
        self.changes = ChangeInbox(
            {p.parent for p in config.files}, config.instance.module_dirs, self.inbox.wake
        )
        self.watcher = FileWatcher(self.changes, self.clock.monotonic)
        self.watcher.start()
        self._config_stamps = self._stamp_config(config)
        self.disk_config = {"stale": False}

    @staticmethod
    def _stamp_config(config: Config) -> dict[str, tuple[int, int] | None]:
        return file_stamps([*config.files, *{p.parent for p in config.files}])

    def _notice_changes(self, mono: float, heartbeat: bool) -> None:
        """Debounced file events; on the heartbeat also compare stamps (no events on NFS)."""
        config_paths, module_paths = self.changes.take_if_quiet(mono, WATCH_QUIET_S)
        for path in sorted(module_paths):
            log.info("mod: %s changed on disk; used from its next run", path)
        if config_paths or (heartbeat and self._stamp_config(self.config) != self._config_stamps):
            self._check_disk_config()

    def _check_disk_config(self) -> None:
        """Load the config on disk beside the running one, only to say whether it differs."""
        config = self.config
        self._config_stamps = self._stamp_config(config)
        errors: list[str] = []
        try:
            disk: Config | None = load_config(self.config_path)
        except ConfigError as err:
            disk, errors = None, [str(p) for p in err.problems]
        except Exception as err:  # never let a look at the disk hurt the running daemon
            disk, errors = None, [repr(err)]
        stale = disk is None or disk.fingerprint != config.fingerprint
        was_stale = self.disk_config.get("stale")
        self.disk_config = {
            "stale": stale,
            "checked_at": utc_iso(self.clock.now()),
            "loads": disk is not None,
            "errors": errors[:20],
        }
        if stale and not was_stale:
            verdict = (
                "it would load cleanly"
                if disk is not None
                else f"it has {len(errors)} problems (see survivor validate)"
            )
            log.warning(
                "config: changed on disk since generation %d was loaded; %s; "
                "`survivor reload` (SIGHUP) applies it",
                self.generation,
                verdict,
            )
        self.write_daemon_doc()

    def _event(self, event: str, **fields: Any) -> None:
        try:
            self.history.append_event(self.clock.now(), event, **fields)
        except DiskWriteError as err:
            self.health.failed(err)

    # ---------------------------------------------------------------- shutdown

    def shutdown(self, sig: signal.Signals) -> int:
        log.info(
            "stopping (%s): letting running checks finish for up to %.0f s", sig.name, self.grace
        )
        notify.sd_notify("STOPPING=1")
        self.mood = Mood.STOPPING
        self.stop_event.set()
        deadline = self.clock.after_real(self.grace)
        pools = (self.check_pool, self.alert_pool)
        for pool in pools:
            pool.begin_stop()
        finished = all([pool.finish_stop(deadline, self._kill_overdue) for pool in pools])
        if not finished:
            log.warning("stopping: some checks did not finish after being killed")
        for t in self.threads:
            t.join(2.0)
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
            self.runner.kill_group(ctx.pid)

    def _finish(self) -> None:
        self.mood = Mood.STOPPED
        self.watcher.stop()
        for step in (
            lambda: self._write_queue(force=True),
            self.write_daemon_doc,
            lambda: self._event("stop", pid=os.getpid(), generation=self.generation),
            self.writer.flush,
        ):
            try:
                step()
            except (DiskWriteError, OSError) as err:  # each final write on its own
                log.error("stopping: final state not fully written: %s", err)
        self.results.close()
        self.pidfile.release()
        log.info("stopped")


def queue_write_due(began: float, ended: float) -> float:
    """When to write queue.json next, after a write from `began` to `ended` (monotonic).

    Once a second; but with a backlog of tens of thousands of due items one
    write costs tens of milliseconds of the GIL, taken from the checks that
    would shrink the backlog. So a long queue is written less often: its
    writing never takes more than QUEUE_SHARE of the daemon's time.
    """
    return began + max(QUEUE_WRITE_S, (ended - began) / QUEUE_SHARE)


def _log_refused(kind: str, refused: list[WorkItem]) -> None:
    """One line per tick, not one per item: a backlog of 20,000 would be a log storm."""
    if refused:
        names = ", ".join(item.key.split(":", 1)[1] for item in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        log.warning(
            "%s: %d still queued or running, not queued again: %s%s",
            kind,
            len(refused),
            names,
            more,
        )


def run_daemon(config_path: Path, clock: Clock, *, grace: float = 10.0) -> int:
    """Load, start, run: the body of `survivor run` (foreground)."""
    from survivor.daemon.logsetup import setup_logging

    config_path = config_path.absolute()  # the daemon moves to "/" below
    try:
        config = load_config(config_path)
    except ConfigError as err:
        logging.basicConfig(level=logging.INFO)
        for problem in err.problems:
            log.error("%s", problem)
        log.error("not starting: %d configuration problems", len(err.problems))
        return EXIT_CONFIG
    setup_logging(config.instance.log)
    daemon = Daemon(config_path, clock, grace=grace)
    daemon.inbox.install()
    try:
        daemon.prepare(config)
    except AlreadyRunningError as err:
        log.error("not starting: %s", err)
        return 1
    # As a detached daemon does: hold no mount point busy, and let the runner start
    # modules in "/" with posix_spawn, which cannot change directory itself.
    os.chdir("/")
    daemon.start()
    return daemon.run()
