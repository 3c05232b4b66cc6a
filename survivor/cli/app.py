"""What every command shares: the config path, the loaded config, stores, target parsing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from survivor.errors import ConfigError, SurvivorError
from survivor.model.config import Config
from survivor.model.names import is_safe_name

P = ParamSpec("P")
R = TypeVar("R")


class App:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The configuration, loaded once; errors become a clean message and exit 1."""
        if self._config is None:
            from survivor.config import load_config

            try:
                self._config = load_config(self.config_path)
            except ConfigError as err:
                for problem in err.problems:
                    click.echo(str(problem), err=True)
                raise click.ClickException(
                    f"{len(err.problems)} configuration problem(s) in {self.config_path}; "
                    "fix them (see `survivor validate`)"
                ) from None
        return self._config

    def state_store(self) -> Any:
        from survivor.store.fsio import FileWriter
        from survivor.store.state import StateStore

        inst = self.config.instance
        return StateStore(inst.state_dir, FileWriter(inst.fsync))

    def history_store(self) -> Any:
        from survivor.store.fsio import FileWriter
        from survivor.store.history import HistoryStore

        inst = self.config.instance
        return HistoryStore(inst.history_dir, FileWriter(inst.fsync))


def parse_target(text: str, *, need_check: bool = True) -> tuple[str, str | None]:
    """HOST/CHECK (or CHECK@HOST, Survivor's spelling) -> (host, check)."""
    if "/" in text:
        host, _, check = text.partition("/")
    elif "@" in text:
        check, _, host = text.partition("@")
    else:
        host, check = text, ""
    if not is_safe_name(host):
        raise click.BadParameter(f"{host!r} is not a valid host name", param_hint="HOST/CHECK")
    if not check:
        if need_check:
            raise click.BadParameter(f"expected HOST/CHECK, got {text!r}", param_hint="HOST/CHECK")
        return host, None
    if not is_safe_name(check):
        raise click.BadParameter(f"{check!r} is not a valid check name", param_hint="HOST/CHECK")
    return host, check


def require_pair(app: App, host: str, check: str) -> None:
    """Fail with a clear message unless check@host is configured."""
    config = app.config
    if check not in config.checks:
        raise click.ClickException(f"no check named {check!r} in {app.config_path}")
    if host not in config.hosts:
        raise click.ClickException(f"no host named {host!r} in {app.config_path}")
    if host not in config.checks[check].hosts:
        raise click.ClickException(f"check {check!r} does not run on host {host!r}")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn SurvivorError (and OSError on state files) into `survivor: message`, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SurvivorError as err:
            raise click.ClickException(str(err)) from err
        except PermissionError as err:
            what = err.filename if err.filename is not None else "operation not permitted"
            raise click.ClickException(
                f"{what}: permission denied (run as the survivor user or root)"
            ) from err

    return wrapper
