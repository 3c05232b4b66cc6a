"""Read the instance file and its includes into marked, merged sections.

The instance file names its includes (`include:`, by default `conf.d/*.yaml`);
each file is read with the strict YAML loader (`config.yaml`) and its top-level
sections are merged by name into one `RawConfig`, each definition an `Entry`
that remembers its file and line. A name defined twice, a section in the wrong
file or an unknown top-level key is reported with `file:line` and reading goes
on, so the builder (`config.build`) gets every problem of every file at once.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from survivor.config.marked import MList, MMap
from survivor.config.yaml import LoadFailure, parse_yaml
from survivor.errors import ConfigProblem

# --------------------------------------------------------------------------- suggestions


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'timeout'?` when `word` looks like a typo of a choice, else ``."""
    import difflib  # only a config with a mistake needs it (heapq and difflib: ~1.5 ms)

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- files and sections

#: Top-level sections whose value maps names to definitions.
NAMED_SECTIONS = (
    "hosts",
    "classes",
    "groups",
    "schedules",
    "returngroups",
    "alerts",
    "people",
    "calllists",
    "alertplans",
    "checks",
    "fixes",
    "downtimes",
    "worker_groups",
    "placement",
)
TOP_LEVEL_KEYS = frozenset(
    (*NAMED_SECTIONS, "instance", "include", "dependencies", "workers", "web")
)
DEFAULT_INCLUDE = ("conf.d/*.yaml",)

_SINGULAR = {
    "hosts": "host",
    "classes": "class",
    "groups": "group",
    "schedules": "schedule",
    "returngroups": "return group",
    "alerts": "alert method",
    "people": "person",
    "calllists": "call list",
    "alertplans": "alert plan",
    "checks": "check",
    "fixes": "fix",
    "downtimes": "downtime",
    "worker_groups": "worker group",
    "placement": "placement of",
}


def singular(section: str) -> str:
    """`checks` -> `check`, for messages."""
    return _SINGULAR.get(section, section)


class Entry(NamedTuple):
    """One named definition (or one dependency), with where it was written."""

    name: str
    value: Any
    file: str
    line: int  # of the name (or of the list item)


@dataclass(slots=True)
class RawConfig:
    """Every file's sections merged by name, still as marked YAML values."""

    path: Path
    base_dir: Path
    files: list[Path] = field(default_factory=list)
    instance: Entry | None = None
    workers: Entry | None = None  # `workers:` (DESIGN §7b), in any one file
    web: Entry | None = None  # `web:` (`survivor web`), in any one file
    sections: dict[str, dict[str, Entry]] = field(default_factory=dict)
    dependencies: list[Entry] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    texts: list[tuple[Path, bytes]] = field(default_factory=list)  # each file as it was read


def _include_files(
    raw: RawConfig, patterns: Any, doc: MMap | None, instance_file: str
) -> list[tuple[Path, str]]:
    """Files named by `include:` (sorted per pattern, each once, never the instance file)."""
    line = doc.value_line("include") if doc is not None and "include" in doc else 0
    if patterns is None:
        patterns = list(DEFAULT_INCLUDE) if doc is None or "include" not in doc else []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        raw.problems.append(
            ConfigProblem(instance_file, line, "include: must be a list of glob patterns")
        )
        return []
    here = raw.path.parent
    own = os.path.realpath(raw.path)
    seen = {own}
    found: list[tuple[Path, str]] = []
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            where = patterns.item_line(index) if isinstance(patterns, MList) else line
            raw.problems.append(
                ConfigProblem(instance_file, where, f"include: {pattern!r} is not a glob pattern")
            )
            continue
        joined = pattern if os.path.isabs(pattern) else os.path.join(here, pattern)
        for name in sorted(glob.glob(joined, recursive=True)):
            real = os.path.realpath(name)
            if real in seen or os.path.isdir(name):
                continue
            seen.add(real)
            found.append((Path(name), str(Path(name))))
    return found


