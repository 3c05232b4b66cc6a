"""Commands that run or signal the daemon, or run modules: run, validate, reload, stop, check."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import click

from survivor.cli.app import App, echo_json, friendly_errors, parse_target, require_pair, say
from survivor.clock import SystemClock


@click.command()
@click.option(
    "--daemon",
    "detach",
    is_flag=True,
    help="Detach into the background (for SysV init); default is the foreground.",
)
@click.option(
    "--grace",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds running modules get to finish at SIGTERM before they are killed.",
)
@click.pass_obj
def run(app: App, detach: bool, grace: float) -> None:
    """Run the scheduler daemon.

    Runs in the foreground, logging to stderr (the journal under systemd) unless
    the config says otherwise. SIGHUP reloads the configuration (a bad one is
    reported and the running one kept); SIGTERM stops cleanly. Exits 78 when the
    configuration has errors at start, 1 when another daemon uses the same state
    directory.
    """
    from survivor.clock import clock_from_env
    from survivor.daemon.daemon import run_daemon

    if detach:
        from survivor.daemon.detach import run_detached

        sys.exit(run_detached(app.config_path, clock_from_env(), grace=grace))
    sys.exit(run_daemon(app.config_path, clock_from_env(), grace=grace))


@click.command()
@click.option("--no-modules", is_flag=True, help="Only load the config; do not run module -v.")
@click.pass_obj
def validate(app: App, no_modules: bool) -> None:
    """Check the configuration and the modules it uses.

    Prints every problem as FILE:LINE: MESSAGE and exits 1 if there is any;
    then runs `NAME -v` of every Survivor-protocol module in use (plugins are
    only checked to exist and be executable). Exits 0 when all is well.
    """
    from survivor.config import load_config
    from survivor.errors import ConfigError

    try:
        config = load_config(app.config_path)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(str(problem))
        raise click.ClickException(f"{len(err.problems)} problem(s) in the configuration") from None
    pairs = config.pair_count()
    click.echo(
        f"{app.config_path}: OK ({len(config.checks)} checks, {len(config.hosts)} hosts, "
        f"{pairs} check@host pairs)"
    )
    unclassed = [host for host in config.hosts.values() if not host.hostclass]
    for host in unclassed:
        click.echo(
            f"{host.mark}: warning: host {host.name!r} is in no class, so no check runs on it"
            " (a host is monitored only when it is in exactly one class)"
        )
    if no_modules:
        return
    from survivor.cli.remote_cmds import validate_workers
    from survivor.proc.modules import validate_modules

    failures = 0
    for line, ok in (*validate_workers(config), *validate_modules(config)):
        click.echo(line)
        failures += not ok
    if failures:
        raise click.ClickException(f"{failures} module(s) or certificate(s) failed validation")


def _daemon_pid(app: App) -> int:
    from survivor.store.layout import StateLayout
    from survivor.store.pidfile import read_pid

    pidfile = StateLayout(app.config.instance.state_dir).pidfile
    pid = read_pid(pidfile)
    if pid is None:
        why = "stale (no process holds it)" if pidfile.exists() else "absent"
        raise click.ClickException(
            f"no survivor daemon is running for {app.config_path} (pidfile {pidfile} is {why})"
        )
    return pid


def _send(pid: int, sig: signal.Signals) -> None:
    """Signal the daemon; a refusal names the daemon and who may signal it."""
    try:
        os.kill(pid, sig)
    except PermissionError:
        raise click.ClickException(
            f"cannot send {sig.name} to the survivor daemon (pid {pid}): permission denied; "
            "run this as the daemon's user or root"
        ) from None
    except ProcessLookupError:
        raise click.ClickException(f"the survivor daemon (pid {pid}) has just exited") from None


def _read_daemon_doc(app: App) -> dict[str, Any]:
    from survivor.errors import StateError
    from survivor.store.fsio import read_document
    from survivor.store.layout import StateLayout

    try:
        return read_document(StateLayout(app.config.instance.state_dir).daemon) or {}
    except StateError:
        return {}


@click.command()
@click.option(
    "--wait",
    is_flag=True,
    help="Wait until the daemon has loaded the new config (or refused it); exit 1 if refused.",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait.")
@click.pass_obj
@friendly_errors
def reload(app: App, wait: bool, timeout: float) -> None:
    """Make the running daemon load its configuration again (SIGHUP).

    The configuration is validated first: a bad one is reported and the daemon
    is not signalled, so it keeps running the old one.
    """
    config = app.file_config()  # exits 1 with every problem if the new config is bad
    del config
    pid = _daemon_pid(app)
    before = _read_daemon_doc(app)
    generation = int((before.get("config") or {}).get("generation", 0))
    before_reload = before.get("last_reload")
    clock = SystemClock()
    sent_at = clock.time()
    _send(pid, signal.SIGHUP)
    if not wait:
        click.echo(f"sent SIGHUP to survivor (pid {pid})")
        return
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        doc = _read_daemon_doc(app)
        new_gen = int((doc.get("config") or {}).get("generation", 0))
        last = doc.get("last_reload") or {}
        if new_gen > generation:
            click.echo(f"reloaded: generation {new_gen} ({last.get('diff', 'no changes')})")
            return
        if last.get("ok") is True and last != before_reload and _after(last.get("at"), sent_at):
            click.echo(f"reloaded: no changes; generation {new_gen} kept")
            return
        if last and last.get("ok") is False and _after(last.get("at"), sent_at):
            for error in last.get("errors", []):
                click.echo(error, err=True)
            raise click.ClickException(
                "the daemon refused the new configuration; it keeps running the old one"
            )
        clock.sleep_until(clock.monotonic() + 0.1, threading.Event())
    raise click.ClickException(
        f"the daemon (pid {pid}) did not report the reload within {timeout:.0f} s"
    )


def _after(iso: object, epoch: float) -> bool:
    from survivor.clock import parse_iso

    if not isinstance(iso, str):
        return False
    try:
        return parse_iso(iso).timestamp() >= epoch - 1.0
    except ValueError:
        return False


@click.command()
@click.option("--wait", is_flag=True, help="Wait until the daemon has exited.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait.")
@click.pass_obj
@friendly_errors
def stop(app: App, wait: bool, timeout: float) -> None:
    """Stop the running daemon (SIGTERM): running checks finish, state is written, exit 0."""
    pid = _daemon_pid(app)
    _send(pid, signal.SIGTERM)
    if not wait:
        click.echo(f"sent SIGTERM to survivor (pid {pid})")
        return
    clock = SystemClock()
    deadline = clock.monotonic() + timeout
    from survivor.store.layout import StateLayout
    from survivor.store.pidfile import read_pid

    pidfile = StateLayout(app.config.instance.state_dir).pidfile

    # The lock is let go before the interpreter winds down: "stopped" means the process
    # has gone too (or is a zombie waiting for its parent), so a restart or a script that
    # checks the pid right after sees no survivor.
    while clock.monotonic() < deadline:
        if read_pid(pidfile) is None and _gone(pid):
            click.echo(f"survivor (pid {pid}) stopped")
            return
        clock.sleep_until(clock.monotonic() + 0.1, threading.Event())
    raise click.ClickException(f"survivor (pid {pid}) still running after {timeout:.0f} s")


def _gone(pid: int) -> bool:
    """The process has exited: no such pid, or only a zombie left for its parent to reap."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel whether the pid exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    # "pid (comm) S ...": the state follows the last ")" (comm may hold parentheses).
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


