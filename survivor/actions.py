"""Operator actions: ack, unack, inhibit, uninhibit, escalate, reschedule, fix, call lists.

Plain functions over an `Operator` (config, state, history, the real user),
so the CLI is a thin shell and tests call them directly. Preconditions are
Survivor's (reference §6.1); a refused action raises `OpError` naming the
host/check and the state that stands in the way, and changes nothing.

Every change is made under the pair's entity lock (the same lock the daemon
takes to write alert state) and recorded in the pair's command history with
the Unix user running the command (never a name given on the command line)
and the comment, "(no reason given)" by default.

Decisions that differ from Survivor 1.0, and why:

* `reschedule` is recorded in the command history too: DESIGN.md §7 lists it
  among the recorded operator actions, and a history that explains why a
  check ran off-schedule is worth one line.
* `ack` writes no alert.json. Survivor wrote an alert status holding the
  current code so an ack placed before the first alert was not taken for a
  stale one; here the ack itself carries the code (`about_rc`), which is what
  `alertplan.decide()` compares when there is no alert state, and alert.json
  stays owned by the daemon, which keeps it in memory.
* `inhibit` on an inhibited pair replaces the inhibition (and says so), so a
  maintenance window can be extended or shortened without a gap.
* A new call-list substitution for a person replaces that person's earlier
  one, so a mistaken substitution is corrected by giving the right one.
"""

from __future__ import annotations

import os
import pwd
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from survivor import alertplan
from survivor.alertplan import EscalationError
from survivor.alerts.fixes import FixOutcome, FixRunner
from survivor.calllist import resolution, state_name, with_substitution
from survivor.clock import local_zone, utc_iso
from survivor.errors import SurvivorError
from survivor.model.codes import ReturnCode, code_name, is_failing
from survivor.model.config import CallList, CheckDef, Config, Host
from survivor.model.documents import (
    Ack,
    AlertState,
    CheckState,
    CheckView,
    Escalation,
    Inhibit,
    Request,
    Substitution,
)
from survivor.store.fsio import read_pid
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.timespec import _shown

DEFAULT_COMMENT = "(no reason given)"


class OpError(SurvivorError):
    """An operator action was refused; the message says which pair and what stands in the way."""


def current_user() -> str:
    """The Unix user running this process: who is recorded in the command history."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


@dataclass(frozen=True, slots=True)
class Operator:
    """Who acts, and on which instance."""

    config: Config
    state: StateStore
    history: HistoryStore
    user: str

    @property
    def tz(self) -> tzinfo:
        return local_zone(self.config.instance.timezone)


# --------------------------------------------------------------------------- pair plumbing


def pair(config: Config, host: str, check: str) -> tuple[CheckDef, Host]:
    """The configured check and host, or OpError saying which is not configured."""
    checkdef = config.checks.get(check)
    if checkdef is None:
        raise OpError(f"no check named {check!r} in {config.path}")
    hostdef = config.hosts.get(host)
    if hostdef is None:
        raise OpError(f"no host named {host!r} in {config.path}")
    if host not in checkdef.host_set:
        shown = ", ".join(checkdef.hosts[:8]) + (", ..." if len(checkdef.hosts) > 8 else "")
        raise OpError(f"check {check} does not run on host {host} (it runs on: {shown or 'none'})")
    return checkdef, hostdef


def _label(host: str, check: str) -> str:
    return f"{host}/{check}"


def _read_check(op: Operator, host: str, check: str) -> CheckState | None:
    return op.state.read_check(host, check)


def _read_ack(op: Operator, host: str, check: str) -> Ack | None:
    doc = op.state.read_pair_doc(host, check, "ack")
    return None if doc is None else Ack.from_dict(doc)


def _read_inhibit(op: Operator, host: str, check: str) -> Inhibit | None:
    doc = op.state.read_pair_doc(host, check, "inhibit")
    return None if doc is None else Inhibit.from_dict(doc)


def _failing(st: CheckState | None) -> bool:
    return st is not None and is_failing(st.rc)


def _require_failing(st: CheckState | None, host: str, check: str, verb: str) -> CheckState:
    if st is None:
        raise OpError(f"{_label(host, check)} has no result yet; nothing to {verb}")
    if not is_failing(st.rc):
        why = {
            ReturnCode.OK: "is OK",
            ReturnCode.NOTYET: "has no result yet (NOTYET)",
            ReturnCode.DEPEND: "is DEPEND (skipped because a dependency is failing)",
        }[ReturnCode(st.rc)]
        raise OpError(f"{_label(host, check)} {why}; nothing to {verb}")
    return st


def _record(
    op: Operator, host: str, check: str, command: str, comment: str, now: datetime, **extra: Any
) -> None:
    record = {"user": op.user, "command": command, "comment": comment, **extra}
    op.history.append(host, check, "command", now, record)


def _comment(comment: str | None) -> str:
    text = (comment or "").strip()
    return text or DEFAULT_COMMENT


def daemon_running(state: StateStore) -> bool:
    return read_pid(state.layout.pidfile) is not None


def request_reschedule(op: Operator, host: str, check: str, comment: str, now: datetime) -> Path:
    """Ask the daemon to run check@host at once (it applies requests within seconds)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    request = Request(
        id=f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        action="reschedule",
        user=op.user,
        at=now,
        host=host,
        check=check,
        comment=comment,
    )
    return op.state.submit_request(request)


