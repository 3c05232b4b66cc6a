"""Configuration: `load_config(path) -> Config`, the single entry point, and reload diffs.

Loading is read (`load`: includes and merged sections, each file read as strict YAML
by `yaml`), then build (`build`, `build_alerts`, `build_checks`, `build_deps`, all
reading through `fields`: typed, cross-checked, frozen). Every
problem found on the way is collected, and `ConfigError` carries all of them
with `file:line`, so an operator fixes a config in one round, not one error
per reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from survivor.config import (
    build,
    build_alerts,
    build_checks,
    build_downtimes,
    build_web,
    build_workers,
    fields,
)
from survivor.config.diff import ConfigDiff, diff_configs
from survivor.config.load import read_sources
from survivor.config.yaml import collector_paused
from survivor.errors import ConfigError, ConfigProblem
from survivor.model.config import Config

__all__ = ["ConfigDiff", "ConfigError", "diff_configs", "load_config"]


def load_config(
    path: Path,
    *,
    base_dir: Path | None = None,
    snapshot: Sequence[tuple[Path, bytes]] | None = None,
) -> Config:
    """Load, check and freeze the instance file at `path` and everything it includes.

    Relative paths in the config (state_dir, history_dir, module_dir, ...) are
    taken from `base_dir`, by default the instance file's directory; `include:`
    patterns are always relative to the instance file. Raises ConfigError with
    every problem found. `snapshot`: the files' bytes as a running daemon read them
    (`Config.sources`), instead of what is on disk now.
    """
    with collector_paused():
        return _load(Path(path), base_dir, snapshot)


def _load(
    path: Path, base_dir: Path | None, snapshot: Sequence[tuple[Path, bytes]] | None
) -> Config:
    raw = read_sources(path, base_dir, snapshot)
    ctx = fields.Context(raw)
    instance = build.build_instance(ctx)
    schedules = build.build_schedules(ctx)
    default_timeout = 45.0 if instance is None else instance.default_timeout
    alerting = build_alerts.build_alerting(ctx, schedules, default_timeout)
    check_limits = None if instance is None else instance.check_limits
    hosting = build_checks.build_hosting(ctx, schedules, alerting, default_timeout, check_limits)
    downtimes = build_downtimes.build_downtimes(ctx)
    remote = build_workers.build_remote(ctx, "main" if instance is None else instance.name, hosting)
    web = build_web.build_web(ctx)
    if ctx.problems or instance is None:
        _fail(raw.files, ctx.problems)
    assert instance is not None
    config = build.assemble(
        raw,
        instance,
        {
            "hosts": hosting.hosts,
            "classes": hosting.classes,
            "groups": hosting.groups,
            "schedules": schedules,
            "checks": hosting.checks,
            "returngroups": alerting.returngroups,
            "alerts": alerting.methods,
            "people": alerting.people,
            "calllists": alerting.calllists,
            "alertplans": alerting.alertplans,
            "fixes": alerting.fixes,
            "dependencies": hosting.dependencies,
            "downtimes": downtimes,
            "remote": remote,
            "web": web,
        },
    )
    unmatched = list(build_downtimes.check_selections(config))
    if unmatched:
        _fail(raw.files, unmatched)
    return config


def _fail(files: Iterable[Path], problems: Iterable[ConfigProblem]) -> NoReturn:
    """ConfigError with every problem, in the order of the files and their lines."""
    rank = {str(file): index for index, file in enumerate(files)}
    raise ConfigError(sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.line)))
