"""Build hosts, classes and groups, and select hosts by name for checks and dependencies.

Survivor's rule decides what is monitored: a host is monitored only when it is
in exactly one class, so a host in two classes is an error and a host in none
is silently left alone. A selection (a check's `hosts:`, a dependency's) names
groups, classes or hosts (in that order of precedence when a name is several
of them) or `all`; the result keeps only classed hosts, in the order written.
This module is on the hot path of a 100,000-service config, so selections are
cached per name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from survivor.config.build_alerts import schedules_defined
from survivor.config.fields import Context, Fields, check_reference, describe, place
from survivor.config.marked import MList, MMap
from survivor.model.config import (
    CheckDef,
    Dependency,
    Group,
    Host,
    HostClass,
    Mark,
)

HOST_KEYS = frozenset(("address", "vars"))
CLASS_KEYS = frozenset(("hosts", "schedule", "alertplan"))
GROUP_KEYS = frozenset(("classes", "alias"))
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


# --------------------------------------------------------------------------- hosts and classes


def hosts_and_classes(ctx: Context, out: Hosting) -> None:
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


def groups(ctx: Context, out: Hosting) -> None:
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


def selection(out: Hosting, name: str) -> tuple[str, ...] | None:
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
        found = selection(out, names[0][0])
        if found is not None:
            return found
    hosts: dict[str, None] = {}
    for name, line in names:
        found = selection(out, name)
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
