"""Checks: which check@host pairs are due at a tick, and running one work item and recording it.

`CheckScheduler.tick(config, now)` is the whole scheduling decision of a minute
(DESIGN.md §6): due pairs from schedules, retry intervals and reschedule
requests, one work item per Survivor-protocol check for all its due hosts (one
per host for plugins), each planned at its slot: the minute's runs evenly spaced
in the order of a stable hash.
`CheckExecutor.execute()` runs an item and `CheckRecorder.record()` writes each
result to state, then history, then the results log, before the worker takes
the next item.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survivor import composite, protocol, schedule
from survivor.book import CheckBook, DiskHealth, ItemIds
from survivor.clock import MINUTE_S, Clock, floor_minute, from_epoch
from survivor.errors import ModuleError
from survivor.fsio import DiskWriteError, ensure_dir
from survivor.history import HistoryStore
from survivor.model import (
    CheckDef,
    CheckKind,
    CheckResult,
    Config,
    Host,
    ReturnCode,
    WorkItem,
    WorkKind,
    code_name,
)
from survivor.runner import ModuleRunner, ProcessOutcome
from survivor.state import CheckState, StateStore
from survivor.steps import PAUSE, Offload, Steps, drive, outcome_of

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    from survivor.pool import WorkContext

log = logging.getLogger(__name__)

RECORD_SLICE = 50  # results of one batch recorded between two pauses of the check loop


# --------------------------------------------------------------------------- scheduling


@dataclass(slots=True)
class TickReport:
    """What one tick decided, for logs and daemon.json."""

    minute: datetime
    items: list[WorkItem] = field(default_factory=list)
    due_pairs: int = 0
    blocked: list[tuple[CheckDef, Host, str]] = field(default_factory=list)  # Type I dependency


def slot_key(check: CheckDef, hosts: tuple[str, ...]) -> str:
    """What a run is known by: "check@host" for a plugin (one run per host), else "check"."""
    return f"{check.name}@{hosts[0]}" if check.kind is CheckKind.PLUGIN else check.name


def check_item(
    ids: ItemIds, check: CheckDef, hosts: tuple[str, ...], planned: float, reason: str = "schedule"
) -> WorkItem:
    """A work item running `check` for `hosts` at `planned` (epoch seconds)."""
    return WorkItem(
        id=ids.next("check"),
        kind=WorkKind.CHECK,
        check=check.name,
        hosts=hosts,
        planned=planned,
        key=f"check:{slot_key(check, hosts)}",
        reason=reason,
    )


def slot_keys(config: Config) -> Iterator[str]:
    """The key of every run a minute can hold: each plugin pair, each Survivor-protocol check."""
    for check in config.checks.values():
        if check.kind is CheckKind.PLUGIN:
            for host in check.hosts:
                yield slot_key(check, (host,))
        else:
            yield slot_key(check, check.hosts)


class CheckScheduler:
    def __init__(self, book: CheckBook, ids: ItemIds, tz: tzinfo) -> None:
        self.book = book
        self.ids = ids
        self.tz = tz
        self._slots: tuple[Config, Mapping[str, float]] | None = None

    def slots(self, config: Config) -> Mapping[str, float]:
        """Each run's offset inside the minute (schedule.even_slots), worked out once a config."""
        if self._slots is None or self._slots[0] is not config:
            self._slots = (config, schedule.even_slots(slot_keys(config), MINUTE_S))
        return self._slots[1]

    def tick(self, config: Config, now: datetime, *, first: bool = False) -> TickReport:
        """Work due at `now`'s minute, each item at its stable offset inside the minute.

        With `first` (start-up, mid-minute) items whose offset has already passed are left
        for the next tick, so a start is never a burst: every pair keeps the cadence it
        will have from then on.
        """
        minute = floor_minute(now)
        report = TickReport(minute)
        slots = self.slots(config)
        base = minute.timestamp()
        earliest = now.timestamp() if first else base
        for check in config.checks.values():
            due: list[str] = []
            for host_name in check.hosts:
                host = config.hosts[host_name]
                state = self.book.get(check.name, host_name)
                if not self.is_due(config, check, host, state, minute):
                    continue
                blocker = self.blocking_dependency(config, check, host)
                if blocker is not None:
                    report.blocked.append((check, host, blocker))
                    continue
                due.append(host_name)
            if not due:
                continue
            batches = [(h,) for h in due] if check.kind is CheckKind.PLUGIN else [tuple(due)]
            for hosts in batches:
                planned = base + slots[slot_key(check, hosts)]
                if planned < earliest:
                    continue  # first tick: its slot in this minute has passed; next minute
                report.due_pairs += len(hosts)
                report.items.append(check_item(self.ids, check, hosts, planned))
        return report

    def never_run(self, config: Config, now: datetime) -> list[tuple[str, str]]:
        """The (check, host) pairs without state, in slot order: the slots still ahead of
        `now` in its minute first, then those that come round in the next minute."""
        slots = self.slots(config)
        ahead = now.timestamp() - floor_minute(now).timestamp()
        fresh = [
            (slots[slot_key(check, (host_name,))], check.name, host_name)
            for check in config.checks.values()
            for host_name in check.hosts
            if self.book.get(check.name, host_name) is None
        ]
        fresh.sort(key=lambda f: (f[0] < ahead, f[0]))
        return [(check_name, host_name) for _, check_name, host_name in fresh]

    def is_due(
        self,
        config: Config,
        check: CheckDef,
        host: Host,
        state: CheckState | None,
        minute: datetime,
    ) -> bool:
        if state is None or state.last_planned is None or state.reschedule:
            return True
        if state.last_planned > minute:
            return True  # the clock was stepped back: run now rather than wait it out
        if (
            check.retry is not None
            and state.rc not in (ReturnCode.OK, ReturnCode.NOTYET, ReturnCode.DEPEND)
            and minute - floor_minute(state.last_planned) >= check.retry
        ):
            return True
        sched = config.schedule_for(check, host)
        if sched is None:
            return False
        return schedule.is_due(sched, state.last_planned, minute, self.tz)

    def blocking_dependency(self, config: Config, check: CheckDef, host: Host) -> str | None:
        """A Type I dependency that is not OK on its host, as "ping@gw1 is PROBLEM", else None."""
        for dep in config.dependencies:
            if dep.run_first or not dep.covers(check.name, host.name):
                continue
            dep_host = dep.on_host or host.name
            state = self.book.get(dep.on_check, dep_host)
            if state is None or state.last_start is None:
                continue  # never run: does not block
            if state.rc not in (ReturnCode.OK, ReturnCode.DEPEND):
                return f"{dep.on_check}@{dep_host} is {state.code}"
        return None