def _take_document(raw: RawConfig, doc: Any, file: str, is_instance: bool) -> None:
    """Merge one file's top-level sections into `raw`, reporting misplaced or doubled names."""
    if doc is None:
        return
    if not isinstance(doc, MMap):
        raw.problems.append(
            ConfigProblem(file, getattr(doc, "line", 1), "the file must be a YAML mapping")
        )
        return
    for key in doc:
        line = doc.key_line(key)
        if key not in TOP_LEVEL_KEYS:
            raw.problems.append(
                ConfigProblem(
                    file,
                    line,
                    f"unknown top-level key {key!r}{did_you_mean(key, TOP_LEVEL_KEYS)}",
                )
            )
            continue
        value = doc[key]
        if key == "include":
            if not is_instance:
                raw.problems.append(
                    ConfigProblem(file, line, "include: is allowed only in the instance file")
                )
            continue
        if key == "instance":
            if not is_instance:
                raw.problems.append(
                    ConfigProblem(
                        file, line, f"instance: belongs in the instance file {raw.files[0]}"
                    )
                )
                continue
            raw.instance = Entry("instance", value, file, line)
            continue
        if value is None:
            continue
        if key in ("workers", "web"):
            first = getattr(raw, key)
            if first is not None:
                raw.problems.append(
                    ConfigProblem(
                        file,
                        line,
                        f"{key}: is defined twice: at {first.file}:{first.line} and here",
                    )
                )
                continue
            setattr(raw, key, Entry(key, value, file, line))
            continue
        if key == "dependencies":
            if not isinstance(value, MList):
                raw.problems.append(
                    ConfigProblem(file, line, "dependencies: must be a list of dependencies")
                )
                continue
            for index, item in enumerate(value):
                item_line = value.item_line(index)
                raw.dependencies.append(Entry(str(index), item, file, item_line))
            continue
        _take_section(raw, key, value, file, line)


def _take_section(raw: RawConfig, section: str, value: Any, file: str, line: int) -> None:
    if not isinstance(value, MMap):
        raw.problems.append(
            ConfigProblem(file, line, f"{section}: must be a mapping of names to definitions")
        )
        return
    merged = raw.sections[section]
    for name, definition in value.items():
        entry = Entry(name, definition, file, value.key_line(name))
        first = merged.get(name)
        if first is not None:
            raw.problems.append(
                ConfigProblem(
                    file,
                    entry.line,
                    f"{singular(section)} {name!r} is defined twice: "
                    f"at {first.file}:{first.line} and here",
                )
            )
            continue
        merged[name] = entry


def read_sources(
    path: Path,
    base_dir: Path | None = None,
    snapshot: Sequence[tuple[Path, bytes]] | None = None,
) -> RawConfig:
    """Read the instance file and its includes; merge sections; collect every problem.

    With `snapshot` (the files as a daemon read them: the instance file first, then its
    includes) nothing is read from disk and `include:` is not globbed again.
    """
    texts = None if snapshot is None else dict(snapshot)
    base = base_dir if base_dir is not None else path.parent
    raw = RawConfig(path=path, base_dir=Path(os.path.abspath(base)))
    raw.sections = {section: {} for section in NAMED_SECTIONS}
    instance_file = str(path)
    raw.files.append(path)
    try:
        doc = read_yaml(path, instance_file, raw, texts)
    except LoadFailure as failure:
        raw.problems.append(failure.problem)
        return raw
    top = doc if isinstance(doc, MMap) else None
    includes = _include_files(raw, top.get("include") if top else None, top, instance_file)
    if snapshot is not None:
        includes = [(p, str(p)) for p, _ in snapshot[1:]]
    _take_document(raw, doc, instance_file, is_instance=True)
    if raw.instance is None and top is not None:
        raw.problems.append(
            ConfigProblem(instance_file, 1, "instance: is missing (name, state_dir, history_dir)")
        )
    for include_path, include_file in includes:
        raw.files.append(include_path)
        if texts is None and not include_path.is_file():
            raw.problems.append(ConfigProblem(include_file, 0, "not a regular file"))
            continue
        try:
            included = read_yaml(include_path, include_file, raw, texts)
        except LoadFailure as failure:
            raw.problems.append(failure.problem)
            continue
        _take_document(raw, included, include_file, is_instance=False)
    return raw


def read_yaml(
    path: Path, file: str, raw: RawConfig, texts: Mapping[Path, bytes] | None = None
) -> Any:
    """Read and parse one file (from `texts` when given); LoadFailure names the file when
    it cannot be used. The bytes read are kept in `raw.texts`."""
    try:
        data = path.read_bytes() if texts is None else texts[path]
    except OSError as exc:
        raise LoadFailure(ConfigProblem(file, 0, f"cannot read: {exc.strerror or exc}")) from None
    raw.texts.append((path, data))
    return parse_yaml(data, file, raw.problems)
