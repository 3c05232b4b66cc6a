"""The alert decision: given a check's status and its alert state, what to do now, and why.

Pure and synchronous: every input (check status, stored alert state, the
operator's ack/inhibit/escalate files, the plan, schedules and `now`) is an
argument, and the answer is a `Decision` that carries the state to store
afterwards. The alert scheduler reads the files, calls `decide()`, resolves
call lists, queues the work and writes what the decision says; this module
never touches a file or the clock, so the whole state machine is testable by
walking datetimes (see tests/test_alertplan.py).

Survivor 1.0 semantics (reference §2.3, §5.5-5.7):

* the first rule whose codes match and whose `after` threshold is met applies;
* inside it the first `using` schedule in effect (not `never`) paces repeats,
  counted from the later of the last alert and the last fix;
* the attempt number (alerts sent + fixes tried, or the manual escalation
  level if higher, plus one) picks the rung of the `tries` ladder;
* a code change resets all alert state and the acknowledgement, unless the
  plan keeps state for those codes; DEPEND never alerts and never resets;
* after `recovery_after` OK results a clear notice goes to whoever got the
  last alert (if the plan asks for it and nobody silenced the problem), and
  the state is wiped either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import pairwise
from typing import Any

from survivor.clock import floor_minute
from survivor.errors import SurvivorError
from survivor.model.codes import MAX_RETURN_CODE, ReturnCode, code_name
from survivor.model.config import AlertPlan, AlertRule, AlertTry, AlertUsing, Schedule, ScheduleLine
from survivor.model.documents import Ack, AlertState, CheckView, Inhibit, Recipient
from survivor.schedule import at_occurrences, effective_line

OK = ReturnCode.OK
DEPEND = ReturnCode.DEPEND
NOTYET = ReturnCode.NOTYET
NO_SHIFT = timedelta(0)


class AlertAction(StrEnum):
    NONE = "none"  # nothing to send; store `idle_state`
    ALERT = "alert"  # notify `alert_lists`
    FIX = "fix"  # run the check's fix (and notify `alert_lists`), tell `tell_lists` the result
    CLEAR = "clear"  # send the clear notice to `clear_recipients`; wipe the state
    RESET = "reset"  # wipe the state (code changed, or recovered without a notice)


class EscalationError(SurvivorError, ValueError):
    """`escalate` cannot go further: no problem, no schedule in effect, or already at the top."""


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one check@host now, and what to store.

    `state` is stored when the action was carried out (ALERT/FIX delivered:
    add recipients with `AlertState.with_recipients`, fix outcome with
    `with_fix_result`); `idle_state` when nothing was sent (action NONE, or
    the alert was throttled or failed, so it is retried next minute). None
    means: delete alert.json. The drop_* flags say which operator files are
    stale and should be removed.
    """

    action: AlertAction
    reason: str
    state: AlertState | None = None
    idle_state: AlertState | None = None
    try_index: int | None = None
    attempt: int | None = None
    alert_lists: tuple[str, ...] = ()
    tell_lists: tuple[str, ...] = ()
    clear_recipients: tuple[Recipient, ...] = ()
    escalated: bool = False
    reset: bool = False  # the code changed and the old state was wiped
    drop_ack: bool = False
    drop_inhibit: bool = False
    drop_escalate: bool = False


def keeps_state(
    plan: AlertPlan, returngroups: Mapping[str, frozenset[int]], old: int, new: int
) -> bool:
    """True when a change from `old` to `new` keeps alert state (changing to OK never does)."""
    if old == new:
        return True
    if new == OK:
        return False
    if old in plan.keep_state_on or new in plan.keep_state_on:
        return True
    for name in plan.clear_honors_returngroups:
        group = returngroups.get(name, frozenset())
        if old in group and new in group:
            return True
    return False