# --------------------------------------------------------------------------- recording


class ResultsLog:
    """`results_log`: one JSON line per finished check, one write() each, for pipelines.

    Each writing thread has its own O_APPEND descriptor of the file (appends
    through different descriptors never interleave inside a line), so no
    lock is held across the write: with one shared descriptor and a lock,
    16 workers queued behind whichever of them was waiting to get the GIL
    back after its write (measured: 29 % of the workers' busy time). Each
    thread notices a rotation (logrotate's create mode) within a second.
    """

    ROTATION_CHECK_S = 1.0

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._mine = threading.local()  # this thread's fd, inode and last rotation check
        self._opened: list[int] = []  # every descriptor still open, for close()
        self._opened_lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._descriptor(self.path), line)
        except OSError as err:
            raise DiskWriteError(self.path, err) from err

    def _descriptor(self, path: Path) -> int:
        """This thread's descriptor, reopened after the file was rotated away."""
        mine = self._mine
        fd: int | None = getattr(mine, "fd", None)
        now = self.clock.monotonic()
        if fd is not None and now - mine.checked >= self.ROTATION_CHECK_S:
            mine.checked = now
            try:
                inode = os.stat(path).st_ino
            except FileNotFoundError:
                inode = -1
            if inode != mine.inode:
                self._close(fd)
                fd = mine.fd = None
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            with self._opened_lock:
                self._opened.append(fd)
            mine.fd, mine.inode, mine.checked = fd, os.fstat(fd).st_ino, now
        return fd

    def _close(self, fd: int) -> None:
        with self._opened_lock:
            if fd in self._opened:
                self._opened.remove(fd)
                os.close(fd)

    def close(self) -> None:
        """Close every thread's descriptor; call when no thread writes any more."""
        with self._opened_lock:
            fds, self._opened = self._opened, []
            self._mine = threading.local()
        for fd in fds:
            os.close(fd)


