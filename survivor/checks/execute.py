"""Running a check work item: Type II dependencies, the module or plugin, composites.

`CheckExecutor.steps()` runs one item as steps (survivor.work.steps) for the check
loop, on remote workers when the item's hosts are placed (survivor.checks.placed),
and records every result before the item counts as done; `CheckRunner` runs a
check for some hosts and returns one result per host, recording nothing (also
used by `survivor check`).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from survivor import composite
from survivor.checks.placed import PlacedRunner, Ran
from survivor.checks.record import CheckRecorder
from survivor.clock import Clock, from_epoch
from survivor.errors import ModuleError
from survivor.model.codes import ReturnCode
from survivor.model.config import CheckDef, CheckKind, Config, Host, ModuleLimits
from survivor.model.work import CheckResult, WorkItem
from survivor.proc.runner import ModuleRunner
from survivor.proc.session import ProcessOutcome
from survivor.protocol.modules import check_request, explain_missing, parse_check_output
from survivor.protocol.plugins import expand_argv, parse_plugin_output
from survivor.work.steps import PAUSE, Offload, Steps, drive, outcome_of

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    from survivor.work.queue import WorkContext

log = logging.getLogger(__name__)


RECORD_SLICE = 50  # results of one batch recorded between two pauses of the check loop
# The reason of an operator's extra run (`reschedule`): recorded like any run, but the
# pair's schedule goes on from its last planned run, as if the extra one had not happened.
RUN_NOW = "reschedule"


# --------------------------------------------------------------------------- executing


@dataclass(eq=False)
class CheckExecutor:
    """Runs check work items and records every result before taking the next item.

    With `offload_records` (fsync policy `always`: each record waits for the
    disk) recording is an offloaded step, so that the check loop goes on
    with other checks while one waits for its fsyncs.
    """

    runner: CheckRunner
    recorder: CheckRecorder
    clock: Clock
    current: Callable[[], tuple[Config, int]]
    offload_records: bool = False
    placed: PlacedRunner | None = None  # remote workers (DESIGN §7b); None: all runs local

    def execute(self, item: WorkItem, ctx: WorkContext) -> None:
        drive(self.steps(item, ctx))

    def steps(self, item: WorkItem, ctx: WorkContext) -> Steps[None]:
        """`execute` as steps, for the check pool's loop (survivor.work.steps)."""
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
        placed = self.placed  # read once: a reload may turn remote workers on or off
        if placed is not None and placed.is_placed(config, check, runnable):
            ran = yield from placed.run_steps(config, check, runnable, item, ctx)
        else:
            results = yield from self.runner.run_steps(config, check, runnable, ctx)
            ran = [Ran(result, start) for result in results]
        if ctx.cancelled.is_set():
            # Killed by `queue cancel` or at shutdown: what it "returned" says nothing about
            # the service, so nothing is recorded and the pair runs again on schedule.
            log.info("check %s: run cancelled; no result recorded", check.name)
            return

        def record(one: Ran) -> None:
            host = config.hosts[one.result.host]
            self.recorder.record(
                config,
                generation,
                check,
                host,
                one.result,
                start=one.start,
                planned=planned,
                keep_cadence=item.reason == RUN_NOW,
                worker=one.worker,
            )

        if self.offload_records:

            def record_all() -> None:
                for one in ran:
                    record(one)

            yield Offload(record_all)
            return
        for n, one in enumerate(ran):
            if n and n % RECORD_SLICE == 0:
                yield PAUSE  # a batch of thousands: let the loop serve the others meanwhile
            record(one)


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
        """`run` as steps (survivor.work.steps); a composite's components block: offloaded."""
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
        return (yield from self._run_module(config.instance.output_cap, check, hosts, ctx))

    def run_named(self, check: CheckDef, hosts: list[Host], output_cap: int) -> list[CheckResult]:
        """A module or plugin run for a remote request, on a worker (survivor.remote.worker):
        the same running and reading of its output as on the scheduler; blocks."""
        if check.kind is CheckKind.PLUGIN:
            return [drive(self._run_plugin(check, host, None)) for host in hosts]
        return drive(self._run_module(output_cap, check, hosts, None))

    def _run_module(
        self, output_cap: int, check: CheckDef, hosts: list[Host], ctx: WorkContext | None
    ) -> Steps[list[CheckResult]]:
        names = [h.name for h in hosts]
        assert check.module is not None
        try:
            path = self.runner.resolve("check", check.module)
            request = check_request(check.name, check.args, hosts, check.timeout)
            cap = output_cap * max(1, len(hosts))
            outcome = yield from self._run(
                ctx, [str(path)], request, check.timeout, cap, check.limits
            )
        except ModuleError as err:
            return [CheckResult(h, int(ReturnCode.MISCONFIG), str(err)) for h in names]
        if outcome.stderr:
            log.warning("check %s: module stderr: %s", check.name, _first_lines(outcome.stderr))
        parsed = parse_check_output(
            outcome.stdout,
            names,
            killed=outcome.timed_out,
            truncated=outcome.truncated,
            default_duration_ms=outcome.duration_ms,
        )
        # Say why hosts got nothing: "no result from module (module killed by SIGSEGV)".
        return explain_missing(
            [parsed[h] for h in names],
            signal_name=None if outcome.timed_out else _signal_name(outcome.signal),
            limits=check.limits,
            stderr=outcome.stderr,
        )

    def _run_plugin(
        self, check: CheckDef, host: Host, ctx: WorkContext | None
    ) -> Steps[CheckResult]:
        assert check.plugin is not None
        try:
            path = self.runner.resolve_plugin(check.plugin)
            argv = [str(path), *expand_argv(check.argv, host)]
            outcome = yield from self._run(ctx, argv, b"", check.timeout, None, check.limits)
        except (ModuleError, ValueError) as err:
            return CheckResult(host.name, int(ReturnCode.MISCONFIG), str(err))
        return parse_plugin_output(
            outcome.stdout,
            outcome.exit_status,
            killed=outcome.timed_out,
            signal_name=_signal_name(outcome.signal),
            timeout=check.timeout,
            duration_ms=outcome.duration_ms,
            host=host.name,
            stderr=outcome.stderr,
            limits=check.limits,
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
        limits: ModuleLimits | None,
    ) -> Steps[ProcessOutcome]:
        on_start = None if ctx is None else ctx.set_pid
        running = self.runner.start(argv, stdin, timeout, cap=cap, on_start=on_start, limits=limits)
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
