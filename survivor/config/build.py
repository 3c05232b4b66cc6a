"""Build the frozen `Config` from merged, marked YAML, collecting every problem.

Each section is built by one function that reads its definitions through
`Fields` (`config.fields`), whose getters report a problem with `file:line`
and return a fallback instead of raising, so one load reports everything that
is wrong. References between sections (a check's schedule, a call list's
members) are checked too; only the existence of modules and plugins on disk is
left to `survivor validate` and the runner.

The sections live in four modules: this one (`instance`, `schedules` and
assembly), `build_alerts` (return groups, alert methods, people, call lists,
alert plans, fixes), `build_checks` (hosts, classes, groups, checks) and
`build_deps` (dependencies); `survivor.config.load_config` calls them in that
order, so that references can be checked.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from survivor.config import convert
from survivor.config.build_checks import limits_over, read_limits
from survivor.config.fields import Context, Fields, describe, resolve_path
from survivor.config.load import RawConfig
from survivor.config.marked import MList, MMap
from survivor.model.config import (
    Config,
    FsyncPolicy,
    InstanceConfig,
    LogConfig,
    Mark,
    Schedule,
    ScheduleLine,
    WeekTime,
)

DEFAULT_PLUGIN_DIRS = (
    Path("/usr/lib/nagios/plugins"),
    Path("/usr/lib/monitoring-plugins"),
    Path("/usr/local/nagios/libexec"),
)
SYSTEM_MODULE_DIR = Path("/usr/lib/survivor/mod")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# --------------------------------------------------------------------------- instance

INSTANCE_KEYS = frozenset(
    (
        "name",
        "state_dir",
        "history_dir",
        "module_dir",
        "plugin_dirs",
        "max_running_checks",
        "check_workers",
        "alert_workers",
        "default_timeout",
        "alert_throttle",
        "alert_shift",
        "fsync",
        "log",
        "prometheus_textfile",
        "results_log",
        "timezone",
        "output_cap",
        "check_limits",
    )
)
LOG_KEYS = frozenset(("target", "level"))


def _paths(
    f: Fields, key: str, base: Path, default: tuple[Path, ...], *, may_be_empty: bool = False
) -> tuple[Path, ...]:
    value = f.get(key)
    if value is None:
        return default
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        f.bad(key, f"expected a path or a list of paths, got {describe(value)}")
        return default
    if not items and not may_be_empty:
        f.bad(key, "expected at least one path, got an empty list")
        return default
    paths = []
    for item in items:
        if not isinstance(item, str) or not item:
            f.bad(key, f"expected a path, got {describe(item)}")
            continue
        paths.append(resolve_path(base, item))
    return tuple(paths)


def _optional_count(f: Fields, key: str, maximum: int | None = None) -> int | None:
    """A whole number of at least 1, or None when the key is absent or null."""
    return None if f.get(key) is None else f.integer(key, 1, 1, maximum)


def _log(ctx: Context, f: Fields, base: Path) -> LogConfig:
    value = f.get("log")
    if value is None:
        return LogConfig()
    if isinstance(value, str):
        value_map: Fields | None = None
        target: str | None = value
        level = "info"
    else:
        value_map = ctx.fields(value, "instance log", LOG_KEYS, f.file, f.line("log"))
        if value_map is None:
            return LogConfig()
        target = value_map.text("target") or "stderr"
        level = value_map.text("level") or "info"
        if level not in LOG_LEVELS:
            value_map.bad("level", f"{level!r} is not one of {', '.join(LOG_LEVELS)}")
            level = "info"
    if target not in ("stderr", "syslog"):
        target = str(resolve_path(base, str(target)))
    return LogConfig(target=str(target), level=level)


def build_instance(ctx: Context) -> InstanceConfig | None:
    """The `instance:` section; None when it is missing or not a mapping (reported)."""
    raw = ctx.raw
    entry = raw.instance
    if entry is None:
        return None
    f = ctx.fields(entry.value, "instance", INSTANCE_KEYS, entry.file, entry.line)
    if f is None:
        return None
    base = raw.base_dir
    name = f.name("name", "instance") or "main"
    state_dir = f.path("state_dir", base, required=True)
    history_dir = f.path("history_dir", base, required=True)
    if state_dir is not None and state_dir == history_dir:
        f.bad("history_dir", "must not be the same directory as state_dir")
    default_module_dir = Path(os.path.normpath(os.path.abspath(raw.path.parent / ".." / "mod")))
    if not default_module_dir.is_dir():
        default_module_dir = SYSTEM_MODULE_DIR
    fsync = FsyncPolicy.BATCH
    fsync_text = f.text("fsync")
    if fsync_text is not None:
        try:
            fsync = FsyncPolicy(fsync_text)
        except ValueError:
            choices = ", ".join(p.value for p in FsyncPolicy)
            f.bad("fsync", f"{fsync_text!r} is not one of {choices}")
    timezone = f.text("timezone")
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            f.bad("timezone", f"{timezone!r} is not a known IANA time zone (e.g. Europe/Berlin)")
            timezone = None
    output_cap = 65536
    if "output_cap" in f:
        try:
            output_cap = convert.size(f.get("output_cap"))
        except ValueError as exc:
            f.bad("output_cap", str(exc))
        if output_cap < 1024:
            f.bad("output_cap", f"{output_cap} bytes is less than 1KiB")
            output_cap = 65536
    return InstanceConfig(
        name=name,
        state_dir=state_dir or base / "state",
        history_dir=history_dir or base / "history",
        module_dirs=_paths(f, "module_dir", base, (default_module_dir,)),
        # `plugin_dirs: []`: plugins only from module_dir/check/ (README, decisions)
        plugin_dirs=_paths(f, "plugin_dirs", base, DEFAULT_PLUGIN_DIRS, may_be_empty=True),
        max_running_checks=_optional_count(f, "max_running_checks"),
        check_workers=_optional_count(f, "check_workers", 1000),
        alert_workers=f.integer("alert_workers", 5, 1, 100),
        default_timeout=f.seconds("default_timeout", 45.0),
        alert_throttle=f.integer("alert_throttle", 10, 0),
        alert_shift=f.duration("alert_shift", timedelta(seconds=60)) or timedelta(0),
        fsync=fsync,
        log=_log(ctx, f, base),
        prometheus_textfile=f.path("prometheus_textfile", base),
        results_log=f.path("results_log", base),
        timezone=timezone,
        output_cap=output_cap,
        check_limits=limits_over(None, read_limits(f, "check_limits"))
        if "check_limits" in f
        else None,
        mark=Mark(entry.file, entry.line),
    )


# --------------------------------------------------------------------------- schedules

SCHEDULE_LINE_KEYS = frozenset(("days", "from", "until", "every", "at", "never"))


def _week_time(f: Fields, key: str) -> WeekTime | None:
    if key not in f:
        return None
    try:
        return convert.week_time(f.get(key))
    except ValueError as exc:
        f.bad(key, str(exc))
        return None


def _at_times(f: Fields) -> tuple[WeekTime, ...]:
    value = f.get("at")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        f.bad("at", "expected a list of times such as ['02:30'] or ['mon 09:00']")
        return ()
    times = []
    for item in items:
        try:
            times.append(convert.week_time(item))
        except ValueError as exc:
            f.bad("at", str(exc))
    return tuple(times)


def window_fields(
    ctx: Context, f: Fields, what: str, file: str, line: int
) -> tuple[frozenset[int] | None, WeekTime | None, WeekTime | None]:
    """`days`, `from` and `until` of a schedule line (or a downtime window), checked together."""
    days = None
    if "days" in f:
        try:
            days = convert.day_set(f.get("days"))
        except ValueError as exc:
            f.bad("days", str(exc))
    start = _week_time(f, "from")
    end = _week_time(f, "until")
    if ("from" in f) != ("until" in f):
        ctx.error(file, line, f"{what}: give both from: and until:, or neither")
    elif start is not None and end is not None:
        if (start.day is None) != (end.day is None):
            ctx.error(file, line, f"{what}: from: and until: must both name a day, or neither")
        elif start.day is not None and days is not None:
            ctx.error(file, line, f"{what}: days: cannot be combined with from/until naming a day")
    return days, start, end


def schedule_line(ctx: Context, value: Any, what: str, file: str, line: int) -> ScheduleLine | None:
    """One `{days, from, until, every | at | never}` line."""
    f = ctx.fields(value, what, SCHEDULE_LINE_KEYS, file, line)
    if f is None:
        return None
    ok = len(ctx.problems)
    days, start, end = window_fields(ctx, f, what, file, line)
    every = None
    if "every" in f:
        every = f.duration("every", None, minimum=timedelta(minutes=1), whole_minutes=True)
    at = _at_times(f) if "at" in f else ()
    never = f.flag("never")
    actions = ("every" in f) + ("at" in f) + never
    if actions != 1:
        ctx.error(file, line, f"{what}: give exactly one of every:, at: or never: true")
    if len(ctx.problems) != ok:
        return None
    return ScheduleLine(
        every=every, at=at, never=never, days=days, start=start, end=end, mark=Mark(file, line)
    )


def build_schedules(ctx: Context) -> dict[str, Schedule]:
    """`schedules:` name -> list of lines (a single mapping is a one-line schedule)."""
    schedules: dict[str, Schedule] = {}
    for name, entry in ctx.raw.sections["schedules"].items():
        if not ctx.safe_name(name, "schedule", entry.file, entry.line):
            continue
        value = entry.value
        what = f"schedule {name!r}"
        if isinstance(value, MMap):
            items: list[tuple[Any, int]] = [(value, value.line)]
        elif isinstance(value, MList) and value:
            items = [(item, value.item_line(index)) for index, item in enumerate(value)]
        else:
            ctx.error(entry.file, entry.line, f"{what}: must be a non-empty list of lines")
            continue
        lines = []
        for index, (item, line) in enumerate(items):
            built = schedule_line(ctx, item, f"{what} line {index + 1}", entry.file, line)
            if built is not None:
                lines.append(built)
        if len(lines) == len(items):
            schedules[name] = Schedule(name, tuple(lines), Mark(entry.file, entry.line))
    return schedules


# --------------------------------------------------------------------------- assembly


def assemble(raw: RawConfig, instance: InstanceConfig, sections: Mapping[str, Any]) -> Config:
    """The frozen Config from built sections (every problem has been ruled out)."""
    return Config(
        path=Path(os.path.abspath(raw.path)),
        files=tuple(Path(os.path.abspath(p)) for p in raw.files),
        sources=tuple((Path(os.path.abspath(p)), data) for p, data in raw.texts),
        instance=instance,
        hosts=MappingProxyType(sections["hosts"]),
        classes=MappingProxyType(sections["classes"]),
        groups=MappingProxyType(sections["groups"]),
        schedules=MappingProxyType(sections["schedules"]),
        checks=MappingProxyType(sections["checks"]),
        returngroups=MappingProxyType(sections["returngroups"]),
        alerts=MappingProxyType(sections["alerts"]),
        people=MappingProxyType(sections["people"]),
        calllists=MappingProxyType(sections["calllists"]),
        alertplans=MappingProxyType(sections["alertplans"]),
        fixes=MappingProxyType(sections["fixes"]),
        dependencies=sections["dependencies"],
        downtimes=MappingProxyType(sections.get("downtimes", {})),
        workers=sections["remote"].workers,
        worker_groups=MappingProxyType(sections["remote"].groups),
        placement=MappingProxyType(sections["remote"].placement),
        host_placement=MappingProxyType(sections["remote"].host_placement),
        web=sections.get("web"),
    )