class CheckRecorder:
    def __init__(
        self,
        book: CheckBook,
        state: StateStore,
        history: HistoryStore,
        results: ResultsLog,
        health: DiskHealth,
        tz: tzinfo,
    ) -> None:
        self.book = book
        self.state = state
        self.history = history
        self.results = results
        self.health = health
        self.tz = tz
        # (config, its fingerprints by pair), swapped as one: two check loops record at once.
        self._fingerprints: tuple[Config | None, dict[tuple[str, str], str]] = (None, {})

    def prepare(self, pairs: Iterable[tuple[str, str]], keep_going: Callable[[], bool]) -> int:
        """Make the state and history directories of (check, host) pairs ahead of their first run.

        A first run would make them itself, on the check loop: two directories
        cost about 0.4 ms of kernel time, which at 50,000 new pairs is 20 s of
        the loop's first minute, and a backlog for minutes after. Stops when
        `keep_going()` turns false or the disk refuses; what is not made here
        is made by the run, as before, which also reports a disk problem.
        Returns how many pairs it prepared.
        """
        made = 0
        for check, host in pairs:
            if not keep_going():
                break
            try:
                ensure_dir(self.state.pair_dir(host, check))
                ensure_dir(self.history.pair_dir(host, check))
            except OSError:
                break
            made += 1
        return made

    def record(
        self,
        config: Config,
        generation: int,
        check: CheckDef,
        host: Host,
        result: CheckResult,
        *,
        start: datetime,
        planned: datetime,
    ) -> CheckState:
        fp = self.fingerprint(config, check, host)

        def advance(old: CheckState | None) -> CheckState:
            new = (old or CheckState()).advance(
                result, start=start, planned=planned, fingerprint=fp, generation=generation
            )
            sched = config.schedule_for(check, host)
            if sched is not None:
                due = schedule.next_due(sched, planned, planned + timedelta(minutes=1), self.tz)
                if check.retry is not None and result.rc != ReturnCode.OK:
                    retry_at = floor_minute(planned) + check.retry
                    due = retry_at if due is None else min(due, retry_at)
                new = _with_next_due(new, due)
            return new

        old, new = self.book.update(check.name, host.name, advance)
        if old is None or old.rc != new.rc:
            # A first result that is OK is routine (a whole site at start-up): debug only.
            level = logging.DEBUG if old is None and new.rc == ReturnCode.OK else logging.INFO
            log.log(
                level,
                "check %s@%s: %s -> %s: %s",
                check.name,
                host.name,
                code_name(old.rc) if old else "NEW",
                new.code,
                new.comment[:200],
            )
        record: dict[str, Any] = {
            "rc": result.rc,
            "code": result.code,
            "scalar": result.scalar,
            "comment": result.comment,
            "duration_ms": result.duration_ms,
            "fp": fp,
            "gen": generation,
        }
        if result.perfdata:
            record["perfdata"] = [p.to_dict() for p in result.perfdata]
        self._write(lambda: self.state.write_check(host.name, check.name, new))
        self._write(lambda: self.history.append(host.name, check.name, "check", start, record))
        self._write(
            lambda: self.results.write(
                {
                    "check": check.name,
                    "host": host.name,
                    "rc": result.rc,
                    "planned": planned.timestamp(),
                    "start": start.timestamp(),
                    "duration_ms": result.duration_ms,
                    "scalar": result.scalar,
                    "perfdata": record.get("perfdata", []),
                }
            )
        )
        return new

    def fingerprint(self, config: Config, check: CheckDef, host: Host) -> str:
        """Config.pair_fingerprint, computed once per pair and config generation."""
        cached_for, cache = self._fingerprints
        if config is not cached_for:
            cache = {}
            self._fingerprints = (config, cache)
        fp = cache.get((check.name, host.name))
        if fp is None:
            fp = cache[(check.name, host.name)] = config.pair_fingerprint(check, host)
        return fp

    def record_blocked(
        self, config: Config, generation: int, check: CheckDef, host: Host, why: str, now: datetime
    ) -> None:
        """A dependency kept this pair from running: history says so; state is kept.

        `why` is "ping@gw1 is PROBLEM" (Type I) or "dependency ... failed with ..." (Type II).
        """
        comment = why if why.startswith("dependency") else f"not run: dependency {why}"
        record = {
            "rc": int(ReturnCode.DEPEND),
            "code": ReturnCode.DEPEND.name,
            "scalar": None,
            "comment": comment,
            "duration_ms": 0,
            "fp": self.fingerprint(config, check, host),
            "gen": generation,
        }
        self._write(lambda: self.history.append(host.name, check.name, "check", now, record))

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
        except DiskWriteError as err:
            self.health.failed(err)
        else:
            self.health.succeeded()


