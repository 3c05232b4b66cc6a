"""The alert scheduler: what to send each minute, to whom, within the throttle.

`AlertScheduler.tick(config, now)` walks every check@host that is failing or
has alert state, reads the operator's ack/inhibit/escalate files, asks
`alertplan.decide()` what to do, resolves call lists, and applies the
throttle: at most `alert_throttle` logical alerts a minute (one alert to
several lists counts once; fix tries always run); the rest are not dropped
but sent as one digest per recipient listing every withheld problem.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from survivor import alertplan, calllist, downtime
from survivor.alertplan import AlertAction, Decision
from survivor.alerts.jobs import (
    SYSTEM_USER,
    AlertJob,
    AlertStats,
    job_key,
    read_silencers,
)
from survivor.downtime import Hold
from survivor.errors import StateError
from survivor.model.codes import ReturnCode, code_name, is_failing
from survivor.model.config import AlertPlan, CheckDef, Config, Host
from survivor.model.documents import CheckView, Recipient
from survivor.model.work import ItemIds, WorkItem, WorkKind
from survivor.protocol.alerts import alert_document
from survivor.store.books import AlertBook, CheckBook
from survivor.store.fsio import DiskWriteError
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    pass

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the scheduler


@dataclass(eq=False)
class AlertScheduler:
    checks: CheckBook
    alerts: AlertBook
    state: StateStore
    history: HistoryStore
    ids: ItemIds
    stats: AlertStats
    tz: tzinfo
    busy: Callable[[str], bool]

    def tick(self, config: Config, now: datetime) -> list[WorkItem]:
        budget = config.instance.alert_throttle or None
        jobs: list[AlertJob] = []
        withheld: dict[tuple[str, str], tuple[Recipient, list[dict[str, Any]]]] = {}
        peers = self._failing_peers(config)
        with_state = self.alerts.pairs()
        held = self._downtimes(config, now)
        for check, host in config.pairs():
            plan = config.alertplan_for(check, host)
            st = self.checks.get(check.name, host.name)
            if plan is None or st is None or st.last_start is None or st.since is None:
                continue
            if st.rc == ReturnCode.OK and (check.name, host.name) not in with_state:
                continue
            if self.busy(job_key(check.name, host.name)):
                continue  # the previous alert for this pair is still being delivered
            try:
                job = self._decide(
                    config, plan, check, host, now, peers, held.get((host.name, check.name))
                )
            except Exception:
                log.exception(
                    "alert %s@%s: decision failed; trying again next minute", check.name, host.name
                )
                continue
            if job is None:
                continue
            # A fix is repair work, not a notification: withheld, it would count as tried
            # without ever having run.
            if budget is None or budget > 0 or job.action is AlertAction.FIX:
                jobs.append(job)
                if budget is not None:
                    budget -= 1
            else:
                self._withhold(job, withheld, now)
        items = [self._item(job, job_key(job.check, job.host), now) for job in jobs]
        for recipient, entries in withheld.values():
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
        hold: Hold | None = None,
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
            downtime=None if hold is None else hold.describe(),
        )
        if hold is not None and is_failing(st.rc):
            self.stats.add(held=1)
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
            attempt=decision.attempt,
            escalated=decision.escalated,
            clear=decision.action is AlertAction.CLEAR,
            long_output=st.long_output,
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

    def _downtimes(self, config: Config, now: datetime) -> dict[tuple[str, str], Hold]:
        """The pairs in downtime now (operator downtimes and config windows)."""
        try:
            found, problems = self.state.read_downtimes()
        except OSError as err:
            log.error("downtime: cannot read the downtimes (alerts are not held): %s", err)
            found, problems = [], []
        for problem in problems:
            log.error("downtime: ignoring %s", problem)
        held = downtime.holds(config, found, now, self.tz)
        self.stats.in_downtime = len(held)
        return held

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
                with self.state.locks.hold(self.state.layout.calllists):
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
        self,
        job: AlertJob,
        withheld: dict[tuple[str, str], tuple[Recipient, list[dict[str, Any]]]],
        now: datetime,
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
            # One digest per person and method (its item key), whichever lists reached them.
            _, entries = withheld.setdefault((r.person, r.via), (r, []))
            if not entries or entries[-1] is not entry:
                entries.append(entry)
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
            if is_failing(st.rc) and _meets_a_rule(plan, st.rc, st.consecutive):
                counts[(check.name, plan.name)] += 1
        return counts


def _meets_a_rule(plan: AlertPlan, rc: int, consecutive: int) -> bool:
    return any((r.on is None or rc in r.on) and consecutive >= r.after for r in plan.rules)