def decide(
    plan: AlertPlan,
    check: CheckView,
    alert: AlertState | None,
    *,
    ack: Ack | None = None,
    inhibit: Inhibit | None = None,
    escalate_to: int | None = None,
    returngroups: Mapping[str, frozenset[int]] | None = None,
    schedules: Mapping[str, Schedule],
    tz: tzinfo,
    now: datetime,
    has_fix: bool = False,
    failing_peers: int = 0,
    shift: timedelta = NO_SHIFT,
    downtime: str | None = None,
) -> Decision:
    """Decide what the alert scheduler does for one check@host at `now`.

    `downtime` names the scheduled downtime the pair is in at `now` (None: in
    none). During a downtime nothing is sent, and alert state is dropped
    without a clear notice, so that a problem still present when the downtime
    ends is alerted as a new one (as Nagios does).

    `failing_peers` counts the *other* hosts of the same check and plan that
    are failing and have met the rule's `after` (degraded mode). `shift` is the
    instance's alert_shift: schedules are evaluated at `now - shift`.
    """
    d = _Deciding(
        plan=plan,
        check=check,
        alert=alert,
        ack=ack,
        inhibit=inhibit,
        escalate_to=escalate_to,
        returngroups=returngroups or {},
        schedules=schedules,
        tz=tz,
        now=now,
        has_fix=has_fix,
        failing_peers=failing_peers,
        shift=shift,
        downtime=downtime,
    )
    return d.decide()