def _with_next_due(state: CheckState, due: datetime | None) -> CheckState:
    return replace(state, next_due=due)


# --------------------------------------------------------------------------- executing


class CheckExecutor:
    """Runs check work items and records every result before taking the next item.

    With `offload_records` (fsync policy `always`: each record waits for the
    disk) recording is an offloaded step, so that the check loop goes on
    with other checks while one waits for its fsyncs.
    """

    def __init__(
        self,
        runner: CheckRunner,
        recorder: CheckRecorder,
        clock: Clock,
        current: Callable[[], tuple[Config, int]],
        *,
        offload_records: bool = False,
    ) -> None:
        self.runner = runner
        self.recorder = recorder
        self.clock = clock
        self.current = current
        self.offload_records = offload_records

    def execute(self, item: WorkItem, ctx: WorkContext) -> None:
        drive(self.steps(item, ctx))

    def steps(self, item: WorkItem, ctx: WorkContext) -> Steps[None]:
        """`execute` as steps, for the check pool's loop (survivor.steps)."""
        config, generation = self.current()
        check = config.checks.get(item.check)
        if check is None:
            log.info("check %s: removed from the config; dropping queued run", item.check)
            return
        hosts = [config.hosts[h] for h in item.hosts if h in config.hosts and h in check.host_set]
        if not hosts:
            return
        start = self.clock.now()
        planned = from_epoch(item.planned)
        verdicts: list[tuple[Host, str | None]] = [(host, None) for host in hosts]
        if self.runner.has_run_first(config, check, hosts):  # runs other checks: blocks
            verdicts = yield Offload(
                lambda: self.runner.run_first_dependencies(config, check, hosts)
            )
        runnable: list[Host] = []
        for host, why in verdicts:
            if why is None:
                runnable.append(host)
            else:
                self.recorder.record_blocked(config, generation, check, host, why, start)
        if not runnable:
            return
        results = yield from self.runner.run_steps(config, check, runnable, ctx)
        if ctx.cancelled.is_set():
            # Killed by `queue cancel` or at shutdown: what it "returned" says nothing about
            # the service, so nothing is recorded and the pair runs again on schedule.
            log.info("check %s: run cancelled; no result recorded", check.name)
            return

        def record(result: CheckResult) -> None:
            host = config.hosts[result.host]
            self.recorder.record(
                config, generation, check, host, result, start=start, planned=planned
            )

        if self.offload_records:

            def record_all() -> None:
                for result in results:
                    record(result)

            yield Offload(record_all)
            return
        for n, result in enumerate(results):
            if n and n % RECORD_SLICE == 0:
                yield PAUSE  # a batch of thousands: let the loop serve the others meanwhile
            record(result)


