"""Alerts: what the alert scheduler decides each minute, and what an alert worker does.

`AlertScheduler.tick(config, now)` walks every check@host that is failing or
has alert state, reads the operator's ack/inhibit/escalate files, asks
`alertplan.decide()` what to do, resolves call lists, and applies the
throttle: at most `alert_throttle` logical alerts a minute (one alert to
several lists counts once); the rest are not dropped but sent as one digest
per recipient listing every withheld problem.

`AlertExecutor.execute()` runs one job on an alert worker: re-checks that
nobody silenced the problem meanwhile, runs the fix if the try says so, then
format -> transmit for each alert method, records every delivery in the
alert history, and stores the alert state the decision prescribed (a failed
delivery keeps the old pacing, so the alert is retried next minute).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from survivor import alertplan, calllist
from survivor.alertplan import AlertAction, Decision
from survivor.alertstate import Ack, AlertState, CheckView, Escalation, Inhibit
from survivor.book import CheckBook, DiskHealth, ItemIds
from survivor.calllist import Recipient
from survivor.clock import Clock, utc_iso
from survivor.errors import ModuleError, StateError
from survivor.fixes import FixOutcome, FixRunner
from survivor.fsio import DiskWriteError
from survivor.history import HistoryStore
from survivor.model import (
    AlertPlan,
    CheckDef,
    Config,
    Host,
    ReturnCode,
    WorkItem,
    WorkKind,
    code_name,
)
from survivor.runner import ModuleRunner
from survivor.state import StateStore

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    from survivor.pool import WorkContext

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 60.0  # seconds for each of format and transmit (Survivor: 300 s for both)
SYSTEM_USER = "survivor"


@dataclass(frozen=True, slots=True)
class AlertJob:
    """One alert worker job: a decision about one pair, or a digest for one recipient."""

    check: str
    host: str
    action: AlertAction
    decision: Decision | None
    recipients: tuple[Recipient, ...] = ()
    tell: tuple[Recipient, ...] = ()
    doc: Mapping[str, Any] = field(default_factory=dict)
    digest: tuple[Mapping[str, Any], ...] = ()


@dataclass(slots=True)
class AlertStats:
    """Counters for daemon.json and metrics."""

    sent: int = 0
    failed: int = 0
    throttled: int = 0
    digests: int = 0
    fixes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def to_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "throttled": self.throttled,
            "digests": self.digests,
            "fixes": self.fixes,
        }


class AlertBook:
    """In-memory alert states; alert.json is the durable copy, written under the pair lock."""

    def __init__(
        self,
        state: StateStore,
        health: DiskHealth,
        states: Mapping[tuple[str, str], AlertState] | None = None,
    ) -> None:
        self.state = state
        self.health = health
        self._states: dict[tuple[str, str], AlertState] = dict(states or {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, state: StateStore, health: DiskHealth, now: datetime) -> AlertBook:
        states: dict[tuple[str, str], AlertState] = {}
        for (check, host), doc in state.load_pair_docs("alert", now).items():
            try:
                states[(check, host)] = AlertState.from_dict(doc)
            except StateError as err:
                state.move_aside(state.pair_dir(host, check) / "alert.json", str(err), now)
        return cls(state, health, states)

    def get(self, check: str, host: str) -> AlertState | None:
        return self._states.get((check, host))

    def store(self, check: str, host: str, new: AlertState | None) -> None:
        with self._lock:
            old = self._states.get((check, host))
            if new is None:
                self._states.pop((check, host), None)
            else:
                self._states[(check, host)] = new
        if old == new:
            return
        try:
            with self.state.locks.hold(self.state.pair_dir(host, check)):
                if new is None:
                    self.state.remove_pair_doc(host, check, "alert")
                else:
                    self.state.write_pair_doc(host, check, "alert", new.to_dict())
        except DiskWriteError as err:
            self.health.failed(err)

    def pairs(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._states)

    def prune(self, keep: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [k for k in self._states if k not in keep]:
                del self._states[key]


# --------------------------------------------------------------------------- operator documents


@dataclass(frozen=True, slots=True)
class Silencers:
    ack: Ack | None = None
    inhibit: Inhibit | None = None
    escalate: Escalation | None = None


def read_silencers(state: StateStore, check: str, host: str) -> Silencers:
    """ack.json, inhibit.json and escalate.json of a pair; a bad file is logged and ignored."""
    found: dict[str, Any] = {}
    for name, cls in (("ack", Ack), ("inhibit", Inhibit), ("escalate", Escalation)):
        try:
            doc = state.read_pair_doc(host, check, name)
            found[name] = None if doc is None else cls.from_dict(doc)
        except StateError as err:
            log.error("alert %s@%s: ignoring %s.json: %s", check, host, name, err)
            found[name] = None
    return Silencers(found["ack"], found["inhibit"], found["escalate"])


# --------------------------------------------------------------------------- the scheduler


class AlertScheduler:
    def __init__(
        self,
        checks: CheckBook,
        alerts: AlertBook,
        state: StateStore,
        history: HistoryStore,
        ids: ItemIds,
        stats: AlertStats,
        tz: tzinfo,
        busy: Callable[[str], bool],
    ) -> None:
        self.checks = checks
        self.alerts = alerts
        self.state = state
        self.history = history
        self.ids = ids
        self.stats = stats
        self.tz = tz
        self.busy = busy

    def tick(self, config: Config, now: datetime) -> list[WorkItem]:
        budget = config.instance.alert_throttle or None
        jobs: list[AlertJob] = []
        withheld: dict[Recipient, list[dict[str, Any]]] = defaultdict(list)
        peers = self._failing_peers(config)
        with_state = self.alerts.pairs()
        for check, host in config.pairs():
            plan = config.alertplan_for(check, host)
            st = self.checks.get(check.name, host.name)
            if plan is None or st is None or st.last_start is None or st.since is None:
                continue
            if st.rc == ReturnCode.OK and (check.name, host.name) not in with_state:
                continue
            if self.busy(_job_key(check.name, host.name)):
                continue  # the previous alert for this pair is still being delivered
            try:
                job = self._decide(config, plan, check, host, now, peers)
            except Exception:
                log.exception(
                    "alert %s@%s: decision failed; trying again next minute", check.name, host.name
                )
                continue
            if job is None:
                continue
            if budget is None or budget > 0:
                jobs.append(job)
                if budget is not None:
                    budget -= 1
            else:
                self._withhold(job, withheld, now)
        items = [self._item(job, _job_key(job.check, job.host), now) for job in jobs]
        for recipient, entries in withheld.items():
            job = AlertJob(
                "digest",
                recipient.person,
                AlertAction.ALERT,
                None,
                (recipient,),
                digest=tuple(entries),
            )
            items.append(self._item(job, f"digest:{recipient.person}:{recipient.via}", now))
        return items

    def _item(self, job: AlertJob, key: str, now: datetime) -> WorkItem:
        return WorkItem(
            id=self.ids.next("alert"),
            kind=WorkKind.ALERT,
            check=job.check,
            hosts=(job.host,),
            planned=now.timestamp(),
            key=key,
            payload={"job": job},
        )

    def _decide(
        self,
        config: Config,
        plan: AlertPlan,
        check: CheckDef,
        host: Host,
        now: datetime,
        peers: Mapping[tuple[str, str], int],
    ) -> AlertJob | None:
        st = self.checks.get(check.name, host.name)
        assert st is not None and st.since is not None
        view = CheckView(st.rc, st.consecutive, st.since, st.last_start, st.comment)
        alert = self.alerts.get(check.name, host.name)
        silencers = read_silencers(self.state, check.name, host.name)
        decision = alertplan.decide(
            plan,
            view,
            alert,
            ack=silencers.ack,
            inhibit=silencers.inhibit,
            escalate_to=None if silencers.escalate is None else silencers.escalate.level,
            returngroups=config.returngroups,
            schedules=config.schedules,
            tz=self.tz,
            now=now,
            has_fix=check.fix is not None and check.fix in config.fixes,
            failing_peers=max(0, peers.get((check.name, plan.name), 0) - 1),  # minus itself
            shift=config.instance.alert_shift,
        )
        self._drop_stale(check.name, host.name, decision, st.rc, now)
        if decision.action in (AlertAction.NONE, AlertAction.RESET):
            store = decision.state if decision.action is AlertAction.RESET else decision.idle_state
            self.alerts.store(check.name, host.name, store)
            if decision.action is AlertAction.RESET:
                log.info("alert %s@%s: %s", check.name, host.name, decision.reason)
            return None
        if decision.action is AlertAction.CLEAR:
            recipients = decision.clear_recipients
            tell: tuple[Recipient, ...] = ()
        else:
            recipients = self._resolve(config, decision.alert_lists, now)
            tell = self._resolve(config, decision.tell_lists, now)
        doc = alert_document(
            check.name,
            host.name,
            st.rc,
            st.comment,
            st.since,
            st.consecutive,
            decision,
            clear=decision.action is AlertAction.CLEAR,
        )
        return AlertJob(check.name, host.name, decision.action, decision, recipients, tell, doc)

    def _drop_stale(
        self, check: str, host: str, decision: Decision, rc: int, now: datetime
    ) -> None:
        for flag, name, command in (
            (decision.drop_ack, "ack", "unack"),
            (decision.drop_inhibit, "inhibit", "uninhibit"),
            (decision.drop_escalate, "escalate", "unescalate"),
        ):
            if not flag:
                continue
            try:
                with self.state.locks.hold(self.state.pair_dir(host, check)):
                    self.state.remove_pair_doc(host, check, name)
                self.history.append(
                    host,
                    check,
                    "command",
                    now,
                    {
                        "user": SYSTEM_USER,
                        "command": command,
                        "comment": f"{name} cleared automatically ({decision.reason}; "
                        f"now {code_name(rc)})",
                    },
                )
            except DiskWriteError as err:
                log.error("alert %s@%s: cannot clear %s.json: %s", check, host, name, err)

    def _resolve(
        self, config: Config, names: Iterable[str], now: datetime
    ) -> tuple[Recipient, ...]:
        """Recipients of the call lists, advancing each list's state (under its lock)."""
        out: list[Recipient] = []
        for name in names:
            cl = config.calllists.get(name)
            if cl is None:
                continue
            target = config.calllists.get(cl.alias_of) if cl.alias_of else None
            shape = target or cl
            state_name = calllist.state_name(cl)
            try:
                with self.state.locks.hold(self.state.calllist_lock_dir):
                    old = self.state.load_calllist(state_name, now)
                    res = calllist.resolution(
                        cl,
                        old,
                        config.people,
                        config.alerts,
                        rotation_schedule=config.schedules.get(shape.rotate or ""),
                        tz=self.tz,
                        now=now,
                        target=target,
                    )
                    if res.state != old:
                        self.state.write_calllist(state_name, res.state)
                if res.rotated:
                    self.history.append_calllist(
                        state_name,
                        now,
                        {"event": "rotate", "steps": res.rotated, "on_call": res.state.on_call},
                    )
            except (StateError, ValueError, DiskWriteError) as err:
                log.error("call list %s: %s", name, err)
                continue
            for why in res.skipped:
                log.warning("call list %s: %s", name, why)
            out.extend(r for r in res.recipients if r not in out)
        return tuple(out)

    def _withhold(
        self, job: AlertJob, withheld: dict[Recipient, list[dict[str, Any]]], now: datetime
    ) -> None:
        """Over the throttle: the problem goes into each recipient's digest, and counts as told."""
        self.stats.add(throttled=1)
        entry = {
            "check": job.check,
            "host": job.host,
            "rc": job.doc.get("rc"),
            "code": job.doc.get("code"),
            "comment": job.doc.get("comment"),
            "since": job.doc.get("since"),
            "clear": job.action is AlertAction.CLEAR,
        }
        for r in (*job.recipients, *job.tell):
            withheld[r].append(entry)
        decision = job.decision
        assert decision is not None
        new = decision.state
        if new is not None and job.action is not AlertAction.CLEAR:
            new = new.with_recipients(job.recipients)
        self.alerts.store(job.check, job.host, new)
        try:
            self.history.append(
                job.host,
                job.check,
                "alert",
                now,
                {
                    "throttled": True,
                    "action": job.action.value,
                    "rc": job.doc.get("rc"),
                    "code": job.doc.get("code"),
                    "digest_to": sorted({r.person for r in job.recipients}),
                    "try": decision.attempt,
                },
            )
        except DiskWriteError:
            pass
        log.info("alert %s@%s: throttled; goes into the digest", job.check, job.host)

    def _failing_peers(self, config: Config) -> dict[tuple[str, str], int]:
        """For degraded mode: how many hosts of each (check, plan) are failing past `after`.

        Only counted when some plan has a degraded-mode try; otherwise nobody asks.
        """
        counts: dict[tuple[str, str], int] = defaultdict(int)
        if not any(
            t.allow_failed_hosts
            for plan in config.alertplans.values()
            for rule in plan.rules
            for using in rule.using
            for t in using.tries
        ):
            return counts
        for check, host in config.pairs():
            plan = config.alertplan_for(check, host)
            st = self.checks.get(check.name, host.name)
            if plan is None or st is None or st.since is None:
                continue
            if _fails(st.rc) and _meets_a_rule(plan, st.rc, st.consecutive):
                counts[(check.name, plan.name)] += 1
        return counts


