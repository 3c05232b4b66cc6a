"""What an alert worker does with one job: fix, format, transmit, record.

`AlertExecutor.execute()` re-checks that nobody silenced the problem meanwhile,
runs the fix if the try says so, then format -> transmit for each alert method,
records every delivery in the alert history, and stores the alert state the
decision prescribed (a failed delivery keeps the old pacing, so the alert is
retried next minute).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from survivor.alertplan import AlertAction
from survivor.alerts.fixes import FixOutcome, FixRunner
from survivor.alerts.jobs import SYSTEM_USER, AlertJob, AlertStats, read_silencers
from survivor.clock import Clock
from survivor.errors import ModuleError
from survivor.model.config import Config
from survivor.model.documents import Recipient
from survivor.model.words import counted
from survivor.model.work import WorkItem
from survivor.proc.runner import ModuleRunner
from survivor.protocol.alerts import addressed, digest_document, transmit_document
from survivor.store.books import AlertBook
from survivor.store.fsio import DiskWriteError
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore

DELIVERY_TIMEOUT = 60.0  # seconds for each of format and transmit (Survivor: 300 s for both)

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    from survivor.work.queue import WorkContext

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the worker


@dataclass(eq=False)
class AlertExecutor:
    runner: ModuleRunner
    fixes: FixRunner
    alerts: AlertBook
    state: StateStore
    history: HistoryStore
    stats: AlertStats
    clock: Clock
    current: Callable[[], tuple[Config, int]]
    on_fix_success: Callable[[str, str], None]

    def execute(self, item: WorkItem, ctx: WorkContext) -> None:
        job = item.payload["job"]
        assert isinstance(job, AlertJob)
        config, _ = self.current()
        if job.decision is None:
            self._send_digest(config, job, ctx)
            return
        decision = job.decision
        now = self.clock.now()
        if job.action is not AlertAction.CLEAR and self._silenced_since(job, now):
            self.alerts.store(job.check, job.host, decision.idle_state)
            log.info("alert %s@%s: silenced before delivery; not sent", job.check, job.host)
            return
        new = decision.state
        fix: FixOutcome | None = None
        if job.action is AlertAction.FIX:
            fix = self.fixes.run(
                config, job.check, job.host, initiated_by=SYSTEM_USER, on_start=ctx.set_pid
            )
            self.stats.add(fixes=1)
            ok = fix.ok
            log.info("fix %s@%s: %s: %s", job.check, job.host, fix.code, fix.comment)
            if new is not None:
                new = new.with_fix_result(ok)
            if ok:
                self.on_fix_success(job.check, job.host)
        delivered = self._deliver_all(config, job, dict(job.doc), job.recipients, None, ctx)
        told: list[Recipient] = []
        if fix is not None and job.tell:
            fix_doc = {**job.doc, "fix": {"rc": fix.rc, "code": fix.code, "comment": fix.comment}}
            told = self._deliver_all(config, job, fix_doc, job.tell, fix, ctx)
        if job.action is AlertAction.CLEAR:
            self.alerts.store(job.check, job.host, new)  # clear notices are never retried
        elif delivered or (fix is not None and not job.recipients):
            # Everyone told about the problem gets the clear: alerted or told of the fix.
            self.alerts.store(
                job.check, job.host, None if new is None else new.with_told([*delivered, *told])
            )
        else:
            self.alerts.store(job.check, job.host, decision.idle_state)

    def _silenced_since(self, job: AlertJob, now: datetime) -> bool:
        """An ack or inhibit that arrived after the decision (honoured within seconds)."""
        s = read_silencers(self.state, job.check, job.host)
        if s.inhibit is not None and s.inhibit.active(now):
            return True
        return s.ack is not None and s.ack.about_rc == job.doc.get("rc")

    def _deliver_all(
        self,
        config: Config,
        job: AlertJob,
        doc: dict[str, Any],
        recipients: Iterable[Recipient],
        fix: FixOutcome | None,
        ctx: WorkContext | None,
    ) -> list[Recipient]:
        by_method: dict[str, list[Recipient]] = defaultdict(list)
        for r in recipients:
            by_method[r.via].append(r)
        delivered: list[Recipient] = []
        for via, group in by_method.items():
            full = addressed(doc, group)
            ok, error = self.deliver(config, via, group, full, ctx)
            record: dict[str, Any] = {
                "via": via,
                "ok": ok,
                "recipients": [r.to_dict() for r in group],
                "rc": doc.get("rc"),
                "code": doc.get("code"),
                "try": doc.get("try"),
                "escalated": doc.get("escalated"),
                "clear": doc.get("clear"),
                "action": job.action.value,
            }
            if fix is not None:
                record["fix"] = doc.get("fix")
            if error:
                record["error"] = error
            self._history(job.host, job.check, record)
            if ok:
                delivered.extend(group)
                self.stats.add(sent=1)
                log.info(
                    "alert %s@%s: %s sent via %s to %s",
                    job.check,
                    job.host,
                    "clear notice" if doc.get("clear") else f"try {doc.get('try')}",
                    via,
                    ", ".join(r.person for r in group),
                )
            else:
                self.stats.add(failed=1)
                log.error(
                    "alert %s@%s: delivery via %s failed: %s (retried next minute)",
                    job.check,
                    job.host,
                    via,
                    error,
                )
        return delivered

    def _send_digest(self, config: Config, job: AlertJob, ctx: WorkContext | None) -> None:
        [recipient] = job.recipients
        n = len(job.digest)
        doc = digest_document(recipient, job.digest, self.clock.now())
        ok, error = self.deliver(config, recipient.via, [recipient], doc, ctx)
        self.stats.add(digests=1 if ok else 0, failed=0 if ok else 1)
        for entry in job.digest:
            record = {
                "via": recipient.via,
                "ok": ok,
                "digest": True,
                "recipients": [recipient.to_dict()],
                "rc": entry.get("rc"),
                "code": entry.get("code"),
                "clear": entry.get("clear"),
            }
            if error:
                record["error"] = error
            self._history(str(entry["host"]), str(entry["check"]), record)
        log.log(
            logging.INFO if ok else logging.ERROR,
            "alert digest of %s to %s via %s: %s",
            counted(n, "problem"),
            recipient.person,
            recipient.via,
            "sent" if ok else f"FAILED: {error}",
        )

    def deliver(
        self,
        config: Config,
        via: str,
        recipients: list[Recipient],
        doc: dict[str, Any],
        ctx: WorkContext | None = None,
    ) -> tuple[bool, str | None]:
        """format module -> transmit module for one alert method; (delivered, error)."""
        on_start = None if ctx is None else ctx.set_pid
        method = config.alerts.get(via)
        if method is None:
            return False, f"alert method {via!r} is not configured"
        try:
            fmt = self.runner.resolve("format", method.format)
            out = self.runner.run(
                [str(fmt)], json.dumps(doc).encode(), DELIVERY_TIMEOUT, on_start=on_start
            )
            if out.timed_out or out.exit_status != 0:
                return False, (
                    f"format {method.format} "
                    f"{'timed out' if out.timed_out else f'exited {out.exit_status}'}: "
                    f"{_tail(out.stderr)}"
                )
            formatted = out.stdout.decode(errors="replace")
            tx = self.runner.resolve("transmit", method.transmit)
            transmit_doc = transmit_document(via, recipients, formatted, doc, method.args)
            sent = self.runner.run([str(tx)], transmit_doc, DELIVERY_TIMEOUT, on_start=on_start)
        except ModuleError as err:
            return False, str(err)
        if sent.timed_out:
            return False, f"transmit {method.transmit} timed out after {DELIVERY_TIMEOUT:.0f} s"
        if sent.exit_status != 0:
            return (
                False,
                f"transmit {method.transmit} exited {sent.exit_status}: {_tail(sent.stderr)}",
            )
        return True, None

    def _history(self, host: str, check: str, record: dict[str, Any]) -> None:
        try:
            self.history.append(host, check, "alert", self.clock.now(), record)
        except DiskWriteError as err:
            log.error("alert history %s@%s not written: %s", check, host, err)


def _tail(data: bytes, limit: int = 300) -> str:
    return data.decode(errors="replace").strip()[-limit:].replace("\n", " | ")
