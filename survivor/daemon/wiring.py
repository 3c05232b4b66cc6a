"""Wiring: every part of a running daemon, built before anything starts.

`Stores.open()` makes the writer, the locks, the state and history stores and
the pidfile, which the daemon takes before anything else writes (a second
daemon stops there). `build_parts()` makes the rest from the state on disk
(books, runner, recorder, executors, schedulers, pools) and starts nothing.
The daemon starts pools and threads only once every part exists, so no part
is ever seen half-built; a test builds the same parts on a fake clock and a
fake runner and drives their ticks itself.

`RunningConfig` is the one reference to the running configuration: the
executors read it at each run, and a reload swaps it whole between ticks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, tzinfo

from survivor.alerts.deliver import AlertExecutor
from survivor.alerts.fixes import FixRunner
from survivor.alerts.jobs import AlertStats
from survivor.alerts.scheduler import AlertScheduler
from survivor.checks.execute import RUN_NOW, CheckExecutor, CheckRunner
from survivor.checks.placed import PlacedRunner
from survivor.checks.record import CheckRecorder, ResultsLog
from survivor.checks.scheduler import CheckScheduler, check_item, pairs_of
from survivor.clock import Clock, local_zone
from survivor.model.config import CheckDef, Config, FsyncPolicy, InstanceConfig
from survivor.model.work import ItemIds
from survivor.proc.limits import current_limits, machine_capacity, running_cap
from survivor.proc.runner import ModuleRunner
from survivor.store.books import AlertBook, CheckBook
from survivor.store.fsio import EntityLocks, FileWriter
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.pidfile import PidFile
from survivor.store.state import StateStore
from survivor.work.loop import LoopPool
from survivor.work.remote import Dispatcher
from survivor.work.threads import Pool, WorkerPool, run_concurrently

log = logging.getLogger(__name__)

CHECK_START_TICK = 0.25  # checks falling due this close together start together (work.loop)
# Two check loops: while one waits for its child to exec (the GIL released, proc.spawn),
# the other records and starts checks. Three or four did no better than two at 72,000-76,000
# services (docs/benchmarks.md).
CHECK_LOOPS = 2


class RunningConfig:
    """The running configuration and its generation, read and swapped as one."""

    def __init__(self, config: Config, generation: int, loaded_at: datetime) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._generation = generation
        self.loaded_at = loaded_at

    def get(self) -> tuple[Config, int]:
        with self._lock:
            return self._config, self._generation

    @property
    def config(self) -> Config:
        return self._config

    @property
    def generation(self) -> int:
        return self._generation

    def swap(self, new: Config, now: datetime) -> int:
        """Make `new` the running config; returns its generation.

        The generation counts changes: a reload of the same config (same
        fingerprint) keeps it, and only `loaded_at` and the reload record say
        that it happened.
        """
        with self._lock:
            if new.fingerprint != self._config.fingerprint:
                self._generation += 1
            self._config = new
            self.loaded_at = now
            return self._generation


@dataclass(frozen=True, slots=True)
class Stores:
    """Where the daemon's files go: opened before anything else, the pidfile not yet taken."""

    writer: FileWriter
    locks: EntityLocks
    state: StateStore
    history: HistoryStore
    pidfile: PidFile

    @classmethod
    def open(cls, config: Config) -> Stores:
        inst = config.instance
        writer = FileWriter(inst.fsync)
        locks = EntityLocks()
        state = StateStore(inst.state_dir, writer, locks)
        history = HistoryStore(inst.history_dir, writer)
        # history_dir is locked too: two instances must not append to one history.
        pidfile = PidFile(state.layout.pidfile, also=(history.root,))
        return cls(writer, locks, state, history, pidfile)