def _fails(rc: int) -> bool:
    return rc not in (ReturnCode.OK, ReturnCode.NOTYET, ReturnCode.DEPEND)


def _meets_a_rule(plan: AlertPlan, rc: int, consecutive: int) -> bool:
    return any((r.on is None or rc in r.on) and consecutive >= r.after for r in plan.rules)


def _job_key(check: str, host: str) -> str:
    return f"alert:{check}@{host}"


def alert_document(
    check: str,
    host: str,
    rc: int,
    comment: str,
    since: datetime,
    consecutive: int,
    decision: Decision,
    *,
    clear: bool,
) -> dict[str, Any]:
    """The alert document format modules read (DESIGN §4), without recipients."""
    return {
        "version": 1,
        "kind": "alert",
        "check": check,
        "host": host,
        "rc": rc,
        "code": code_name(rc),
        "comment": comment,
        "since": utc_iso(since),
        "consecutive": consecutive,
        "try": decision.attempt,
        "escalated": decision.escalated,
        "recipients": [],
        "clear": clear,
        "digest": [],
    }


# --------------------------------------------------------------------------- the worker


class AlertExecutor:
    def __init__(
        self,
        runner: ModuleRunner,
        fixes: FixRunner,
        alerts: AlertBook,
        state: StateStore,
        history: HistoryStore,
        stats: AlertStats,
        clock: Clock,
        current: Callable[[], tuple[Config, int]],
        on_fix_success: Callable[[str, str], None],
    ) -> None:
        self.runner = runner
        self.fixes = fixes
        self.alerts = alerts
        self.state = state
        self.history = history
        self.stats = stats
        self.clock = clock
        self.current = current
        self.on_fix_success = on_fix_success

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
        if fix is not None and job.tell:
            fix_doc = {**job.doc, "fix": {"rc": fix.rc, "code": fix.code, "comment": fix.comment}}
            self._deliver_all(config, job, fix_doc, job.tell, fix, ctx)
        if job.action is AlertAction.CLEAR:
            self.alerts.store(job.check, job.host, new)  # clear notices are never retried
        elif delivered or (fix is not None and not job.recipients):
            self.alerts.store(
                job.check, job.host, None if new is None else new.with_recipients(tuple(delivered))
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
            full = {**doc, "recipients": [r.to_dict() for r in group]}
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
        doc = {
            "version": 1,
            "kind": "alert",
            "check": "digest",
            "host": "",
            "rc": max((int(e.get("rc") or 0) for e in job.digest), default=0),
            "code": "DIGEST",
            "comment": f"{n} problems withheld by the alert throttle",
            "since": utc_iso(self.clock.now()),
            "consecutive": 0,
            "try": None,
            "escalated": False,
            "recipients": [recipient.to_dict()],
            "clear": False,
            "digest": list(job.digest),
        }
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
            "alert digest of %d problems to %s via %s: %s",
            n,
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
            text = out.stdout.decode(errors="replace")
            subject, _, body = text.partition("\n")
            tx = self.runner.resolve("transmit", method.transmit)
            transmit_doc = {
                "version": 1,
                "via": via,
                "recipients": [{"person": r.person, "address": r.address} for r in recipients],
                "subject": subject.strip(),
                "body": body,
                "alert": doc,
                "args": dict(method.args),
            }
            sent = self.runner.run(
                [str(tx)], json.dumps(transmit_doc).encode(), DELIVERY_TIMEOUT, on_start=on_start
            )
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
