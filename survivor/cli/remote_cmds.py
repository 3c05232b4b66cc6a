"""Remote workers (DESIGN §7b): `survivor broker-config`, `survivor worker`, and what
`survivor validate` says about the `workers:` section."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from survivor.cli.app import App, echo_json, friendly_errors
from survivor.model.config import Config

_LISTEN = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def validate_workers(config: Config) -> Iterator[tuple[str, bool]]:
    """One line per certificate and placed worker group: what `survivor validate` prints."""
    from survivor.remote.certs import CertificateError, certificate_subject

    workers = config.workers
    if workers is None:
        return
    broker = workers.broker
    for what, path in (("CA", broker.ca), ("scheduler certificate", broker.cert)):
        try:
            subject = certificate_subject(path)
        except CertificateError as err:
            yield f"workers: {what}: FAILED: {err}", False
            continue
        clash = [w.name for w in workers.approved.values() if w.subject == subject]
        if what != "CA" and clash:
            yield (
                (
                    f"workers: {what} {path}: FAILED: subject {subject!r} is also worker "
                    f"{clash[0]!r}'s; give the scheduler its own certificate"
                ),
                False,
            )
        else:
            yield f"workers: {what} {path}: OK (subject {subject})", True
    placed = {t for p in config.placement.values() for t in p.targets if t in config.worker_groups}
    for name in sorted(placed):
        members = config.worker_groups[name].workers
        yield f"worker group {name}: OK ({len(members)} approved: {', '.join(members)})", True


@click.command("broker-config")
@click.option("--server-cert", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--server-key", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--listen", default="0.0.0.0:4222", show_default=True, metavar="HOST:PORT")
@click.pass_obj
@friendly_errors
def broker_config(app: App, server_cert: Path, server_key: Path, listen: str) -> None:
    """Print the nats-server configuration for the approved workers.

    TLS with verify_and_map and the CA of workers.broker.ca, one user per
    approved certificate subject (a worker may take work only from its own
    groups and publish only its heartbeat) and one for the scheduler, whose
    subject is read from workers.broker.cert:

    \b
      survivor broker-config --server-cert S --server-key K > /etc/nats/survivor.conf
      nats-server -c /etc/nats/survivor.conf
    """
    from survivor.remote.brokerconf import render
    from survivor.remote.certs import certificate_subject

    if _LISTEN.fullmatch(listen) is None or not 0 < int(listen.rsplit(":", 1)[1]) < 65536:
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    config = app.config
    if config.workers is None:
        raise click.ClickException(f"{app.config_path} has no workers: section (DESIGN §7b)")
    for path in (server_cert, server_key):
        if not path.is_file():
            raise click.ClickException(f"{path}: no such file")
    click.echo(
        render(
            config.workers,
            config.worker_groups,
            scheduler_subject=certificate_subject(config.workers.broker.cert),
            server_cert=server_cert.absolute(),
            server_key=server_key.absolute(),
            listen=listen,
            source=str(app.config_path),
        ),
        nl=False,
    )


@click.command()
@click.option(
    "--config",
    "worker_config",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    envvar="SURVIVOR_WORKER_CONFIG",
    show_envvar=True,
    help="The worker's own file (name, groups, broker, module_dir, ...).",
)
def worker(worker_config: Path) -> None:
    """Serve checks for the worker groups in the worker's file, over NATS (foreground).

    Runs the modules and plugins a scheduler names from this machine's own
    directories, answers busy at its concurrency limit, heartbeats every 30 s,
    reconnects to the broker forever, and drains on SIGTERM. Exit 78 on a bad
    worker file (every problem with file:line).
    """
    import sys

    from survivor.clock import SystemClock
    from survivor.daemon.logsetup import setup_logging
    from survivor.errors import ConfigError
    from survivor.remote.workerconf import load_worker_config

    try:
        cfg = load_worker_config(worker_config)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(str(problem), err=True)
        click.echo(f"survivor worker: {len(err.problems)} problem(s); not started", err=True)
        sys.exit(78)
    try:
        import nats  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "the worker needs nats-py: pip install 'survivor[remote]'"
        ) from None
    from survivor.remote.worker import run_worker

    setup_logging(cfg.log, name="survivor-worker")
    sys.exit(run_worker(cfg, SystemClock()))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (workers.json).")
@click.pass_obj
@friendly_errors
def workers(app: App, as_json: bool) -> None:
    """Show the remote workers the scheduler has seen, from state/workers.json.

    One line per approved worker (alive: a heartbeat within 90 s), the
    broker connection from daemon.json, worker groups whose breaker is open,
    and workers whose module differs from the scheduler's. Exit 1 when the
    config has no workers: section.
    """
    from survivor.clock import SystemClock
    from survivor.store.fsio import read_document
    from survivor.store.layout import StateLayout
    from survivor.views.workers import broker_line, table

    config = app.config
    if config.workers is None:
        raise click.ClickException(f"{app.config_path} has no workers: section (DESIGN §7b)")
    layout = StateLayout(config.instance.state_dir)
    doc = read_document(layout.workers)
    if as_json:
        echo_json(doc or {"version": 1, "workers": [], "broker": None})
        return
    now = SystemClock().now()
    daemon = read_document(layout.daemon) or {}
    line = broker_line(daemon.get("broker"), now)
    click.echo(line or "broker: not known (the daemon has not written daemon.json yet)")
    for out in table(doc, now):
        click.echo(out)


COMMANDS = [broker_config, worker, workers]