@dataclass(slots=True)
class _Deciding:
    """One evaluation: the inputs, and the operator files found stale on the way."""

    plan: AlertPlan
    check: CheckView
    alert: AlertState | None
    ack: Ack | None
    inhibit: Inhibit | None
    escalate_to: int | None
    returngroups: Mapping[str, frozenset[int]]
    schedules: Mapping[str, Schedule]
    tz: tzinfo
    now: datetime
    has_fix: bool
    failing_peers: int
    shift: timedelta
    downtime: str | None = None
    drop_ack: bool = False
    drop_inhibit: bool = False
    drop_escalate: bool = False
    reset_note: str = ""

    @property
    def sched_now(self) -> datetime:
        return self.now - self.shift

    def decide(self) -> Decision:
        rc = self.check.rc
        if self.downtime is not None:
            return self.held(self.downtime)
        if rc == DEPEND:
            return Decision(
                AlertAction.NONE,
                "DEPEND: a dependency is failing; never alerts, alert state kept",
                idle_state=self.alert,
            )
        if rc < 0 or rc > MAX_RETURN_CODE:
            return Decision(
                AlertAction.NONE,
                f"code {rc} is outside 0-{MAX_RETURN_CODE}; ignored",
                idle_state=self.alert,
            )
        if self.inhibit is not None and not self.inhibit.active(self.now):
            self.inhibit = None
            self.drop_inhibit = True
        if rc == OK:
            return self.recovery()
        self.apply_code_change()
        return self.problem()

    # ------------------------------------------------------------------ outcomes

    def held(self, downtime: str) -> Decision:
        """In downtime: send nothing; forget what was sent, so the end starts afresh."""
        why = f"in {downtime}: alerts held"
        if self.alert is None:
            return Decision(AlertAction.NONE, why)
        return Decision(
            AlertAction.RESET,
            f"{why}; alert state cleared, so a problem still present at its end is alerted as new",
            reset=True,
        )

    def none(self, reason: str, idle: AlertState | None) -> Decision:
        """Nothing to send; RESET instead when a code change wiped the state."""
        if self.reset_note:
            return self.finish(AlertAction.RESET, f"{self.reset_note}; {reason}", idle_state=idle)
        return self.finish(AlertAction.NONE, reason, idle_state=idle)

    def finish(self, action: AlertAction, reason: str, **kw: Any) -> Decision:
        return Decision(
            action,
            reason,
            reset=bool(self.reset_note),
            drop_ack=self.drop_ack,
            drop_inhibit=self.drop_inhibit,
            drop_escalate=self.drop_escalate,
            **kw,
        )

    # ------------------------------------------------------------------ OK: recovery and clear

    def recovery(self) -> Decision:
        alert, ack = self.alert, self.ack
        if alert is None and ack is None:
            self.drop_escalate = self.escalate_to is not None
            return self.finish(AlertAction.NONE, "OK")
        n, need = self.check.consecutive, self.plan.recovery_after
        if n < need:
            idle = None if alert is None else replace(alert, ok_streak=n)
            return self.finish(
                AlertAction.NONE, f"recovering: {n} of {need} OK results in a row", idle_state=idle
            )
        if alert is not None and self.fix_pending(alert):
            return self.finish(AlertAction.NONE, self.fix_pending_reason(alert), idle_state=alert)
        self.drop_ack = ack is not None
        self.drop_escalate = self.escalate_to is not None
        why_not = self.no_clear_notice(alert)
        if why_not is not None:
            return self.finish(
                AlertAction.RESET, f"recovered after {n} OK results; {why_not}; alert state cleared"
            )
        assert alert is not None
        names = ", ".join(sorted({r.person for r in alert.last_recipients}))
        return self.finish(
            AlertAction.CLEAR,
            f"recovered after {n} OK results: clear notice to {names}",
            clear_recipients=alert.last_recipients,
        )

    def no_clear_notice(self, alert: AlertState | None) -> str | None:
        """Why no clear notice is sent, or None when one is."""
        if alert is None or not alert.last_recipients:
            return "no alert had been sent"
        if self.ack is not None:
            return f"no clear notice: acknowledged by {self.ack.user}"
        if self.inhibit is not None:
            return f"no clear notice: inhibited by {self.inhibit.user}"
        if not self.plan.notify_on_clear:
            return f"no clear notice: plan {self.plan.name} does not notify on clear"
        name = self.plan.clear_schedule
        if name is not None and self.line_in_effect(self.schedules[name]) is None:
            return f"no clear notice: clear schedule {name} is not in effect"
        return None

    # ------------------------------------------------------------------ failing

    def apply_code_change(self) -> None:
        """Wipe state, ack and escalation when the code changed in a way the plan does not keep."""
        rc = self.check.rc
        ref = self.alert.about_rc if self.alert is not None else None
        if ref is None and self.ack is not None:
            ref = self.ack.about_rc
        if ref is not None and not keeps_state(self.plan, self.returngroups, ref, rc):
            self.reset_note = f"code changed {code_name(ref)} -> {code_name(rc)}: alert state reset"
            self.alert = None
            self.drop_ack = self.ack is not None
            self.ack = None
            self.drop_escalate = self.escalate_to is not None
            self.escalate_to = None
        if self.ack is not None and not keeps_state(
            self.plan, self.returngroups, self.ack.about_rc, rc
        ):
            self.ack = None
            self.drop_ack = True

    def problem(self) -> Decision:
        rc, alert = self.check.rc, self.alert
        idle = None if alert is None else replace(alert, ok_streak=0)
        if idle is not None and idle.pending_fix_confirm and not self.fix_pending(idle):
            idle = replace(idle, pending_fix_confirm=False)  # the re-check has happened
        if rc == NOTYET:
            return self.none("NOTYET: no result yet; never alerts", idle)
        if self.inhibit is not None:
            until = self.inhibit.until
            tail = "" if until is None else f" until {self.local(until)}"
            return self.none(f"inhibited by {self.inhibit.user}{tail}", idle)
        if self.ack is not None:
            return self.none(f"acknowledged by {self.ack.user}", idle)
        if idle is not None and self.fix_pending(idle):
            return self.none(self.fix_pending_reason(idle), idle)

        rule, why = self.pick_rule()
        if rule is None:
            return self.none(why, idle)
        picked = self.pick_using(rule)
        if picked is None:
            names = ", ".join(u.schedule for u in rule.using)
            return self.none(f"no alert schedule in effect ({names})", idle)
        using, sched, line = picked

        level, requested = attempt_level(alert), self.escalate_to or 0
        escalation_pending = requested > level
        attempt = max(level, requested) + 1
        rung = pick_try(using.tries, attempt, has_fix=self.has_fix)
        if rung is None:
            return self.none(f"all tries used ({level} attempts for {code_name(rc)})", idle)
        index, chosen = rung

        last = alert.last_action if alert else None
        if last is not None and not escalation_pending:
            wait = self.pacing(sched, line, last)
            if wait is not None:
                return self.none(wait, idle)

        need = chosen.allow_failed_hosts
        if need > 0 and self.degraded_active(chosen) and self.failing_peers < need:
            return self.none(
                f"degraded mode: {self.failing_peers} of {need} other hosts failing", idle
            )
        return self.act(rule, using, index, chosen, attempt, idle)

    def act(
        self,
        rule: AlertRule,
        using: AlertUsing,
        index: int,
        chosen: AlertTry,
        attempt: int,
        idle: AlertState | None,
    ) -> Decision:
        rc, now = self.check.rc, self.now
        base = self.alert or AlertState(about_rc=rc, status_since=self.check.since)
        escalated = is_escalated(using.tries, index)
        common = replace(
            base,
            about_rc=rc,
            try_index=index,
            escalated=escalated,
            # Past this action exactly `attempt` attempts count as done, even when an
            # escalation skipped some: otherwise the counters would catch up and
            # repeat the escalated rung.
            manual_escalation=attempt if base.attempts + 1 < attempt else base.manual_escalation,
            ok_streak=0,
            pending_fix_confirm=False,
        )
        do_fix = chosen.fix and self.has_fix
        what = f"{code_name(rc)} {self.check.consecutive} in a row (rule {rule.on_label}, "
        what += f"schedule {using.schedule}, try {index + 1}, attempt {attempt})"
        if do_fix:
            state = replace(common, fixes_tried=base.fixes_tried + 1, last_fix=now)
            action, verb = AlertAction.FIX, "fix"
        else:
            state = replace(common, alerts_sent=base.alerts_sent + 1, last_alert=now)
            action, verb = AlertAction.ALERT, "alert " + ", ".join(chosen.alert)
        return self.finish(
            action,
            f"{verb}: {what}" + (" escalated" if escalated else ""),
            state=state,
            idle_state=idle,
            try_index=index,
            attempt=attempt,
            alert_lists=chosen.alert,
            tell_lists=chosen.tell if do_fix else (),
            escalated=escalated,
        )

    # ------------------------------------------------------------------ pieces

    def pick_rule(self) -> tuple[AlertRule | None, str]:
        rc, n = self.check.rc, self.check.consecutive
        matching = [r for r in self.plan.rules if r.on is None or rc in r.on]
        if not matching:
            return None, f"no rule of plan {self.plan.name} matches {code_name(rc)}"
        for rule in matching:
            if n >= rule.after:
                return rule, ""
        return None, f"after {matching[0].after} not yet met ({n} in a row)"

    def pick_using(self, rule: AlertRule) -> tuple[AlertUsing, Schedule, ScheduleLine] | None:
        for using in rule.using:
            sched = self.schedules[using.schedule]
            line = self.line_in_effect(sched)
            if line is not None:
                return using, sched, line
        return None

    def line_in_effect(self, sched: Schedule) -> ScheduleLine | None:
        """The line in effect at the (shifted) time; None when none is, or it is `never`."""
        line = effective_line(sched, self.sched_now, self.tz)
        return None if line is None or line.never else line

    def pacing(self, sched: Schedule, line: ScheduleLine, last: datetime) -> str | None:
        """Why the next alert must wait, or None when it is due."""
        if line.every is not None:
            due = floor_minute(last) + line.every
            if floor_minute(self.now) < due:
                return f"pacing: next alert at {self.local(due)}"
            return None
        if line.at:
            after, until = last - self.shift, self.sched_now
            if until <= after or at_occurrences(sched, after, until, self.tz) == 0:
                times = ", ".join(str(t) for t in line.at)
                return f"pacing: next alert at the next of {times} ({sched.name})"
        return None

    def degraded_active(self, chosen: AlertTry) -> bool:
        if chosen.during is None:
            return True
        return self.line_in_effect(self.schedules[chosen.during]) is not None

    def fix_pending(self, alert: AlertState) -> bool:
        """A successful fix has not yet been confirmed by a check that started after it."""
        if not alert.pending_fix_confirm or alert.last_fix is None:
            return False
        start = self.check.last_start
        return start is None or start <= alert.last_fix

    def fix_pending_reason(self, alert: AlertState) -> str:
        assert alert.last_fix is not None
        return f"waiting for the re-check after the fix at {self.local(alert.last_fix)}"

    def local(self, t: datetime) -> str:
        lt, ln = t.astimezone(self.tz), self.now.astimezone(self.tz)
        return lt.strftime("%H:%M") if lt.date() == ln.date() else lt.strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- the ladder