@click.command()
@click.argument("target", metavar="HOST/CHECK")
@click.option("--json", "as_json", is_flag=True, help="Print the result object as in check.json.")
@click.pass_obj
@friendly_errors
def check(app: App, target: str, as_json: bool) -> None:
    """Run one check on one host now and print the result.

    Touches no state and no history. Exits 0 when the check ran, whatever it
    found; 1 when it could not run (unknown host or check, module missing).
    """
    from survivor.checks.execute import CheckRunner
    from survivor.clock import SystemClock, utc_iso
    from survivor.proc.modules import runner_for
    from survivor.work.threads import run_concurrently

    host_name, check_name = parse_target(target)
    assert check_name is not None
    require_pair(app, host_name, check_name)
    config = app.config
    checkdef = config.checks[check_name]
    runner = runner_for(config)
    if checkdef.module:
        runner.resolve("check", checkdef.module)  # ModuleError -> exit 1 with the reason
    elif checkdef.plugin:
        runner.resolve_plugin(checkdef.plugin)
    start = SystemClock().now()
    [result] = CheckRunner(runner, run_concurrently).run(
        config, checkdef, [config.hosts[host_name]]
    )
    doc = {
        "host": host_name,
        "check": check_name,
        "rc": result.rc,
        "code": result.code,
        "comment": result.comment,
        "scalar": result.scalar,
        "duration_ms": result.duration_ms,
        "perfdata": [p.to_dict() for p in result.perfdata],
        "last_start": utc_iso(start),
        "fingerprint": config.pair_fingerprint(checkdef, config.hosts[host_name]),
    }
    if as_json:
        echo_json(doc)
        return
    scalar = "" if result.scalar is None else f" [{result.scalar:g}]"
    ms = result.duration_ms
    say(f"{host_name}/{check_name}: {result.code}{scalar} {result.comment} ({ms} ms)")


COMMANDS = [run, validate, reload, stop, check]
