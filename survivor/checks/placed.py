"""Running a placed check (DESIGN §7b): on remote workers, else locally, one result per host.

`PlacedRunner.run_steps()` splits a run's hosts by failover list
(remote.dispatchplan.batches), sends each remote batch to the dispatcher
(survivor.work.remote) at once, runs the local batch meanwhile, then waits for
each remote answer as an Await step (no thread per check). A batch no group
served runs locally when its list allows it (the broker down: at once),
else it gets TIMEDOUT with a comment naming the groups or the broker. So a
planned run yields exactly one result per host, whatever the workers do; the
executor records them as it records local ones (the scheduler is the only
writer), with the worker's name and its start time clamped into [sent,
replied].
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from survivor.clock import MINUTE_S, Clock
from survivor.errors import ModuleError
from survivor.model.codes import ReturnCode
from survivor.model.config import LOCAL_TARGET, CheckDef, CheckKind, Config, Host
from survivor.model.work import CheckResult, WorkItem
from survivor.proc.modules import ModuleHashes
from survivor.protocol.remote import not_remote, reply_limit, work_request
from survivor.remote.dispatchplan import batches, chain, clamp_start, not_served
from survivor.work.remote import Dispatcher, Job, NotServed, Served
from survivor.work.steps import Await, Steps

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    from survivor.checks.execute import CheckRunner
    from survivor.work.queue import WorkContext

log = logging.getLogger(__name__)
COMPARE_S = 10.0  # a worker's module is compared with ours at most this often (per hash)


@dataclass(frozen=True, slots=True)
class Ran:
    """One host's result, when it started, and the worker that ran it (None: the scheduler)."""

    result: CheckResult
    start: datetime
    worker: str | None = None


