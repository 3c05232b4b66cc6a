"""What every section builder reads with: `Context` (the problems so far) and `Fields`.

A builder reads one definition through `Fields`, whose getters report a
problem with `file:line` and return a fallback instead of raising, so one load
reports everything that is wrong. The helpers here word and place those
problems the same way in every section (`describe`, `place`, `check_reference`)
and turn values into what the `Config` holds (`plain_data`, `resolve_path`).
They are kept apart from the section builders (`build`, `build_alerts`,
`build_checks`, `build_deps`) because every one of those uses them and none
of them owns them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from survivor.config import convert
from survivor.config.load import RawConfig, did_you_mean
from survivor.config.marked import MList, MMap
from survivor.errors import ConfigProblem
from survivor.model.config import Mark
from survivor.model.names import NAME_PATTERN, is_safe_name

MAX_SUGGESTION_CHOICES = 5000  # difflib over more names costs more than it helps

# --------------------------------------------------------------------------- readers


def plain_data(value: Any) -> Any:
    """Marked YAML values as plain dicts and lists (what modules and fingerprints see)."""
    if isinstance(value, dict):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_data(item) for item in value]
    return value


def _shown(value: object) -> str:
    if isinstance(value, str) and len(value) > 50:
        return f"{value[:50]!r}... ({len(value)} characters)"
    return repr(value)


def place(file: str, line: int, here: str) -> str:
    """`line 7` within the file being reported on, else `other.yaml:7`."""
    return f"line {line}" if file == here else f"{file}:{line}"


def describe(value: object) -> str:
    """How a wrongly typed value is named in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _shown(value)


class Context:
    """The problems found so far, and small caches shared by the section builders."""

    def __init__(self, raw: RawConfig) -> None:
        self.raw = raw
        self.problems: list[ConfigProblem] = raw.problems
        self.durations: dict[str, timedelta] = {}

    def error(self, file: str, line: int, message: str) -> None:
        self.problems.append(ConfigProblem(file, line, message))

    def suggest(self, word: str, choices: Iterable[str]) -> str:
        names = list(choices)
        if len(names) > MAX_SUGGESTION_CHOICES:
            return ""
        return did_you_mean(word, names)

    def safe_name(self, name: object, kind: str, file: str, line: int) -> bool:
        """Report a name that cannot become a path component (see model.is_safe_name)."""
        if is_safe_name(name):
            return True
        if not isinstance(name, str):
            hint = ": quote it" if isinstance(name, int | float) else ""
            self.error(file, line, f"{kind} name must be a string, got {describe(name)}{hint}")
        else:
            self.error(
                file,
                line,
                f"{kind} name {_shown(name)} is not allowed: names must match {NAME_PATTERN} "
                "and contain no '..'",
            )
        return False

    def fields(
        self, value: Any, what: str, allowed: frozenset[str], file: str, line: int
    ) -> Fields | None:
        """A reader for one definition, or None (reported) when it is not a mapping."""
        if not isinstance(value, MMap):
            self.error(file, line, f"{what}: must be a mapping, not {describe(value)}")
            return None
        return Fields(self, value, what, allowed, line)


