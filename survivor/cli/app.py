"""What every command shares: the config path, the loaded config, stores, target parsing."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from survivor.errors import ConfigError, SurvivorError
from survivor.model.config import Config
from survivor.model.names import is_safe_name
from survivor.model.words import counted

P = ParamSpec("P")
R = TypeVar("R")


class App:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The configuration, loaded once. When the files on disk do not load, the one the
        daemon runs (state/running-config.json) is used, with one line on stderr saying
        so: a typo must not disable status, history, queue or ack. Without a running
        config, the errors become a clean message and exit 1."""
        if self._config is None:
            from survivor.config import load_config

            try:
                self._config = load_config(self.config_path)
            except ConfigError as err:
                running = running_config(self.config_path, err)
                if running is None:
                    for problem in err.problems:
                        click.echo(str(problem), err=True)
                    problems = counted(len(err.problems), "configuration problem")
                    raise click.ClickException(
                        f"{problems} in {self.config_path}; fix them (see `survivor validate`)"
                    ) from None
                self._config = running
        return self._config

    def file_config(self) -> Config:
        """The configuration in the files, or exit 1 with every problem (validate, reload)."""
        from survivor.config import load_config

        try:
            return load_config(self.config_path)
        except ConfigError as err:
            for problem in err.problems:
                click.echo(str(problem), err=True)
            raise click.ClickException(
                f"{counted(len(err.problems), 'configuration problem')} in {self.config_path}; "
                "fix them (see `survivor validate`)"
            ) from None

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


def running_config(path: Path, err: ConfigError) -> Config | None:
    """The config a daemon runs for the instance file `path`, when its files do not load.

    Its state directory is found from the instance section if that part still builds,
    else the daemon could not be found and None is returned.
    """
    from survivor.config import load_config
    from survivor.config.build import build_instance
    from survivor.config.fields import Context
    from survivor.config.load import read_sources
    from survivor.store.fsio import FileWriter
    from survivor.store.state import StateStore

    instance = build_instance(Context(read_sources(path)))
    if instance is None:
        return None
    try:
        snapshot = StateStore(instance.state_dir, FileWriter()).read_running_config()
    except (SurvivorError, OSError):
        return None
    if snapshot is None or snapshot.path != str(path.absolute()):
        return None
    try:
        config = load_config(
            Path(snapshot.path),
            base_dir=path.absolute().parent,
            snapshot=[(Path(p), data) for p, data in snapshot.files],
        )
    except ConfigError:
        return None
    first = err.problems[0] if err.problems else "?"
    click.echo(
        f"survivor: {path} does not load ({len(err.problems)} problem(s), first: {first}); "
        f"using the config the daemon runs (generation {snapshot.generation}); "
        "`survivor validate` lists every problem",
        err=True,
    )
    return config


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


def select_pairs(app: App, targets: Sequence[str], groups: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs a selection means: bad syntax is a usage error, no match an error (exit 1)."""
    from survivor.selection import SelectionError, parse_selection, resolve

    if not targets and not groups:
        raise click.UsageError("give a SELECTION (HOST, HOST/CHECK, '*/CHECK') or --group G")
    try:
        selectors = parse_selection(targets, groups)
    except SelectionError as err:
        raise click.BadParameter(str(err), param_hint="SELECTION") from None
    try:
        return resolve(app.config, selectors)
    except SelectionError as err:
        raise click.ClickException(str(err)) from None


def require_pair(app: App, host: str, check: str) -> None:
    """Fail with a clear message unless check@host is configured."""
    config = app.config
    if check not in config.checks:
        raise click.ClickException(f"no check named {check!r} in {app.config_path}")
    if host not in config.hosts:
        raise click.ClickException(f"no host named {host!r} in {app.config_path}")
    if host not in config.checks[check].hosts:
        raise click.ClickException(f"check {check!r} does not run on host {host!r}")


# C0 controls but tab and newline, DEL, and the C1 controls (0x80-0x9f: CSI is 0x9b)
_CONTROLS = {c: None for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}


def visible(text: str) -> str:
    """`text` with its control characters shown, not obeyed: `^[` for ESC, `^G` for BEL,
    `\\x9b` for a C1 control. Comments come from modules and remote servers (a check_ssh
    banner) and from other operators; raw, an escape sequence in one clears the screen or
    retitles the window of whoever runs `status`. JSON output keeps the raw text."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code in _CONTROLS:
            out.append(
                f"^{chr(code + 64)}" if code < 0x20 else "^?" if code == 0x7F else f"\\x{code:02x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def say(text: str, *, err: bool = False) -> None:
    """One line for a person on a terminal: control characters shown, not obeyed."""
    click.echo(visible(text), err=err)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_json_rows(head: dict[str, Any], key: str, rows: Iterable[Any], chunk: int = 500) -> None:
    """The text of `echo_json({**head, key: list(rows)})`, written `chunk` rows at a time:
    20,000 rows built as one structure and one string took 171 MB."""
    empty = "[]\n}"
    text = json.dumps({**head, key: []}, indent=2, ensure_ascii=False, default=str)
    assert text.endswith(empty)
    before = text[: -len(empty)] + "[\n"  # the rows sit at depth 2: four spaces
    batch: list[str] = []
    for row in rows:
        batch.append("    " + indented_json(row, "    "))
        if len(batch) >= chunk:
            click.echo(before + ",\n".join(batch), nl=False)
            before, batch = ",\n", []
    if batch:
        click.echo(before + ",\n".join(batch), nl=False)
        before = ",\n"
    click.echo(text if before != ",\n" else "\n  ]\n}")


def indented_json(value: Any, margin: str = "") -> str:
    """`json.dumps(value, indent=2, ensure_ascii=False, default=str)` with `margin` before
    every line but the first, the same text: strings, numbers and the containers of
    them are written here, each string by json's C function, as indent=2 forces json's
    Python encoder (two thirds of `status --json` at 20,000 rows); anything else is left
    to json.dumps. JSON strings hold no newline, so a line is a line."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if value is None or value is True or value is False:
        return "null" if value is None else "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value or value in (math.inf, -math.inf):
            return "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    inner = margin + "  "
    if kind is dict and all(type(k) is str for k in value):
        if not value:
            return "{}"
        items = (
            f"{inner}{encode_basestring(k)}: {indented_json(v, inner)}" for k, v in value.items()
        )
        return "{\n" + ",\n".join(items) + "\n" + margin + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        return (
            "[\n" + ",\n".join(inner + indented_json(v, inner) for v in value) + "\n" + margin + "]"
        )
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text.replace("\n", "\n" + margin)


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
