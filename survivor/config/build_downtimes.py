"""`downtimes:`: recurring maintenance windows, a selection and one or more windows.

```yaml
downtimes:
  sunday-patching:
    select: [web1, "*/http"]        # HOST, HOST/CHECK, */CHECK (one or a list)
    groups: [dmz]                   # groups or classes (optional)
    window: {days: sun, from: "02:00", until: "03:59"}   # or a list of them
    comment: weekly OS patching
```

A window is a schedule line's `days`/`from`/`until` (until inclusive to :59,
overnight and weekly wraps as in schedules) without `every`/`at`/`never`.
Selectors are parsed here; whether they match anything is checked once the
hosts and checks exist (`check_selections`), each problem with file:line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from survivor.config.build import window_fields
from survivor.config.fields import Context, describe
from survivor.config.marked import MList, MMap
from survivor.errors import ConfigProblem
from survivor.model.config import Config, DowntimeDef, Mark, ScheduleLine
from survivor.selection import SelectionError, parse_selection, parse_selector, resolve

DOWNTIME_KEYS = frozenset(("select", "groups", "window", "comment"))
WINDOW_KEYS = frozenset(("days", "from", "until"))


def build_downtimes(ctx: Context) -> dict[str, DowntimeDef]:
    out: dict[str, DowntimeDef] = {}
    for name, entry in ctx.raw.sections["downtimes"].items():
        if not ctx.safe_name(name, "downtime", entry.file, entry.line):
            continue
        what = f"downtime {name!r}"
        f = ctx.fields(entry.value, what, DOWNTIME_KEYS, entry.file, entry.line)
        if f is None:
            continue
        ok = len(ctx.problems)
        select = _selectors(ctx, f.get("select"), what, entry.file, f.line("select"))
        groups = tuple(g for g, _ in f.names("groups", "group"))
        if not select and not groups:
            f.missing("select", " (or groups:): which pairs the window holds alerts for")
        windows = _windows(ctx, f.get("window"), what, entry.file, f.line("window"))
        if "window" not in f:
            f.missing("window", ' such as {days: sun, from: "02:00", until: "03:59"}')
        comment = f.text("comment") or ""
        if len(ctx.problems) == ok:
            out[name] = DowntimeDef(
                name, select, groups, windows, comment, Mark(entry.file, entry.line)
            )
    return out


def _selectors(ctx: Context, value: Any, what: str, file: str, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    items: list[tuple[Any, int]]
    if isinstance(value, MList):
        items = [(item, value.item_line(i)) for i, item in enumerate(value)]
    else:
        items = [(value, line)]
    found = []
    for item, at in items:
        if not isinstance(item, str):
            ctx.error(
                file,
                at,
                f"{what}: select: expected HOST, HOST/CHECK or */CHECK, got {describe(item)}",
            )
            continue
        try:
            found.append(parse_selector(item).text)
        except SelectionError as err:
            ctx.error(file, at, f"{what}: select: {err}")
    return tuple(found)


def _windows(ctx: Context, value: Any, what: str, file: str, line: int) -> tuple[ScheduleLine, ...]:
    if value is None:
        return ()
    if isinstance(value, MMap):
        items: list[tuple[Any, int]] = [(value, value.line)]
    elif isinstance(value, MList) and value:
        items = [(item, value.item_line(i)) for i, item in enumerate(value)]
    else:
        ctx.error(file, line, f"{what}: window: expected a mapping or a list of them")
        return ()
    out = []
    for index, (item, at) in enumerate(items):
        wwhat = f"{what} window {index + 1}"
        f = ctx.fields(item, wwhat, WINDOW_KEYS, file, at)
        if f is None:
            continue
        days, start, end = window_fields(ctx, f, wwhat, file, at)
        if start is None and "from" not in f:
            ctx.error(file, at, f"{wwhat}: from: and until: are required")
            continue
        out.append(ScheduleLine(days=days, start=start, end=end, mark=Mark(file, at)))
    return tuple(out)


def check_selections(config: Config) -> Iterator[ConfigProblem]:
    """A problem for every downtime whose selection matches nothing configured."""
    for dt in config.downtimes.values():
        try:
            resolve(config, parse_selection(dt.select, dt.groups))
        except SelectionError as err:
            yield ConfigProblem(dt.mark.file, dt.mark.line, f"downtime {dt.name!r}: {err}")
