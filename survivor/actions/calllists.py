"""Call lists for operators: what a list says now (`calllist show`) and substitutions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from survivor.actions.operator import Operator, OpError, comment_or_default
from survivor.calllist import resolution, state_name, with_substitution
from survivor.clock import local_zone, utc_iso
from survivor.model.config import CallList, Config
from survivor.model.documents import (
    Substitution,
)
from survivor.store.state import StateStore
from survivor.timespec import _shown

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
    text = comment_or_default(comment)
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