class PlacedRunner:
    def __init__(
        self,
        dispatcher: Dispatcher,
        runner: CheckRunner,
        clock: Clock,
        fingerprint: Callable[[Config, CheckDef, Host], str],
    ) -> None:
        self.dispatcher = dispatcher
        self.runner = runner
        self.clock = clock
        self.fingerprint = fingerprint
        self.hashes = ModuleHashes()
        self._said: dict[str, float] = {}  # fallback reason -> monotonic until it is said again
        # (worker, module, its hash) -> monotonic time until which it is not compared again
        self._compared: dict[tuple[str, str, str], float] = {}

    @staticmethod
    def is_placed(config: Config, check: CheckDef, hosts: list[Host]) -> bool:
        """Whether any of `hosts` has check run elsewhere than on the scheduler first."""
        if not config.host_placement or check.placement_local:
            return False
        return any(config.targets_for(check, h)[0] != LOCAL_TARGET for h in hosts)

    def run_steps(
        self,
        config: Config,
        check: CheckDef,
        hosts: list[Host],
        item: WorkItem,
        ctx: WorkContext,
    ) -> Steps[list[Ran]]:
        workers = config.workers
        assert workers is not None
        local: list[Host] = []
        remote: list[tuple[list[Host], bool, Job]] = []
        ran: list[Ran] = []
        mono, epoch = self.clock.monotonic(), self.clock.time()
        until = mono + (item.planned // MINUTE_S * MINUTE_S + MINUTE_S - epoch)
        for n, (targets, batch) in enumerate(batches(config, check, hosts)):
            groups, local_ok = chain(targets)
            if not groups:
                local.extend(batch)
                continue
            work_id = f"{item.id}.{n}"
            refused = not_remote(check, batch)  # refused here, not in the dispatcher
            if refused is not None:
                if local_ok:
                    local.extend(batch)
                    continue
                now = self.clock.now()
                ran.extend(Ran(_failed(h, ReturnCode.MISCONFIG, refused), now) for h in batch)
                continue
            request = _request(check, batch, work_id, self.fingerprint(config, check, batch[0]))
            names = tuple(h.name for h in batch)
            job = Job(
                what=f"{check.name}@{','.join(names)[:200]}",
                work_id=work_id,
                groups=groups,
                request=request,
                hosts=names,
                wait_s=check.timeout + workers.dispatch_grace,
                until=until,
                max_bytes=reply_limit(len(batch), config.instance.output_cap),
            )
            remote.append((batch, local_ok, job))
        futures = [(b, ok, job, self.dispatcher.dispatch(job)) for b, ok, job in remote]
        if local:
            ran.extend((yield from self._run_here(config, check, local, ctx)))
        for batch, local_ok, job, future in futures:
            outcome = yield Await(future)
            if isinstance(outcome, Served):
                ran.extend(self._served(check, batch, outcome))
            elif local_ok:
                self._fell_back(job, outcome)
                ran.extend((yield from self._run_here(config, check, batch, ctx)))
            else:
                comment = not_served(outcome.tried)
                if outcome.broker:
                    comment = f"not run: the broker is unreachable and local is off; {comment[9:]}"
                now = self.clock.now()
                ran.extend(Ran(_failed(h, ReturnCode.TIMEDOUT, comment), now) for h in batch)
        return ran

    def _run_here(
        self, config: Config, check: CheckDef, hosts: list[Host], ctx: WorkContext
    ) -> Steps[list[Ran]]:
        start = self.clock.now()
        results = yield from self.runner.run_steps(config, check, hosts, ctx)
        return [Ran(r, start) for r in results]

    def _served(self, check: CheckDef, batch: list[Host], outcome: Served) -> list[Ran]:
        reply = outcome.reply
        start = clamp_start(reply.started, outcome.sent, outcome.replied)
        got = {r.host: r for r in reply.results}
        self._compare_module(check, reply.worker, reply.module_sha256)
        return [
            Ran(
                got.get(h.name)
                or _failed(h, ReturnCode.MISCONFIG, f"no result from worker {reply.worker}"),
                start,
                reply.worker,
            )
            for h in batch
        ]

    def _fell_back(self, job: Job, outcome: NotServed) -> None:
        """Log why a run fell back to the scheduler: once a minute for each reason, not once
        a check (a group without members would be 20,000 lines a minute)."""
        if outcome.broker:
            return  # said once when the connection went (work.remote)
        why = ", ".join(str(t) for t in outcome.tried) or "no group to try"
        mono = self.clock.monotonic()
        if mono < self._said.get(why, -MINUTE_S):
            return
        self._said[why] = mono + MINUTE_S
        log.info("dispatch: %s (and others like it): runs on the scheduler; %s", job.what, why)

    def _compare_module(self, check: CheckDef, worker: str, theirs: str) -> None:
        name = check.module if check.kind is CheckKind.MODULE else check.plugin
        if not theirs or name is None:
            return
        # Once every COMPARE_S per worker, module and hash, not for every result: a worker's
        # other module shows at once (another hash), a change of ours within COMPARE_S.
        key, mono = (worker, name, theirs), self.clock.monotonic()
        if mono < self._compared.get(key, -COMPARE_S):
            return
        self._compared[key] = mono + COMPARE_S
        try:
            path = (
                self.runner.runner.resolve("check", name)
                if check.kind is CheckKind.MODULE
                else self.runner.runner.resolve_plugin(name)
            )
            ours = self.hashes.of(path)
        except (ModuleError, OSError):
            return  # not on the scheduler: nothing to compare with
        if ours != theirs:
            self.dispatcher.note_module(worker, name, theirs, ours)
        else:
            self.dispatcher.module_matches(worker, name)


def _failed(host: Host, rc: ReturnCode, comment: str) -> CheckResult:
    return CheckResult(host.name, int(rc), comment)


def _request(
    check: CheckDef, hosts: list[Host], work_id: str, fingerprint: str
) -> Callable[[datetime], bytes]:
    """The request document for a deadline (each try has its own); ValueError if not remote."""

    def encode(deadline: datetime) -> bytes:
        return work_request(
            check, hosts, work_id=work_id, fingerprint=fingerprint, deadline=deadline
        )

    return encode
