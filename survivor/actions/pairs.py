"""The actions on one check@host: ack, unack, inhibit, uninhibit, escalate, reschedule, fix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from survivor import alertplan
from survivor.actions.operator import (
    Operator,
    OpError,
    comment_or_default,
    failing,
    label,
    pair,
    read_ack,
    read_check,
    read_inhibit,
    record_command,
    request_reschedule,
    require_failing,
    when_daemon,
)
from survivor.alertplan import EscalationError
from survivor.alerts.fixes import FixOutcome, FixRunner
from survivor.clock import utc_iso
from survivor.model.codes import code_name
from survivor.model.config import CheckDef, Config, Host
from survivor.model.documents import (
    Ack,
    AlertState,
    CheckView,
    Escalation,
    Inhibit,
)
from survivor.timespec import _shown

# --------------------------------------------------------------------------- ack / unack


def ack(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Silence the current problem until its code changes (or it is unacknowledged)."""
    checkdef, hostdef = pair(op.config, host, check)
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        st = require_failing(read_check(op, host, check), host, check, "acknowledge")
        inhibit = read_inhibit(op, host, check)
        if inhibit is not None and inhibit.active(now):
            raise OpError(
                f"{label(host, check)} is inhibited by {inhibit.user} since "
                f"{_shown(inhibit.at, op.tz)}, so it sends no alerts and there is nothing to "
                "acknowledge"
            )
        old = read_ack(op, host, check)
        if old is not None and _ack_holds(op.config, checkdef, hostdef, old, st.rc):
            raise OpError(
                f"{label(host, check)} is already acknowledged by {old.user} at "
                f"{_shown(old.at, op.tz)}: {old.comment}"
            )
        new = Ack(user=op.user, comment=text, at=now, about_rc=st.rc)
        op.state.write_pair_doc(host, check, "ack", new.to_dict())
        record_command(op, host, check, "ack", text, now, rc=st.rc, code=code_name(st.rc))
    since = "" if st.since is None else f" since {_shown(st.since, op.tz)}"
    return f"acknowledged {label(host, check)} ({code_name(st.rc)}{since}): {text}"


def _ack_holds(config: Config, checkdef: CheckDef, hostdef: Host, old: Ack, rc: int) -> bool:
    """Whether an existing ack still covers code `rc` (the plan may keep state across codes)."""
    if old.about_rc == rc:
        return True
    plan = config.alertplan_for(checkdef, hostdef)
    return plan is not None and alertplan.keeps_state(plan, config.returngroups, old.about_rc, rc)


