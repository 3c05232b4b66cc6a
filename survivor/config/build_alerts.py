"""Build the alerting sections: return groups, alert methods, people, call lists,
alert plans and fixes.

They only refer to each other and to schedules, so they are built before hosts
and checks, which refer to alert plans and fixes by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from survivor.config import convert
from survivor.config.fields import Context, Fields, check_reference, describe
from survivor.config.marked import MList, MMap
from survivor.model.config import (
    AlertMethod,
    AlertPlan,
    AlertRule,
    AlertTry,
    AlertUsing,
    CallList,
    FixDef,
    LockScope,
    Mark,
    Person,
    Schedule,
)

METHOD_KEYS = frozenset(("format", "transmit", "args"))
CALLLIST_KEYS = frozenset(("members", "via", "broadcast", "rotate", "alias"))
ALIAS_KEYS = frozenset(("alias", "via"))
PLAN_KEYS = frozenset(
    ("rules", "notify_on_clear", "recovery_after", "keep_state_on", "clear_honors_returngroups")
)
RULE_KEYS = frozenset(("on", "after", "using"))
USING_KEYS = frozenset(("schedule", "tries"))
TRY_KEYS = frozenset(("times", "alert", "fix", "tell", "escalated", "allow_failed_hosts", "during"))
CLEAR_KEYS = frozenset(("schedule",))
FIX_KEYS = frozenset(("module", "args", "lock", "lock_expire", "timeout"))
LOCK_WORDS = {
    "host": LockScope.HOST,
    "check": LockScope.CHECK,
    "service": LockScope.CHECK,  # Survivor's word
    "check@host": LockScope.CHECK_AT_HOST,
    "service@host": LockScope.CHECK_AT_HOST,
}


@dataclass(slots=True)
class Alerting:
    """The built alerting sections, by name."""

    returngroups: dict[str, frozenset[int]] = field(default_factory=dict)
    methods: dict[str, AlertMethod] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    calllists: dict[str, CallList] = field(default_factory=dict)
    alertplans: dict[str, AlertPlan] = field(default_factory=dict)
    fixes: dict[str, FixDef] = field(default_factory=dict)


def build_alerting(
    ctx: Context, schedules: dict[str, Schedule], default_timeout: float
) -> Alerting:
    out = Alerting()
    _returngroups(ctx, out)
    _methods(ctx, out)
    _people(ctx, out)
    _calllists(ctx, out, schedules)
    _alertplans(ctx, out, schedules)
    _fixes(ctx, out, default_timeout)
    return out


def schedules_defined(ctx: Context) -> dict[str, Any]:
    """Names of schedules as written: a broken one is reported once, not at every use."""
    return ctx.raw.sections["schedules"]


def _definitions(ctx: Context, section: str, kind: str) -> list[tuple[str, Any, str, int]]:
    """(name, value, file, line) for each definition whose name is safe."""
    found = []
    for name, entry in ctx.raw.sections[section].items():
        if ctx.safe_name(name, kind, entry.file, entry.line):
            found.append((name, entry.value, entry.file, entry.line))
    return found


def _returngroups(ctx: Context, out: Alerting) -> None:
    for name, value, file, line in _definitions(ctx, "returngroups", "return group"):
        if name == "default":
            ctx.error(file, line, "return group name 'default' is reserved (on: default)")
            continue
        try:
            out.returngroups[name] = convert.return_codes(value)
        except ValueError as exc:
            ctx.error(file, line, f"return group {name!r}: {exc}")


def _methods(ctx: Context, out: Alerting) -> None:
    for name, value, file, line in _definitions(ctx, "alerts", "alert method"):
        f = ctx.fields(value, f"alert method {name!r}", METHOD_KEYS, file, line)
        if f is None:
            continue
        fmt = f.name("format", "format module", required=True)
        transmit = f.name("transmit", "transmit module", required=True)
        args = f.data("args")
        if fmt is not None and transmit is not None:
            out.methods[name] = AlertMethod(name, fmt, transmit, args, Mark(file, line))


def _people(ctx: Context, out: Alerting) -> None:
    for name, value, file, line in _definitions(ctx, "people", "person"):
        what = f"person {name!r}"
        if not isinstance(value, MMap) or not value:
            ctx.error(file, line, f"{what}: must map alert methods to addresses")
            continue
        addresses: dict[str, str] = {}
        otherwise = None
        for method, address in value.items():
            if not isinstance(address, str) or not address:
                hint = ": quote it" if isinstance(address, int | float) else ""
                ctx.error(
                    file,
                    value.value_line(method),
                    f"{what}: {method}: expected an address, got {describe(address)}{hint}",
                )
            elif method == "otherwise":
                otherwise = address
            elif method not in ctx.raw.sections["alerts"]:
                known = [*ctx.raw.sections["alerts"], "otherwise"]
                ctx.error(
                    file,
                    value.key_line(method),
                    f"{what}: {method!r} is not an alert method{ctx.suggest(method, known)}",
                )
            else:
                addresses[method] = address
        out.people[name] = Person(name, addresses, otherwise, Mark(file, line))


def _check_rotation(ctx: Context, f: Fields, schedule: Schedule) -> None:
    lines = schedule.lines
    if not any(line.at for line in lines) or any(line.every is not None for line in lines):
        f.bad(
            "rotate",
            f"schedule {schedule.name!r} must have at: lines (and no every:) to rotate a list",
        )


def _calllists(ctx: Context, out: Alerting, schedules: dict[str, Schedule]) -> None:
    aliases: dict[str, tuple[str, str, Fields]] = {}  # name -> (target, via, fields)
    defined = ctx.raw.sections["calllists"]
    methods = ctx.raw.sections["alerts"]
    for name, value, file, line in _definitions(ctx, "calllists", "call list"):
        what = f"call list {name!r}"
        is_alias = isinstance(value, MMap) and "alias" in value
        f = ctx.fields(value, what, ALIAS_KEYS if is_alias else CALLLIST_KEYS, file, line)
        if f is None:
            continue
        via = f.reference("via", "alert method", methods, required=True)
        if is_alias:
            target = f.reference("alias", "call list", defined, required=True)
            if target is not None and via is not None and via in methods:
                aliases[name] = (target, via, f)
            continue
        members = _members(ctx, f, out)
        broadcast = f.flag("broadcast")
        rotate = f.reference("rotate", "schedule", schedules_defined(ctx))
        if rotate is not None and rotate in schedules:
            _check_rotation(ctx, f, schedules[rotate])
        if broadcast and rotate is not None:
            ctx.error(file, line, f"{what}: broadcast: and rotate: exclude each other")
        if via is None or not members:
            continue
        calllist = CallList(name, members, via, broadcast, rotate, None, Mark(file, line))
        if via in methods:
            _check_addresses(ctx, calllist, out, f)
        out.calllists[name] = calllist
    for name, (_, via, f) in aliases.items():
        root = _alias_root(ctx, name, aliases, f)
        base = out.calllists.get(root) if root is not None else None
        if base is None:
            continue
        calllist = CallList(name, base.members, via, base.broadcast, base.rotate, root, f.mark())
        _check_addresses(ctx, calllist, out, f)
        out.calllists[name] = calllist


def _members(ctx: Context, f: Fields, out: Alerting) -> tuple[str, ...]:
    members: list[str] = []
    for person, line in f.names("members", "person", required=True):
        if person in members:
            ctx.error(f.file, line, f"{f.what}: members: {person!r} is listed twice")
        elif check_reference(
            ctx, person, ctx.raw.sections["people"], "person", f.what, f.file, line
        ):
            members.append(person)
    if "members" in f and not f.get("members"):
        f.bad("members", "the list is empty")
    return tuple(members)


def _alias_root(
    ctx: Context, name: str, aliases: dict[str, tuple[str, str, Fields]], f: Fields
) -> str | None:
    chain = [name]
    current = aliases[name][0]
    while current in aliases:
        if current in chain:
            ctx.error(f.file, f.line("alias"), f"{f.what}: alias loop {' -> '.join(chain)}")
            return None
        chain.append(current)
        current = aliases[current][0]
    return current


def _check_addresses(ctx: Context, calllist: CallList, out: Alerting, f: Fields) -> None:
    for member in calllist.members:
        person = out.people.get(member)
        if person is not None and person.address_for(calllist.via) is None:
            ctx.error(
                f.file,
                f.line("via") if "via" in f else f.head,
                f"call list {calllist.name!r}: person {member!r} has no address for "
                f"{calllist.via!r} (add {calllist.via}: or otherwise: to the person)",
            )


# --------------------------------------------------------------------------- alert plans


def _alertplans(ctx: Context, out: Alerting, schedules: dict[str, Schedule]) -> None:
    for name, value, file, line in _definitions(ctx, "alertplans", "alert plan"):
        what = f"alert plan {name!r}"
        f = ctx.fields(value, what, PLAN_KEYS, file, line)
        if f is None:
            continue
        before = len(ctx.problems)
        rules = _rules(ctx, f, out, schedules)
        notify, clear_schedule = _notify_on_clear(ctx, f, schedules)
        keep: frozenset[int] = frozenset()
        if "keep_state_on" in f:
            try:
                keep = convert.return_codes(f.get("keep_state_on"))
            except ValueError as exc:
                f.bad("keep_state_on", str(exc))
        honors = []
        for group, group_line in f.names("clear_honors_returngroups", "return group"):
            if check_reference(
                ctx, group, ctx.raw.sections["returngroups"], "return group", what, file, group_line
            ):
                honors.append(group)
        if len(ctx.problems) == before:
            out.alertplans[name] = AlertPlan(
                name=name,
                rules=rules,
                notify_on_clear=notify,
                clear_schedule=clear_schedule,
                recovery_after=f.integer("recovery_after", 1, 1),
                keep_state_on=keep,
                clear_honors_returngroups=tuple(honors),
                mark=Mark(file, line),
            )


def _notify_on_clear(
    ctx: Context, f: Fields, schedules: dict[str, Schedule]
) -> tuple[bool, str | None]:
    value = f.get("notify_on_clear")
    if isinstance(value, MMap):
        clear = ctx.fields(value, f"{f.what} notify_on_clear", CLEAR_KEYS, f.file, value.line)
        if clear is None:
            return True, None
        return True, clear.reference("schedule", "schedule", schedules_defined(ctx), required=True)
    return f.flag("notify_on_clear"), None


def _items(ctx: Context, f: Fields, key: str) -> list[tuple[Any, int]]:
    """The mappings of a required, non-empty list, each with its line."""
    value = f.get(key)
    if not isinstance(value, MList) or not value:
        if value is None:
            f.missing(key)
        else:
            f.bad(key, f"expected a non-empty list, got {describe(value)}")
        return []
    return [(item, value.item_line(index)) for index, item in enumerate(value)]


def _rules(
    ctx: Context, f: Fields, out: Alerting, schedules: dict[str, Schedule]
) -> tuple[AlertRule, ...]:
    rules = []
    for index, (value, line) in enumerate(_items(ctx, f, "rules")):
        what = f"{f.what} rule {index + 1}"
        rule = ctx.fields(value, what, RULE_KEYS, f.file, line)
        if rule is None:
            continue
        codes, label = _on(ctx, rule, out)
        using = []
        for u_index, (u_value, u_line) in enumerate(_items(ctx, rule, "using")):
            built = _using(
                ctx, u_value, f"{what} using {u_index + 1}", f.file, u_line, out, schedules
            )
            if built is not None:
                using.append(built)
        rules.append(
            AlertRule(codes, label, rule.integer("after", 1, 1), tuple(using), Mark(f.file, line))
        )
    return tuple(rules)


def _on(ctx: Context, rule: Fields, out: Alerting) -> tuple[frozenset[int] | None, str]:
    value = rule.get("on")
    if value is None:
        rule.missing("on", " (return codes, a return group or default)")
        return None, ""
    if value == "default":
        return None, "default"
    if isinstance(value, str):
        rule.reference("on", "return group", ctx.raw.sections["returngroups"])
        return out.returngroups.get(value), value
    try:
        codes = convert.return_codes(value)
    except ValueError as exc:
        rule.bad("on", str(exc))
        return None, ""
    label = str(value) if not isinstance(value, list) else f"[{', '.join(map(str, value))}]"
    return codes, label


def _using(
    ctx: Context,
    value: Any,
    what: str,
    file: str,
    line: int,
    out: Alerting,
    schedules: dict[str, Schedule],
) -> AlertUsing | None:
    f = ctx.fields(value, what, USING_KEYS, file, line)
    if f is None:
        return None
    schedule = f.reference("schedule", "schedule", schedules_defined(ctx), required=True)
    items = _items(ctx, f, "tries")
    tries = []
    for index, (item, item_line) in enumerate(items):
        built = _try(ctx, item, f"{what} try {index + 1}", file, item_line, out, schedules)
        if built is None:
            continue
        if built.times is None and index != len(items) - 1:
            ctx.error(
                file,
                item_line,
                f"{what} try {index + 1}: a try without times: is the catch-all and must be last",
            )
        tries.append(built)
    if schedule is None:
        return None
    return AlertUsing(schedule, tuple(tries), Mark(file, line))


def _try(
    ctx: Context,
    value: Any,
    what: str,
    file: str,
    line: int,
    out: Alerting,
    schedules: dict[str, Schedule],
) -> AlertTry | None:
    f = ctx.fields(value, what, TRY_KEYS, file, line)
    if f is None:
        return None
    times = None if "times" not in f else f.integer("times", 1, 1)
    lists = {}
    calllists = ctx.raw.sections["calllists"]
    for key in ("alert", "tell"):
        found = []
        for name, name_line in f.names(key, "call list"):
            if check_reference(ctx, name, calllists, "call list", what, file, name_line):
                found.append(name)
        lists[key] = tuple(found)
    fix = f.flag("fix")
    if not fix and "alert" not in f:
        ctx.error(file, line, f"{what}: does nothing: give alert: [lists] and/or fix: true")
    if "tell" in f and not fix:
        f.bad("tell", "tells the result of a fix: add fix: true")
    allow = f.integer("allow_failed_hosts", 0, 0)
    during = f.reference("during", "schedule", schedules_defined(ctx))
    if during is not None and allow == 0:
        f.bad("during", "applies only with allow_failed_hosts: N")
    return AlertTry(
        times=times,
        alert=lists["alert"],
        fix=fix,
        tell=lists["tell"],
        escalated=f.flag("escalated"),
        allow_failed_hosts=allow,
        during=during,
        mark=Mark(file, line),
    )


# --------------------------------------------------------------------------- fixes


def _fixes(ctx: Context, out: Alerting, default_timeout: float) -> None:
    for name, value, file, line in _definitions(ctx, "fixes", "fix"):
        f = ctx.fields(value, f"fix {name!r}", FIX_KEYS, file, line)
        if f is None:
            continue
        module = f.name("module", "fix module", required=True)
        lock = LockScope.CHECK_AT_HOST
        word = f.text("lock")
        if word is not None:
            if word in LOCK_WORDS:
                lock = LOCK_WORDS[word]
            else:
                f.bad("lock", f"{word!r} is not one of host, check, check@host")
        lock_expire = f.seconds("lock_expire", 120.0, minimum=timedelta(seconds=1))
        timeout = f.seconds("timeout", default_timeout)
        if module is not None:
            out.fixes[name] = FixDef(
                name, module, f.data("args"), lock, lock_expire, timeout, Mark(file, line)
            )