class CheckRunner:
    """Runs a check for some hosts and returns one result per host; records nothing.

    The module runs once for all hosts (Survivor protocol), a plugin once per
    host. Used by the daemon's executor and by `survivor check`.
    """

    MAX_DEPENDENCY_DEPTH = 10

    def __init__(self, runner: ModuleRunner, parallel: Parallel | None = None) -> None:
        self.runner = runner
        self.parallel: Parallel = parallel or _one_after_another

    @staticmethod
    def has_run_first(config: Config, check: CheckDef, hosts: list[Host]) -> bool:
        """Whether a Type II (`run_first`) dependency concerns `check` on one of `hosts`."""
        return any(
            dep.run_first and check.name in dep.checks and any(h.name in dep.hosts for h in hosts)
            for dep in config.dependencies
        )

    def run_first_dependencies(
        self, config: Config, check: CheckDef, hosts: list[Host], depth: int = 0
    ) -> list[tuple[Host, str | None]]:
        """Type II: run each `run_first` dependency once; pair every host with why it is
        blocked ("dependency ping@gw1 failed with status PROBLEM: ...") or None."""
        verdicts: dict[tuple[str, str], str | None] = {}
        out: list[tuple[Host, str | None]] = []
        for host in hosts:
            why: str | None = None
            for dep in config.dependencies:
                if not dep.run_first or not dep.covers(check.name, host.name):
                    continue
                target = (dep.on_check, dep.on_host or host.name)
                if target not in verdicts:
                    verdicts[target] = self._dependency_verdict(config, *target, depth)
                why = verdicts[target]
                if why is not None:
                    break
            out.append((host, why))
        return out

    def _dependency_verdict(
        self, config: Config, check_name: str, host_name: str, depth: int
    ) -> str | None:
        if depth >= self.MAX_DEPENDENCY_DEPTH:
            return f"dependency chain deeper than {self.MAX_DEPENDENCY_DEPTH} at {check_name}"
        dep_check = config.checks.get(check_name)
        host = config.hosts.get(host_name) or Host(host_name, host_name)
        if dep_check is None:
            return f"dependency {check_name} is not configured"
        [(host, why)] = self.run_first_dependencies(config, dep_check, [host], depth + 1)
        if why is not None:
            return why
        [result] = self.run(config, dep_check, [host], None)
        if result.rc == ReturnCode.OK:
            return None
        return (
            f"dependency {check_name}@{host_name} failed with status {result.code}: "
            f"{result.comment[:200]}"
        )

    def run(
        self, config: Config, check: CheckDef, hosts: list[Host], ctx: WorkContext | None = None
    ) -> list[CheckResult]:
        """Run `check` for `hosts` and return one result per host (used by `survivor check` too)."""
        return drive(self.run_steps(config, check, hosts, ctx))

    def run_steps(
        self, config: Config, check: CheckDef, hosts: list[Host], ctx: WorkContext | None = None
    ) -> Steps[list[CheckResult]]:
        """`run` as steps (survivor.steps); a composite's components block, so are offloaded."""
        if check.kind is CheckKind.PLUGIN:
            results: list[CheckResult] = []
            for host in hosts:
                results.append((yield from self._run_plugin(check, host, ctx)))
            return results
        if check.kind is CheckKind.COMPOSITE:
            combined: list[CheckResult] = yield Offload(
                lambda: self._run_composite(config, check, hosts, ctx)
            )
            return combined
        return (yield from self._run_module(config, check, hosts, ctx))

    def _run_module(
        self, config: Config, check: CheckDef, hosts: list[Host], ctx: WorkContext | None
    ) -> Steps[list[CheckResult]]:
        names = [h.name for h in hosts]
        assert check.module is not None
        try:
            path = self.runner.resolve("check", check.module)
            request = protocol.check_request(check.name, check.args, hosts, check.timeout)
            cap = config.instance.output_cap * max(1, len(hosts))
            outcome = yield from self._run(ctx, [str(path)], request, check.timeout, cap)
        except ModuleError as err:
            return [CheckResult(h, int(ReturnCode.MISCONFIG), str(err)) for h in names]
        if outcome.stderr:
            log.warning("check %s: module stderr: %s", check.name, _first_lines(outcome.stderr))
        parsed = protocol.parse_check_output(
            outcome.stdout,
            names,
            killed=outcome.timed_out,
            truncated=outcome.truncated,
            default_duration_ms=outcome.duration_ms,
        )
        results = [parsed[h] for h in names]
        if outcome.signal is not None and not outcome.timed_out:
            # Say why hosts got nothing: "no result from module (killed by SIGSEGV)".
            why = f" (module killed by {_signal_name(outcome.signal)})"
            results = [
                replace(r, comment=r.comment + why)
                if r.comment.startswith("no result from module")
                else r
                for r in results
            ]
        return results

    def _run_plugin(
        self, check: CheckDef, host: Host, ctx: WorkContext | None
    ) -> Steps[CheckResult]:
        assert check.plugin is not None
        try:
            path = self.runner.resolve_plugin(check.plugin)
            argv = [str(path), *protocol.expand_argv(check.argv, host)]
            outcome = yield from self._run(ctx, argv, b"", check.timeout, None)
        except (ModuleError, ValueError) as err:
            return CheckResult(host.name, int(ReturnCode.MISCONFIG), str(err))
        return protocol.parse_plugin_output(
            outcome.stdout,
            outcome.exit_status,
            killed=outcome.timed_out,
            signal_name=_signal_name(outcome.signal),
            timeout=check.timeout,
            duration_ms=outcome.duration_ms,
            host=host.name,
        )

    def _run_composite(
        self, config: Config, check: CheckDef, hosts: list[Host], ctx: WorkContext | None
    ) -> list[CheckResult]:
        """All components together for all hosts; each component's own schedule, plan,
        fix and timeout are ignored (the composite's timeout applies)."""
        parts = [(name, True) for name in check.required] + [
            (name, False) for name in check.optional
        ]

        def run_part(name: str) -> Callable[[], list[CheckResult]]:
            component = replace(config.checks[name], timeout=check.timeout)
            return lambda: self.run(config, component, hosts, None)

        outputs = self.parallel([run_part(name) for name, _ in parts], check.name)
        combined: list[CheckResult] = []
        for i, host in enumerate(hosts):
            req = [(name, outputs[j][i]) for j, (name, is_req) in enumerate(parts) if is_req]
            opt = [(name, outputs[j][i]) for j, (name, is_req) in enumerate(parts) if not is_req]
            combined.append(composite.combine(host.name, req, opt))
        return combined

    def _run(
        self,
        ctx: WorkContext | None,
        argv: list[str],
        stdin: bytes,
        timeout: float,
        cap: int | None,
    ) -> Steps[ProcessOutcome]:
        on_start = None if ctx is None else ctx.set_pid
        running = self.runner.start(argv, stdin, timeout, cap=cap, on_start=on_start)
        return (yield from outcome_of(running))


Parallel = Callable[[Sequence[Callable[[], list[CheckResult]]], str], list[list[CheckResult]]]


def _one_after_another(
    calls: Sequence[Callable[[], list[CheckResult]]], name: str
) -> list[list[CheckResult]]:
    """Composite components one by one (the daemon passes pool.run_concurrently instead)."""
    return [call() for call in calls]


def _first_lines(data: bytes, limit: int = 500) -> str:
    return data[:limit].decode(errors="replace").strip().replace("\n", " | ")


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def pairs_of(config: Config) -> Iterable[tuple[str, str]]:
    return ((c.name, h.name) for c, h in config.pairs())
