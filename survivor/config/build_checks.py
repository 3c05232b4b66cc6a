"""Build the checks (hosts, classes and groups are `build_hosts`; dependencies `build_deps`).

Survivor's rule decides what is monitored: a host is monitored only when it is
in exactly one class, so a host in two classes is an error and a host in none
is silently left alone. A check's `hosts:` names groups, classes or hosts (in
that order of precedence when a name is several of them) or `all`; the result
keeps only classed hosts, in the order written. This module is on the hot path
of a 100,000-service config, so selections are cached per name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from survivor.config import convert
from survivor.config.build_alerts import Alerting
from survivor.config.build_deps import build_dependencies
from survivor.config.build_hosts import (
    Hosting,
    groups,
    hosts_and_classes,
    name_list,
    select_hosts,
    selection,
)
from survivor.config.fields import Context, Fields, describe
from survivor.config.load import Entry
from survivor.config.marked import MList, MMap
from survivor.model.config import (
    LIMIT_KEYS,
    LOCAL_TARGET,
    CheckDef,
    CheckKind,
    Mark,
    ModuleLimits,
    Schedule,
)
from survivor.model.names import is_safe_name

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
        "placement",
        "limits",
    )
)
MIN_MEMORY_LIMIT = 1 << 20  # the module's own binary and libraries need more than this
UNLIMITED = "unlimited"  # a check's way out of instance.check_limits, key by key


def build_hosting(
    ctx: Context,
    schedules: dict[str, Schedule],
    alerting: Alerting,
    default_timeout: float,
    default_limits: ModuleLimits | None = None,
) -> Hosting:
    out = Hosting()
    hosts_and_classes(ctx, out)
    groups(ctx, out)
    _checks(ctx, out, _Defaults(default_timeout, default_limits))
    _effective_schedules(ctx, out, schedules)
    build_dependencies(ctx, out)
    return out


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


@dataclass(frozen=True, slots=True)
class _Defaults:
    """What `instance:` gives every check that does not say otherwise."""

    timeout: float
    limits: ModuleLimits | None


def _checks(ctx: Context, out: Hosting, defaults: _Defaults) -> None:
    composites: list[tuple[CheckDef, Fields, Components]] = []
    for name, entry in ctx.raw.sections["checks"].items():
        if not is_safe_name(name):
            ctx.safe_name(name, "check", entry.file, entry.line)
            continue
        built = _check(ctx, out, name, entry, defaults)
        if built is None:
            continue
        check, f, components = built
        if components:
            composites.append(built)
        out.checks[name] = check
    for check, f, components in composites:
        _check_components(ctx, out, check, f, components)


def _check(
    ctx: Context, out: Hosting, name: str, entry: Entry, defaults: _Defaults
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
        hosts = selection(out, name) or ()
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
        timeout=f.seconds("timeout", defaults.timeout),
        retry=f.duration("retry", None, minimum=timedelta(minutes=1), whole_minutes=True),
        fix=f.reference("fix", "fix", defined["fixes"]),
        placement_local=_placement_local(f) if "placement" in m else False,
        limits=_check_limits(f, defaults.limits, kind, "limits" in m),
        mark=Mark(entry.file, entry.line),
    )
    if variables:
        _check_variables(ctx, out, check, variables, f)
    return check, f, components


def _placement_local(f: Fields) -> bool:
    """`placement: local`: the one value a check may give (DESIGN §7b)."""
    if f.get("placement") != LOCAL_TARGET:
        f.bad("placement", f"expected {LOCAL_TARGET!r} (run only on the scheduler)")
    return True


def read_limits(f: Fields, key: str) -> dict[str, int | None]:
    """A `limits:` mapping: each key given, with None for `unlimited`; problems reported.

    `memory` is the address space (a size: `512M`, `2G`), `cpu` seconds of CPU
    time (a duration, whole seconds: `30s`, `2m`), `files` open descriptors.
    """
    limits = f.ctx.fields(f.get(key), f"{f.what}: {key}", LIMIT_FIELDS, f.file, f.line(key))
    if limits is None:
        return {}
    given: dict[str, int | None] = {}
    for name in LIMIT_KEYS:
        if name not in limits:
            continue
        value = limits.get(name)
        if value == UNLIMITED:
            given[name] = None
        elif name == "memory":
            try:
                size = convert.size(value)
            except ValueError as exc:
                limits.bad(name, f"{exc}, or {UNLIMITED}")
                continue
            if size < MIN_MEMORY_LIMIT:
                limits.bad(name, f"{value!r} is less than 1M: the module could not even start")
                continue
            given[name] = size
        elif name == "cpu":
            seconds = limits.duration(name, None, minimum=timedelta(seconds=1))
            if seconds is not None:
                given[name] = int(seconds.total_seconds())
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 3:
            given[name] = value
        else:
            limits.bad(
                name,
                f"expected a whole number of descriptors of at least 3 (stdin, stdout, stderr)"
                f" or {UNLIMITED}, got {describe(value)}",
            )
    return given


LIMIT_FIELDS = frozenset(LIMIT_KEYS)


def limits_over(base: ModuleLimits | None, given: dict[str, int | None]) -> ModuleLimits | None:
    """`given` over `base` key by key; None when nothing is limited."""
    merged = {key: getattr(base, key, None) for key in LIMIT_KEYS}
    merged.update(given)
    limits = ModuleLimits(**merged)
    return limits if limits.to_dict() else None


def _check_limits(
    f: Fields, default: ModuleLimits | None, kind: CheckKind, given: bool
) -> ModuleLimits | None:
    """The check's own limits over the instance's; a composite has none (its components
    run with theirs)."""
    if kind is CheckKind.COMPOSITE:
        if given:
            f.bad("limits", "a composite check runs no module: give its components limits")
        return None
    return limits_over(default, read_limits(f, "limits")) if given else default


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