def unack(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Remove the acknowledgement and re-run the check, so alerts resume on a fresh result."""
    pair(op.config, host, check)
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = read_ack(op, host, check)
        if old is None:
            raise OpError(f"{label(host, check)} is not acknowledged")
        # Reschedule before the ack goes, as Survivor does: the alert scheduler
        # should meet a fresh result rather than alert on the old one.
        request_reschedule(op, host, check, text, now)
        op.state.remove_pair_doc(host, check, "ack")
        record_command(op, host, check, "unack", text, now, was=old.user)
    return f"unacknowledged {label(host, check)} (was by {old.user}); rescheduled: {text}"


# --------------------------------------------------------------------------- inhibit


def inhibit(
    op: Operator,
    host: str,
    check: str,
    *,
    comment: str | None,
    until: datetime | None,
    now: datetime,
) -> str:
    """Silence every notification of the pair, whatever its status, until removed or `until`."""
    pair(op.config, host, check)
    text = comment_or_default(comment)
    if until is not None and until <= now:
        raise OpError(
            f"inhibit {label(host, check)}: the end {utc_iso(until)} is not in the future"
        )
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = read_inhibit(op, host, check)
        new = Inhibit(user=op.user, comment=text, at=now, until=until)
        op.state.write_pair_doc(host, check, "inhibit", new.to_dict())
        record_command(
            op, host, check, "inhibit", text, now, until=None if until is None else utc_iso(until)
        )
    tail = " until uninhibited" if until is None else f" until {_shown(until, op.tz)}"
    if old is not None and old.active(now):
        tail += f" (replaces the inhibition by {old.user})"
    return f"inhibited {label(host, check)}{tail}: {text}"


def uninhibit(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Remove the inhibition and re-run the check, so alerting resumes on a fresh result."""
    pair(op.config, host, check)
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = read_inhibit(op, host, check)
        if old is None:
            raise OpError(f"{label(host, check)} is not inhibited")
        request_reschedule(op, host, check, text, now)
        op.state.remove_pair_doc(host, check, "inhibit")
        record_command(op, host, check, "uninhibit", text, now, was=old.user)
    expired = "" if old.active(now) else " (it had expired)"
    return f"uninhibited {label(host, check)} (was by {old.user}){expired}; rescheduled: {text}"


# --------------------------------------------------------------------------- escalate


def escalate(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Make the next alert use the next rung of the plan's escalation ladder."""
    checkdef, hostdef = pair(op.config, host, check)
    config = op.config
    plan = config.alertplan_for(checkdef, hostdef)
    if plan is None:
        raise OpError(f"{label(host, check)} has no alert plan; there is nothing to escalate")
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        st = require_failing(read_check(op, host, check), host, check, "escalate")
        assert st.since is not None
        view = CheckView(st.rc, st.consecutive, st.since, st.last_start, st.comment)
        alert_doc = op.state.read_pair_doc(host, check, "alert")
        alert = None if alert_doc is None else AlertState.from_dict(alert_doc)
        esc_doc = op.state.read_pair_doc(host, check, "escalate")
        current = None if esc_doc is None else Escalation.from_dict(esc_doc).level
        try:
            level = alertplan.next_escalation(
                plan,
                view,
                alert,
                escalate_to=current,
                schedules=config.schedules,
                tz=op.tz,
                now=now,
                has_fix=checkdef.fix is not None and checkdef.fix in config.fixes,
                shift=config.instance.alert_shift,
            )
        except EscalationError as err:
            raise OpError(f"cannot escalate {label(host, check)}: {err}") from err
        new = Escalation(user=op.user, comment=text, at=now, level=level)
        op.state.write_pair_doc(host, check, "escalate", new.to_dict())
        record_command(op, host, check, "escalate", text, now, level=level)
        quiet = _quiet_note(op, host, check, now)
    return (
        f"escalated {label(host, check)}: the next alert counts as attempt {level + 1}"
        f"{quiet}: {text}"
    )


def _quiet_note(op: Operator, host: str, check: str, now: datetime) -> str:
    inh = read_inhibit(op, host, check)
    if inh is not None and inh.active(now):
        return f" (but it is inhibited by {inh.user}: nothing is sent until uninhibited)"
    old = read_ack(op, host, check)
    if old is not None:
        return f" (but it is acknowledged by {old.user}: nothing is sent until unacknowledged)"
    return ""


# --------------------------------------------------------------------------- reschedule


def reschedule(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Run check@host at once; its result updates state and history as any other."""
    pair(op.config, host, check)
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        request_reschedule(op, host, check, text, now)
        record_command(op, host, check, "reschedule", text, now)
    return f"rescheduled {label(host, check)}: {when_daemon(op)}"


# --------------------------------------------------------------------------- fix


@dataclass(frozen=True, slots=True)
class FixDone:
    outcome: FixOutcome
    rescheduled: bool
    message: str


def fix(op: Operator, host: str, check: str, *, comment: str | None, runner: FixRunner) -> FixDone:
    """Run the check's fix now, whatever its status, ack or inhibition (Survivor's `sc fix`).

    On success while the check is failing, the check is rescheduled so the
    next result shows whether the fix worked.
    """
    checkdef, _ = pair(op.config, host, check)
    if checkdef.fix is None or checkdef.fix not in op.config.fixes:
        raise OpError(
            f"check {check} has no fix defined (add `fix: NAME` to the check and define NAME "
            "under fixes:)"
        )
    text = comment_or_default(comment)
    outcome = runner.run(op.config, check, host, initiated_by=op.user)
    now = outcome.started
    rescheduled = False
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        if outcome.ok and failing(read_check(op, host, check)):
            request_reschedule(op, host, check, f"after fix {checkdef.fix}", now)
            rescheduled = True
        extra: dict[str, Any] = {"fix": checkdef.fix, "rc": outcome.rc, "code": outcome.code}
        if outcome.locked_out:
            extra["locked_out"] = True
        record_command(op, host, check, "fix", text, now, **extra)
    what = f"fix {checkdef.fix} on {label(host, check)}"
    if outcome.locked_out:
        message = f"{what} not run: {outcome.comment}"
    else:
        message = f"{what}: {outcome.code}: {outcome.comment} ({outcome.duration_ms} ms)"
        if rescheduled:
            message += "; check rescheduled to confirm"
    return FixDone(outcome, rescheduled, message)