class Fields:
    """Typed access to one definition; each getter reports its own problem and falls back."""

    __slots__ = ("ctx", "head", "m", "what")

    def __init__(
        self, ctx: Context, m: MMap, what: str, allowed: frozenset[str], head: int = 0
    ) -> None:
        self.ctx = ctx
        self.m = m
        self.what = what
        self.head = head or m.line  # the line naming the definition, for "missing" problems
        if not m.keys() <= allowed:
            for key in m:
                if key not in allowed:
                    ctx.error(
                        m.file,
                        m.key_line(key),
                        f"unknown key {key!r} in {what}{did_you_mean(key, allowed)}",
                    )

    def __contains__(self, key: str) -> bool:
        return key in self.m

    @property
    def file(self) -> str:
        return self.m.file

    def get(self, key: str) -> Any:
        return self.m.get(key)

    def line(self, key: str) -> int:
        return self.m.value_line(key)

    def mark(self) -> Mark:
        return Mark(self.m.file, self.head)

    def bad(self, key: str, message: str) -> None:
        self.ctx.error(self.m.file, self.m.value_line(key), f"{self.what}: {key}: {message}")

    def missing(self, key: str, hint: str = "") -> None:
        self.ctx.error(self.m.file, self.head, f"{self.what}: {key}: is required{hint}")

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.m.get(key)
        if value is None:
            if required:
                self.missing(key)
            return None
        if isinstance(value, str) and value:
            return value
        hint = ": quote it" if isinstance(value, int | float) else ""
        self.bad(key, f"expected a string, got {describe(value)}{hint}")
        return None

    def name(self, key: str, kind: str, *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is None or is_safe_name(value):
            return value
        self.ctx.safe_name(value, kind, self.m.file, self.line(key))
        return None

    def reference(
        self, key: str, kind: str, known: Mapping[str, Any], *, required: bool = False
    ) -> str | None:
        """The name of something that must be defined in `known`.

        An undefined name is reported here and still returned, so that later
        checks (does this check have a schedule?) do not report it again.
        """
        if key not in self.m and not required:
            return None
        value = self.name(key, kind, required=required)
        if value is not None and value not in known:
            self.ctx.error(
                self.m.file,
                self.line(key),
                f"{self.what}: {kind} {value!r} is not defined{self.ctx.suggest(value, known)}",
            )
        return value

    def names(self, key: str, kind: str, *, required: bool = False) -> list[tuple[str, int]]:
        """A list of safe names (a single name is a list of one), each with its line."""
        value = self.m.get(key)
        if value is None:
            if required:
                self.missing(key)
            return []
        if isinstance(value, str):
            line = self.line(key)
            return [(value, line)] if self.ctx.safe_name(value, kind, self.m.file, line) else []
        if not isinstance(value, MList):
            self.bad(key, f"expected a list of {kind} names, got {describe(value)}")
            return []
        found: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            line = value.item_line(index)
            if is_safe_name(item):
                found.append((item, line))
            else:
                self.ctx.safe_name(item, kind, value.file, line)
        return found

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.m.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.bad(key, f"expected a whole number, got {describe(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            limit = f"at least {minimum}" if maximum is None else f"{minimum}..{maximum}"
            self.bad(key, f"{value} is out of range ({limit})")
            return default
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.m.get(key)
        if value is None:
            return default
        try:
            return convert.boolean(value)
        except ValueError as exc:
            self.bad(key, str(exc))
            return default

    def duration(
        self,
        key: str,
        default: timedelta | None,
        *,
        minimum: timedelta = timedelta(0),
        whole_minutes: bool = False,
    ) -> timedelta | None:
        if key not in self.m:
            return default
        value = self.m[key]
        if value is None:
            return default
        result = self.ctx.durations.get(value) if isinstance(value, str) else None
        if result is None:
            try:
                result = convert.duration(value)
            except ValueError as exc:
                self.bad(key, str(exc))
                return default
            if isinstance(value, str):
                self.ctx.durations[value] = result
        if result < minimum:
            self.bad(key, f"{value} is shorter than {convert.format_duration(minimum)}")
            return default
        if whole_minutes and result.total_seconds() % 60:
            self.bad(
                key,
                f"{value} is not a whole number of minutes: schedules tick once a minute",
            )
            return default
        return result

    def seconds(self, key: str, default: float, minimum: timedelta = timedelta(seconds=1)) -> float:
        if key not in self.m:
            return default
        result = self.duration(key, None, minimum=minimum)
        return default if result is None else result.total_seconds()

    def data(self, key: str) -> dict[str, Any]:
        """Free-form module arguments or host variables: a mapping of any YAML."""
        value = self.m.get(key)
        if value is None:
            return {}
        if not isinstance(value, MMap):
            self.bad(key, f"expected a mapping, got {describe(value)}")
            return {}
        result: dict[str, Any] = plain_data(value)
        return result

    def path(self, key: str, base: Path, *, required: bool = False) -> Path | None:
        value = self.text(key, required=required)
        return None if value is None else resolve_path(base, value)


def resolve_path(base: Path, value: str) -> Path:
    """An absolute, normalised path; relative ones are taken from `base`."""
    return Path(os.path.normpath(base / value))


def check_reference(
    ctx: Context,
    name: str | None,
    known: Mapping[str, Any] | frozenset[str],
    kind: str,
    what: str,
    file: str,
    line: int,
) -> bool:
    """Report `name` when it is not defined; True when it is (or is None)."""
    if name is None or name in known:
        return True
    ctx.error(file, line, f"{what}: {kind} {name!r} is not defined{ctx.suggest(name, known)}")
    return False