def attempt_level(alert: AlertState | None) -> int:
    """Attempts that count as done: alerts sent + fixes tried, or the escalation level if higher."""
    if alert is None:
        return 0
    return max(alert.attempts, alert.manual_escalation)


def usable(t: AlertTry, *, has_fix: bool) -> bool:
    """A rung with nothing to do (no lists to alert, no fix the check has) is skipped."""
    return bool(t.alert) or (t.fix and has_fix)


def pick_try(
    tries: tuple[AlertTry, ...], attempt: int, *, has_fix: bool
) -> tuple[int, AlertTry] | None:
    """The rung for the 1-based `attempt`: `times N` rungs cover N attempts cumulatively."""
    upper = 0
    for index, t in enumerate(tries):
        if not usable(t, has_fix=has_fix):
            continue
        if t.times is None:
            return index, t
        upper += t.times
        if attempt <= upper:
            return index, t
    return None


def _rung_starts(tries: tuple[AlertTry, ...], *, has_fix: bool) -> list[tuple[int, int]]:
    """(index, first attempt) of every usable rung, up to and including a catch-all."""
    out: list[tuple[int, int]] = []
    start = 1
    for index, t in enumerate(tries):
        if not usable(t, has_fix=has_fix):
            continue
        out.append((index, start))
        if t.times is None:
            break
        start += t.times
    return out