@dataclass(slots=True)
class Parts:
    """Everything a running daemon is made of (besides its own threads)."""

    clock: Clock
    tz: tzinfo
    stores: Stores
    running: RunningConfig
    health: DiskHealth
    runner: ModuleRunner
    results: ResultsLog
    book: CheckBook
    alert_book: AlertBook
    ids: ItemIds
    recorder: CheckRecorder
    scheduler: CheckScheduler
    check_pool: LoopPool
    alert_stats: AlertStats
    alert_scheduler: AlertScheduler
    alert_pool: WorkerPool
    alert_executor: AlertExecutor
    check_executor: CheckExecutor
    machine: int  # checks the process and open-file limits allow at once (proc.limits)
    dispatcher: Dispatcher | None = None  # remote workers (DESIGN §7b), when configured

    def apply_workers(self, config: Config) -> str | None:
        """A reload's `workers:` (DESIGN §7b), without a restart; what changed, for the log.

        The same broker: new groups and settings on the open connection. Another
        broker (servers, certificates, prefix), or remote workers turned on: a new
        connection, started at once (placed checks run locally until it is up, as
        at start). The connection it replaces, or the one remote workers turned off
        leave behind, answers its runs in flight and then closes (Dispatcher.retire).
        """
        old, workers = self.dispatcher, config.workers
        if old is not None and workers is not None and old.serves(workers.broker):
            old.configure(workers, config.worker_groups)
            return None
        if old is None and workers is None:
            return None
        placed = self.check_executor.placed
        if workers is None:
            self.check_executor.placed = None
            self.dispatcher = None
            said = "remote workers off: every check runs on the scheduler"
        else:
            dispatcher = Dispatcher(workers, config.worker_groups, self.clock)
            if old is not None:
                dispatcher.take_over(old)
            dispatcher.start()
            if placed is None:
                placed = PlacedRunner(
                    dispatcher, self.check_executor.runner, self.clock, self.recorder.fingerprint
                )
            placed.dispatcher = dispatcher
            self.check_executor.placed = placed
            self.dispatcher = dispatcher
            servers = ", ".join(workers.broker.servers)
            said = f"remote workers: {'another broker' if old else 'on'}, connecting to {servers}"
        if old is not None:
            old.retire()
        return said

    def check_cap(self, inst: InstanceConfig) -> int:
        """How many checks may run at once under `inst`'s caps and the machine's limits."""
        return running_cap(self.machine, inst.max_running_checks, inst.check_workers)

    def pools(self) -> tuple[Pool, Pool]:
        return (self.check_pool, self.alert_pool)

    def confirm_fix(self, check: str, host: str) -> None:
        """A fix succeeded: re-run the check at once; the recovery notice waits for its result."""
        self.book.reschedule(check, host)
        config, _ = self.running.get()
        checkdef = config.checks.get(check)
        if checkdef is not None:  # refused while it runs: the reschedule flag covers it
            item = check_item(self.ids, checkdef, (host,), self.clock.time(), "fix-confirm")
            self.check_pool.submit([item])

    def run_now(self, checkdef: CheckDef, host: str) -> bool:
        """An operator's reschedule: run check@host at once, ahead of its queued run if any.

        The run keeps the pair's cadence (RUN_NOW, checks.execute). False when
        it could not be queued (a run and its follow-up are already waiting):
        the reschedule flag, set first, then runs it at the next tick.
        """
        item = check_item(self.ids, checkdef, (host,), self.clock.time(), RUN_NOW)
        return not self.check_pool.submit([item], first=True)

    def reconcile(self, config: Config) -> None:
        """Forget the state of pairs `config` no longer has (never their history)."""
        keep = set(pairs_of(config))
        removed = self.stores.state.prune(keep)
        self.book.prune(keep)
        self.alert_book.prune(keep)
        if removed:
            log.info("state: pruned %d check@host pairs no longer configured", len(removed))


def build_parts(
    config: Config,
    stores: Stores,
    running: RunningConfig,
    clock: Clock,
    now: datetime,
    *,
    runner: ModuleRunner | None = None,
    machine: int | None = None,
) -> Parts:
    """Every part, from the state on disk at `now`; starts no thread and no child.

    `runner` replaces the module runner (tests pass a fake one). `machine` is how many
    checks the limits allow at once (the daemon passes it after raising its limits;
    by default the limits as they are).
    """
    if machine is None:
        machine = machine_capacity(current_limits())
    inst = config.instance
    tz = local_zone(inst.timezone)
    state, history = stores.state, stores.history
    health = DiskHealth(clock, history.root)  # counts the history records an outage costs
    if runner is None:
        runner = ModuleRunner(
            inst.module_dirs,
            inst.plugin_dirs,
            output_cap=inst.output_cap,
            extra_env={"SURVIVOR_INSTANCE": inst.name},
        )
    results = ResultsLog(inst.results_log, clock)
    overview = state.keep_overview()  # before load_checks, which seeds it
    book = CheckBook(state.load_checks(now))
    overview.rescan_silencers()
    alert_book = AlertBook.load(state, health, now)
    ids = ItemIds()
    recorder = CheckRecorder(book, state, history, results, health, tz)
    check_runner = CheckRunner(runner, run_concurrently)
    dispatcher = placed = None
    if config.workers is not None:  # remote workers (DESIGN §7b); nats is imported on start
        dispatcher = Dispatcher(config.workers, config.worker_groups, clock)
        placed = PlacedRunner(dispatcher, check_runner, clock, recorder.fingerprint)
    executor = CheckExecutor(
        check_runner,
        recorder,
        clock,
        running.get,
        offload_records=inst.fsync is FsyncPolicy.ALWAYS,
        placed=placed,
    )
    check_cap = running_cap(machine, inst.max_running_checks, inst.check_workers)
    check_pool = LoopPool(
        "check", check_cap, executor.steps, clock, CHECK_START_TICK, loops=CHECK_LOOPS
    )
    alert_stats = AlertStats()
    parts: Parts

    alert_executor = AlertExecutor(
        runner,
        FixRunner(runner, state, history, clock),
        alert_book,
        state,
        history,
        alert_stats,
        clock,
        running.get,
        lambda check, host: parts.confirm_fix(check, host),
    )
    alert_pool = WorkerPool("alert", inst.alert_workers, alert_executor.execute, clock)
    alert_scheduler = AlertScheduler(
        book, alert_book, state, history, ids, alert_stats, tz, alert_pool.is_busy_with
    )
    parts = Parts(
        clock=clock,
        tz=tz,
        stores=stores,
        running=running,
        health=health,
        runner=runner,
        results=results,
        book=book,
        alert_book=alert_book,
        ids=ids,
        recorder=recorder,
        scheduler=CheckScheduler(book, ids, tz),
        check_pool=check_pool,
        alert_stats=alert_stats,
        alert_scheduler=alert_scheduler,
        alert_pool=alert_pool,
        alert_executor=alert_executor,
        check_executor=executor,
        machine=machine,
        dispatcher=dispatcher,
    )
    parts.reconcile(config)
    return parts
