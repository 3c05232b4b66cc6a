"""Configuration: `load_config(path) -> Config`, the single entry point, and reload diffs.

Loading is read (`load`: includes and merged sections, each file read as strict YAML
by `yaml`), then build (`build`, `build_alerts`, `build_checks`, `build_deps`, all
reading through `fields`: typed, cross-checked, frozen). Every
problem found on the way is collected, and `ConfigError` carries all of them
with `file:line`, so an operator fixes a config in one round, not one error
per reload.
"""

from __future__ import annotations

from pathlib import Path

from survivor.config import build, build_alerts, build_checks, build_workers, fields
from survivor.config.diff import ConfigDiff, diff_configs
from survivor.config.load import read_sources
from survivor.config.yaml import collector_paused
from survivor.errors import ConfigError
from survivor.model.config import Config

__all__ = ["ConfigDiff", "ConfigError", "diff_configs", "load_config"]


def load_config(path: Path, *, base_dir: Path | None = None) -> Config:
    """Load, check and freeze the instance file at `path` and everything it includes.

    Relative paths in the config (state_dir, history_dir, module_dir, ...) are
    taken from `base_dir`, by default the instance file's directory; `include:`
    patterns are always relative to the instance file. Raises ConfigError with
    every problem found.
    """
    with collector_paused():
        return _load(Path(path), base_dir)


def _load(path: Path, base_dir: Path | None) -> Config:
    raw = read_sources(path, base_dir)
    ctx = fields.Context(raw)
    instance = build.build_instance(ctx)
    schedules = build.build_schedules(ctx)
    default_timeout = 45.0 if instance is None else instance.default_timeout
    alerting = build_alerts.build_alerting(ctx, schedules, default_timeout)
    hosting = build_checks.build_hosting(ctx, schedules, alerting, default_timeout)
    remote = build_workers.build_remote(ctx, "main" if instance is None else instance.name, hosting)
    if ctx.problems or instance is None:
        rank = {str(file): index for index, file in enumerate(raw.files)}
        raise ConfigError(sorted(ctx.problems, key=lambda p: (rank.get(p.file, len(rank)), p.line)))
    return build.assemble(
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
            "remote": remote,
        },
    )