def is_escalated(tries: tuple[AlertTry, ...], index: int) -> bool:
    """At or past the rung flagged `escalated` (default: the second rung)."""
    flagged = [i for i, t in enumerate(tries) if t.escalated]
    return index >= (flagged[0] if flagged else 1)


def next_escalation(
    plan: AlertPlan,
    check: CheckView,
    alert: AlertState | None,
    *,
    escalate_to: int | None = None,
    schedules: Mapping[str, Schedule],
    tz: tzinfo,
    now: datetime,
    has_fix: bool = False,
    shift: timedelta = NO_SHIFT,
) -> int:
    """The level for escalate.json that makes the next attempt use the next rung.

    Raises EscalationError ("Already at maximum escalation level", or why
    there is nothing to escalate).
    """
    rc = check.rc
    if rc in (OK, DEPEND, NOTYET) or rc < 0 or rc > MAX_RETURN_CODE:
        raise EscalationError(f"nothing to escalate: the check is {code_name(rc)}")
    matching = [r for r in plan.rules if r.on is None or rc in r.on]
    if not matching:
        raise EscalationError(f"no rule of plan {plan.name} matches {code_name(rc)}")
    rule = next((r for r in matching if check.consecutive >= r.after), matching[0])
    for using in rule.using:
        line = effective_line(schedules[using.schedule], now - shift, tz)
        if line is not None and not line.never:
            break
    else:
        raise EscalationError(f"no alert schedule of plan {plan.name} is in effect")
    attempt = max(attempt_level(alert), escalate_to or 0) + 1
    starts = _rung_starts(using.tries, has_fix=has_fix)
    for (_, start), (_, next_start) in pairwise(starts):
        if start <= attempt < next_start:
            return next_start - 1
    raise EscalationError("Already at maximum escalation level")