def _when_daemon(op: Operator) -> str:
    if daemon_running(op.state):
        return "the daemon runs it within seconds"
    return "the daemon is not running; it runs the check when it starts"


# --------------------------------------------------------------------------- ack / unack


def ack(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Silence the current problem until its code changes (or it is unacknowledged)."""
    checkdef, hostdef = pair(op.config, host, check)
    text = _comment(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        st = _require_failing(_read_check(op, host, check), host, check, "acknowledge")
        inhibit = _read_inhibit(op, host, check)
        if inhibit is not None and inhibit.active(now):
            raise OpError(
                f"{_label(host, check)} is inhibited by {inhibit.user} since "
                f"{_shown(inhibit.at, op.tz)}, so it sends no alerts and there is nothing to "
                "acknowledge"
            )
        old = _read_ack(op, host, check)
        if old is not None and _ack_holds(op.config, checkdef, hostdef, old, st.rc):
            raise OpError(
                f"{_label(host, check)} is already acknowledged by {old.user} at "
                f"{_shown(old.at, op.tz)}: {old.comment}"
            )
        new = Ack(user=op.user, comment=text, at=now, about_rc=st.rc)
        op.state.write_pair_doc(host, check, "ack", new.to_dict())
        _record(op, host, check, "ack", text, now, rc=st.rc, code=code_name(st.rc))
    since = "" if st.since is None else f" since {_shown(st.since, op.tz)}"
    return f"acknowledged {_label(host, check)} ({code_name(st.rc)}{since}): {text}"


def _ack_holds(config: Config, checkdef: CheckDef, hostdef: Host, old: Ack, rc: int) -> bool:
    """Whether an existing ack still covers code `rc` (the plan may keep state across codes)."""
    if old.about_rc == rc:
        return True
    plan = config.alertplan_for(checkdef, hostdef)
    return plan is not None and alertplan.keeps_state(plan, config.returngroups, old.about_rc, rc)


def unack(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Remove the acknowledgement and re-run the check, so alerts resume on a fresh result."""
    pair(op.config, host, check)
    text = _comment(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = _read_ack(op, host, check)
        if old is None:
            raise OpError(f"{_label(host, check)} is not acknowledged")
        # Reschedule before the ack goes, as Survivor does: the alert scheduler
        # should meet a fresh result rather than alert on the old one.
        request_reschedule(op, host, check, text, now)
        op.state.remove_pair_doc(host, check, "ack")
        _record(op, host, check, "unack", text, now, was=old.user)
    return f"unacknowledged {_label(host, check)} (was by {old.user}); rescheduled: {text}"


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
    text = _comment(comment)
    if until is not None and until <= now:
        raise OpError(
            f"inhibit {_label(host, check)}: the end {utc_iso(until)} is not in the future"
        )
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = _read_inhibit(op, host, check)
        new = Inhibit(user=op.user, comment=text, at=now, until=until)
        op.state.write_pair_doc(host, check, "inhibit", new.to_dict())
        _record(
            op, host, check, "inhibit", text, now, until=None if until is None else utc_iso(until)
        )
    tail = " until uninhibited" if until is None else f" until {_shown(until, op.tz)}"
    if old is not None and old.active(now):
        tail += f" (replaces the inhibition by {old.user})"
    return f"inhibited {_label(host, check)}{tail}: {text}"


def uninhibit(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Remove the inhibition and re-run the check, so alerting resumes on a fresh result."""
    pair(op.config, host, check)
    text = _comment(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        old = _read_inhibit(op, host, check)
        if old is None:
            raise OpError(f"{_label(host, check)} is not inhibited")
        request_reschedule(op, host, check, text, now)
        op.state.remove_pair_doc(host, check, "inhibit")
        _record(op, host, check, "uninhibit", text, now, was=old.user)
    expired = "" if old.active(now) else " (it had expired)"
    return f"uninhibited {_label(host, check)} (was by {old.user}){expired}; rescheduled: {text}"


# --------------------------------------------------------------------------- escalate


def escalate(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Make the next alert use the next rung of the plan's escalation ladder."""
    checkdef, hostdef = pair(op.config, host, check)
    config = op.config
    plan = config.alertplan_for(checkdef, hostdef)
    if plan is None:
        raise OpError(f"{_label(host, check)} has no alert plan; there is nothing to escalate")
    text = _comment(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        st = _require_failing(_read_check(op, host, check), host, check, "escalate")
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
            raise OpError(f"cannot escalate {_label(host, check)}: {err}") from err
        new = Escalation(user=op.user, comment=text, at=now, level=level)
        op.state.write_pair_doc(host, check, "escalate", new.to_dict())
        _record(op, host, check, "escalate", text, now, level=level)
        quiet = _quiet_note(op, host, check, now)
    return (
        f"escalated {_label(host, check)}: the next alert counts as attempt {level + 1}"
        f"{quiet}: {text}"
    )


def _quiet_note(op: Operator, host: str, check: str, now: datetime) -> str:
    inh = _read_inhibit(op, host, check)
    if inh is not None and inh.active(now):
        return f" (but it is inhibited by {inh.user}: nothing is sent until uninhibited)"
    old = _read_ack(op, host, check)
    if old is not None:
        return f" (but it is acknowledged by {old.user}: nothing is sent until unacknowledged)"
    return ""


# --------------------------------------------------------------------------- reschedule


def reschedule(op: Operator, host: str, check: str, *, comment: str | None, now: datetime) -> str:
    """Run check@host at once; its result updates state and history as any other."""
    pair(op.config, host, check)
    text = _comment(comment)
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        request_reschedule(op, host, check, text, now)
        _record(op, host, check, "reschedule", text, now)
    return f"rescheduled {_label(host, check)}: {_when_daemon(op)}"


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
    text = _comment(comment)
    outcome = runner.run(op.config, check, host, initiated_by=op.user)
    now = outcome.started
    rescheduled = False
    with op.state.locks.hold(op.state.pair_dir(host, check)):
        if outcome.ok and _failing(_read_check(op, host, check)):
            request_reschedule(op, host, check, f"after fix {checkdef.fix}", now)
            rescheduled = True
        extra: dict[str, Any] = {"fix": checkdef.fix, "rc": outcome.rc, "code": outcome.code}
        if outcome.locked_out:
            extra["locked_out"] = True
        _record(op, host, check, "fix", text, now, **extra)
    what = f"fix {checkdef.fix} on {_label(host, check)}"
    if outcome.locked_out:
        message = f"{what} not run: {outcome.comment}"
    else:
        message = f"{what}: {outcome.code}: {outcome.comment} ({outcome.duration_ms} ms)"
        if rescheduled:
            message += "; check rescheduled to confirm"
    return FixDone(outcome, rescheduled, message)


# --------------------------------------------------------------------------- call lists


def calllist_def(config: Config, name: str) -> tuple[CallList, CallList | None]:
    """The list and, for an alias, the list it aliases; OpError for an unknown name."""
    cl = config.calllists.get(name)
    if cl is None:
        known = ", ".join(sorted(config.calllists)) or "none are defined"
        raise OpError(f"no call list named {name!r} (call lists: {known})")
    target = config.calllists.get(cl.alias_of) if cl.alias_of else None
    return cl, target


def show_calllist(config: Config, state: StateStore, name: str, *, now: datetime) -> dict[str, Any]:
    """Everything about one call list, as plain data: who gets an alert now, and why.

    Reads only: the rotation and round robin are computed for `now` but not
    stored (the daemon advances the list when it actually alerts).
    """
    cl, target = calllist_def(config, name)
    shape = target or cl
    tz = local_zone(config.instance.timezone)
    stored = state.read_calllist(state_name(cl))
    res = resolution(
        cl,
        stored,
        config.people,
        config.alerts,
        rotation_schedule=config.schedules.get(shape.rotate or ""),
        tz=tz,
        now=now,
        target=target,
    )
    kind = "broadcast" if shape.broadcast else "rotating" if shape.rotate else "simple"
    substitutions = [] if stored is None else list(stored.substitutions)
    last_rotation = None if stored is None else stored.last_rotation
    return {
        "name": cl.name,
        "kind": kind,
        "alias_of": cl.alias_of,
        "via": cl.via,
        "rotate": shape.rotate,
        "members": list(shape.members),
        "state_file": str(state.layout.calllist(state_name(cl))),
        "on_call": res.state.on_call if kind == "rotating" else None,
        "last_rotation": None if last_rotation is None else utc_iso(last_rotation),
        "rotations_due": res.rotated,  # rotation times passed since the state was stored
        "last_notified": None if stored is None else stored.last_notified,
        "recipients_now": [r.to_dict() for r in res.recipients],
        "substitutions": [{**s.to_dict(), "active": s.active(now)} for s in substitutions],
        "skipped": list(res.skipped),
    }


def substitute(
    op: Operator,
    name: str,
    person: str,
    *,
    for_person: str,
    until: datetime,
    comment: str | None,
    now: datetime,
) -> str:
    """Let `person` take `for_person`'s place on the list until `until`."""
    cl, target = calllist_def(op.config, name)
    text = _comment(comment)
    sub = Substitution(person=person, for_person=for_person, until=until, by=op.user, at=now)
    with op.state.locks.hold(op.state.layout.calllists):  # the daemon takes the same lock
        old = op.state.read_calllist(state_name(cl))
        subs = () if old is None else old.substitutions
        replaced = [s for s in subs if s.for_person == for_person]
        kept = tuple(s for s in subs if s.for_person != for_person)
        base = None if old is None else replace(old, substitutions=kept)
        new = with_substitution(base, sub, cl, op.config.people, now=now, target=target)
        op.state.write_calllist(state_name(cl), new)
        op.history.append_calllist(
            state_name(cl),
            now,
            {
                "event": "substitute",
                "user": op.user,
                "calllist": cl.name,
                "person": person,
                "for": for_person,
                "until": utc_iso(until),
                "comment": text,
                "replaced": [s.to_dict() for s in replaced],
            },
        )
    message = f"call list {cl.name}: {person} replaces {for_person} until {_shown(until, op.tz)}"
    active = [s for s in replaced if s.active(now)]
    if active:
        message += f" (replaces {', '.join(s.person for s in active)})"
    return f"{message}: {text}"
