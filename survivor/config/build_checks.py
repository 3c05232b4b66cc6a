"""Build hosts, classes, groups and checks (dependencies are `build_deps`).

Survivor's rule decides what is monitored: a host is monitored only when it is
in exactly one class, so a host in two classes is an error and a host in none
is silently left alone. A check's `hosts:` names groups, classes or hosts (in
that order of precedence when a name is several of them) or `all`; the result
keeps only classed hosts, in the order written. This module is on the hot path
of a 100,000-service config, so selections are cached per name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from survivor.config import convert
from survivor.config.build_alerts import Alerting, schedules_defined
from survivor.config.fields import Context, Fields, check_reference, describe, place
from survivor.config.load import Entry
from survivor.config.yaml import MList, MMap
from survivor.model.config import (
    CheckDef,
    CheckKind,
    Dependency,
    Group,
    Host,
    HostClass,
    Mark,
    Schedule,
)
from survivor.model.names import is_safe_name

HOST_KEYS = frozenset(("address", "vars"))
CLASS_KEYS = frozenset(("hosts", "schedule", "alertplan"))
GROUP_KEYS = frozenset(("classes", "alias"))
CHECK_KEYS = frozenset(
    (
        "module",
        "plugin",
        "argv",
        "args",
        "required",
        "optional",
        "hosts",
        "schedule",
        "alertplan",
        "timeout",
        "retry",
        "fix",
    )
)
RESERVED = "all"
SHOWN_NAMES = 5


def name_list(names: list[str]) -> str:
    """`'a', 'b' and 3 more` for messages about many hosts."""
    shown = ", ".join(repr(n) for n in names[:SHOWN_NAMES])
    extra = len(names) - SHOWN_NAMES
    return f"{shown} and {extra} more" if extra > 0 else shown


@dataclass(slots=True)
class Hosting:
    """The built host and check sections, plus the lookups the builders share."""

    hosts: dict[str, Host] = field(default_factory=dict)
    classes: dict[str, HostClass] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    checks: dict[str, CheckDef] = field(default_factory=dict)
    dependencies: tuple[Dependency, ...] = ()
    classed: tuple[str, ...] = ()  # every monitored host, in order
    selections: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> classed hosts


def build_hosting(
    ctx: Context, schedules: dict[str, Schedule], alerting: Alerting, default_timeout: float
) -> Hosting:
    out = Hosting()
    _hosts_and_classes(ctx, out)
    _groups(ctx, out)
    _checks(ctx, out, default_timeout)
    _effective_schedules(ctx, out, schedules)
    return out


# --------------------------------------------------------------------------- hosts and classes


def _hosts_and_classes(ctx: Context, out: Hosting) -> None:
    attributes: dict[str, tuple[str, dict[str, Any], Mark]] = {}
    for name, entry in ctx.raw.sections["hosts"].items():
        if not ctx.safe_name(name, "host", entry.file, entry.line):
            continue
        address, variables = name, {}
        if entry.value is not None:
            f = ctx.fields(entry.value, f"host {name!r}", HOST_KEYS, entry.file, entry.line)
            if f is not None:
                address = f.text("address") or name
                if address.startswith("-") or any(c.isspace() for c in address):
                    f.bad("address", f"{address!r}: no spaces, and no leading '-' (argv safety)")
                variables = f.data("vars")
        attributes[name] = (address, variables, Mark(entry.file, entry.line))

    member_of: dict[str, tuple[str, str, int]] = {}  # host -> (class, file, line)
    alertplans = ctx.raw.sections["alertplans"]
    for name, entry in ctx.raw.sections["classes"].items():
        if not ctx.safe_name(name, "class", entry.file, entry.line):
            continue
        what = f"class {name!r}"
        if name == RESERVED:
            ctx.error(entry.file, entry.line, f"{what}: the name 'all' is reserved")
            continue
        f = ctx.fields(entry.value, what, CLASS_KEYS, entry.file, entry.line)
        if f is None:
            continue
        schedule = f.reference("schedule", "schedule", schedules_defined(ctx))
        alertplan = f.reference("alertplan", "alert plan", alertplans)
        members: list[str] = []
        for host, line in f.names("hosts", "host", required=True):
            first = member_of.get(host)
            if first is None:
                member_of[host] = (name, f.file, line)
                members.append(host)
            elif first[0] != name:
                ctx.error(
                    f.file,
                    line,
                    f"host {host!r} is in two classes: {first[0]!r} "
                    f"({place(first[1], first[2], f.file)}) "
                    f"and {name!r} (here); a host must be in exactly one class",
                )
        out.classes[name] = HostClass(name, tuple(members), schedule, alertplan, f.mark())

    for name, (address, variables, mark) in attributes.items():
        hostclass = member_of[name][0] if name in member_of else ""
        out.hosts[name] = Host(name, address, variables, hostclass, mark)
    for name, (hostclass, file, line) in member_of.items():
        if name not in out.hosts:
            out.hosts[name] = Host(name, name, {}, hostclass, Mark(file, line))
    out.classed = tuple(name for name, host in out.hosts.items() if host.hostclass)


# --------------------------------------------------------------------------- groups


def _groups(ctx: Context, out: Hosting) -> None:
    aliases: dict[str, tuple[str, Fields]] = {}
    for name, entry in ctx.raw.sections["groups"].items():
        if not ctx.safe_name(name, "group", entry.file, entry.line):
            continue
        what = f"group {name!r}"
        value = entry.value
        mark = Mark(entry.file, entry.line)
        if name == RESERVED:
            ctx.error(entry.file, entry.line, f"{what}: the name 'all' is reserved")
        elif isinstance(value, MList):
            out.groups[name] = Group(name, _listed_hosts(ctx, out, what, value), mark)
        elif isinstance(value, MMap):
            f = Fields(ctx, value, what, GROUP_KEYS, entry.line)
            if ("classes" in f) == ("alias" in f):
                ctx.error(entry.file, entry.line, f"{what}: give either classes: or alias:")
            elif "alias" in f:
                target = f.reference("alias", "group", ctx.raw.sections["groups"], required=True)
                if target is not None:
                    aliases[name] = (target, f)
            else:
                hosts: list[str] = []
                for class_name, line in f.names("classes", "class", required=True):
                    if check_reference(ctx, class_name, out.classes, "class", what, f.file, line):
                        hosts.extend(out.classes[class_name].hosts)
                out.groups[name] = Group(name, tuple(dict.fromkeys(hosts)), mark)
        else:
            ctx.error(
                entry.file,
                entry.line,
                f"{what}: expected a list of hosts, {{classes: [...]}} or {{alias: group}}, "
                f"got {describe(value)}",
            )
    for name, (_, f) in aliases.items():
        chain = [name]
        target = aliases[name][0]
        while target in aliases and target not in chain:
            chain.append(target)
            target = aliases[target][0]
        if target in chain:
            ctx.error(f.file, f.line("alias"), f"{f.what}: alias loop {' -> '.join(chain)}")
        elif target in out.groups:
            out.groups[name] = Group(name, out.groups[target].hosts, Mark(f.file, f.head))


def _listed_hosts(ctx: Context, out: Hosting, what: str, value: MList) -> tuple[str, ...]:
    hosts: dict[str, None] = {}
    for index, host in enumerate(value):
        line = value.item_line(index)
        if not ctx.safe_name(host, "host", value.file, line):
            continue
        if host in out.hosts:
            hosts[host] = None
            continue
        if host in out.classes or host in ctx.raw.sections["groups"]:
            kind = "class" if host in out.classes else "group"
            hint = f": use {{classes: [{host}]}}" if kind == "class" else ""
            ctx.error(value.file, line, f"{what}: {host!r} is a {kind}, not a host{hint}")
        else:
            ctx.error(
                value.file,
                line,
                f"{what}: host {host!r} is not defined (under hosts: or in a class)"
                f"{ctx.suggest(host, out.hosts)}",
            )
    return tuple(hosts)


# --------------------------------------------------------------------------- selections


def _selection(out: Hosting, name: str) -> tuple[str, ...] | None:
    """The classed hosts a selector name stands for, or None when it names nothing."""
    found = out.selections.get(name)
    if found is not None:
        return found
    hosts = out.hosts
    if name == RESERVED:
        found = out.classed
    elif name in out.groups:
        found = tuple(h for h in out.groups[name].hosts if hosts[h].hostclass)
    elif name in out.classes:
        found = out.classes[name].hosts
    elif name in hosts:
        found = (name,) if hosts[name].hostclass else ()
    else:
        return None
    out.selections[name] = found
    return found


def select_hosts(
    ctx: Context, out: Hosting, names: list[tuple[str, int]], what: str, file: str
) -> tuple[str, ...]:
    """Resolve group, class and host names (and `all`) to classed hosts, in order, once each."""
    if len(names) == 1:
        found = _selection(out, names[0][0])
        if found is not None:
            return found
    hosts: dict[str, None] = {}
    for name, line in names:
        found = _selection(out, name)
        if found is None:
            if name not in ctx.raw.sections["groups"] and name not in ctx.raw.sections["classes"]:
                choices = [*out.groups, *out.classes, *out.hosts]
                ctx.error(
                    file,
                    line,
                    f"{what}: {name!r} is not a group, class or host{ctx.suggest(name, choices)}",
                )
            continue
        hosts.update(dict.fromkeys(found))
    return tuple(hosts)


# --------------------------------------------------------------------------- checks


def _plugin(f: Fields) -> str | None:
    """A plugin name in the plugin directories, or an absolute path used as is."""
    value = f.text("plugin")
    if value is None:
        return None
    if os.path.isabs(value):
        if ".." in value.split("/") or "\0" in value:
            f.bad("plugin", f"{value!r}: an absolute plugin path must not contain '..'")
            return None
        return value
    if not is_safe_name(value):
        f.ctx.safe_name(value, "plugin", f.file, f.line("plugin"))
        return None
    return value


def _argv(f: Fields) -> tuple[tuple[str, ...], dict[str, int]]:
    """The argv templates, and each `{vars.NAME}` they use with its line."""
    value = f.get("argv")
    if value is None:
        return (), {}
    if not isinstance(value, MList):
        f.bad("argv", f"expected a list of strings, got {describe(value)}")
        return (), {}
    argv: list[str] = []
    variables: dict[str, int] = {}
    for index, item in enumerate(value):
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            f.ctx.error(
                value.file,
                value.item_line(index),
                f"{f.what}: argv: expected a string, got {describe(item)}: quote it",
            )
            continue
        if "{" in item or "}" in item:
            try:
                fields = convert.template_fields(item)
            except ValueError as exc:
                f.ctx.error(value.file, value.item_line(index), f"{f.what}: argv: {exc}")
                continue
            for name in fields:
                if name.startswith("vars."):
                    variables.setdefault(name[5:], value.item_line(index))
        argv.append(item)
    return tuple(argv), variables


Components = dict[str, list[tuple[str, int]]]


def _checks(ctx: Context, out: Hosting, default_timeout: float) -> None:
    composites: list[tuple[CheckDef, Fields, Components]] = []
    for name, entry in ctx.raw.sections["checks"].items():
        if not is_safe_name(name):
            ctx.safe_name(name, "check", entry.file, entry.line)
            continue
        built = _check(ctx, out, name, entry, default_timeout)
        if built is None:
            continue
        check, f, components = built
        if components:
            composites.append(built)
        out.checks[name] = check
    for check, f, components in composites:
        _check_components(ctx, out, check, f, components)


def _check(
    ctx: Context, out: Hosting, name: str, entry: Entry, default_timeout: float
) -> tuple[CheckDef, Fields, Components] | None:
    """One check; on the hot path, so keys are tested on the mapping itself."""
    what = f"check {name!r}"
    m = entry.value
    if not isinstance(m, MMap):
        ctx.error(entry.file, entry.line, f"{what}: must be a mapping, not {describe(m)}")
        return None
    f = Fields(ctx, m, what, CHECK_KEYS, entry.line)
    composite = "required" in m or "optional" in m
    if ("module" in m) + ("plugin" in m) + composite != 1:
        ctx.error(
            entry.file,
            entry.line,
            f"{what}: give exactly one of module:, plugin: or required:/optional: (composite)",
        )
        return None
    argv: tuple[str, ...] = ()
    variables: dict[str, int] = {}
    if "argv" in m:
        if "plugin" not in m:
            f.bad("argv", "only a plugin: check takes argv (a module: check takes args:)")
        argv, variables = _argv(f)
    if "args" in m and "module" not in m:
        f.bad("args", "only a module: check takes args (a plugin: check takes argv:)")
    if composite:
        kind = CheckKind.COMPOSITE
    else:
        kind = CheckKind.MODULE if "module" in m else CheckKind.PLUGIN
    defined = ctx.raw.sections
    if "hosts" in m:
        selectors = f.names("hosts", "host selector")
        hosts = select_hosts(ctx, out, selectors, what, entry.file) if selectors else ()
    elif name in out.groups or name in out.classes:
        hosts = _selection(out, name) or ()
    else:
        if name not in defined["groups"]:
            ctx.error(
                entry.file, entry.line, f"{what}: no hosts: add hosts: or a group named {name!r}"
            )
        hosts = ()
    components: Components = {}
    if composite:
        components = {"required": f.names("required", "check")}
        components["optional"] = f.names("optional", "check")
    check = CheckDef(
        name=name,
        kind=kind,
        hosts=hosts,
        module=f.name("module", "check module") if "module" in m else None,
        plugin=_plugin(f) if "plugin" in m else None,
        argv=argv,
        args=f.data("args") if "args" in m else {},
        required=tuple(n for n, _ in components.get("required", ())),
        optional=tuple(n for n, _ in components.get("optional", ())),
        schedule=f.reference("schedule", "schedule", defined["schedules"]),
        alertplan=f.reference("alertplan", "alert plan", defined["alertplans"]),
        timeout=f.seconds("timeout", default_timeout),
        retry=f.duration("retry", None, minimum=timedelta(minutes=1), whole_minutes=True),
        fix=f.reference("fix", "fix", defined["fixes"]),
        mark=Mark(entry.file, entry.line),
    )
    if variables:
        _check_variables(ctx, out, check, variables, f)
    return check, f, components


def _check_variables(
    ctx: Context, out: Hosting, check: CheckDef, variables: dict[str, int], f: Fields
) -> None:
    for variable, line in variables.items():
        missing: list[str] = []
        unusable: list[str] = []
        for host_name in check.hosts:
            host_vars = out.hosts[host_name].vars
            if variable not in host_vars:
                missing.append(host_name)
            elif isinstance(host_vars[variable], dict | list) or host_vars[variable] is None:
                unusable.append(host_name)
        if missing:
            noun = "host" if len(missing) == 1 else "hosts"
            ctx.error(
                f.file,
                line,
                f"{f.what}: argv uses {{vars.{variable}}} but {noun} {name_list(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no vars.{variable}",
            )
        if unusable:
            ctx.error(
                f.file,
                line,
                f"{f.what}: argv uses {{vars.{variable}}} but on {name_list(unusable)} it is not "
                "a string or number",
            )


def _check_components(
    ctx: Context,
    out: Hosting,
    check: CheckDef,
    f: Fields,
    components: Components,
) -> None:
    seen: set[str] = set()
    for key, names in components.items():
        for component, line in names:
            where = f"{f.what}: {key}:"
            if component == check.name:
                ctx.error(f.file, line, f"{where} a composite check cannot contain itself")
            elif component in seen:
                ctx.error(f.file, line, f"{where} {component!r} is listed twice")
            elif component not in ctx.raw.sections["checks"]:
                suggestion = ctx.suggest(component, ctx.raw.sections["checks"])
                ctx.error(f.file, line, f"{where} check {component!r} is not defined{suggestion}")
            elif component in out.checks and out.checks[component].kind is CheckKind.COMPOSITE:
                ctx.error(f.file, line, f"{where} {component!r} is itself composite; no nesting")
            seen.add(component)
    if not seen and not any(f.get(key) for key in components):
        ctx.error(f.file, f.head, f"{f.what}: a composite check needs at least one component")


def _effective_schedules(ctx: Context, out: Hosting, schedules: dict[str, Schedule]) -> None:
    """Every monitored check@host needs the check's schedule or its class's."""
    for check in out.checks.values():
        if check.schedule is not None:
            continue
        unscheduled: dict[str, list[str]] = {}
        for host_name in check.hosts:
            hostclass = out.hosts[host_name].hostclass
            if out.classes[hostclass].schedule is None:
                unscheduled.setdefault(hostclass, []).append(host_name)
        for hostclass, hosts in unscheduled.items():
            noun = "host" if len(hosts) == 1 else "hosts"
            ctx.error(
                check.mark.file,
                check.mark.line,
                f"check {check.name!r} has no schedule on {noun} {name_list(hosts)}: "
                f"give the check a schedule: or class {hostclass!r} a schedule:",
            )
