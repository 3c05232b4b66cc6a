"""`survivor web`: serve the read-only status page until Ctrl-C."""

from __future__ import annotations

import click

from survivor.cli.app import App, friendly_errors


@click.command()
@click.option(
    "--bind",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen. Loopback by default: the page has no login, so put a "
    "reverse proxy with authentication in front before binding anything else.",
)
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    metavar="NAME",
    help="A name clients use to reach the page (repeatable). Requests whose Host header "
    "names anything else (a DNS-rebinding page, for one) get 421; IP addresses, "
    "localhost and the --bind host are always served.",
)
@click.pass_obj
@friendly_errors
def web(app: App, bind: str, hostnames: tuple[str, ...]) -> None:
    """Serve a read-only status page: overview, hosts, checks with plots, the queue.

    It reads the state and history files like `survivor status` and refreshes
    itself every few seconds from small JSON endpoints (/api/summary,
    /api/host/HOST, /api/check/HOST/CHECK, /api/queue); /metrics serves the
    Prometheus text. Nothing on it changes anything. Ctrl-C stops it.
    """
    import logging

    from survivor.clock import SystemClock
    from survivor.views.web import StatusSource, is_loopback, make_server, parse_bind

    try:
        host, port = parse_bind(bind)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--bind") from None
    config = app.config
    inst = config.instance
    source = StatusSource(
        inst.state_dir,
        inst.history_dir,
        SystemClock(),
        configured={(h.name, c.name) for c, h in config.pairs()},
    )
    logging.basicConfig(level=logging.WARNING, format="survivor web: %(levelname)s %(message)s")
    try:
        server = make_server(host, port, source, hostnames)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {bind}: {err.strerror or err}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    click.echo(f"survivor web: serving http://{shown}:{bound_port}/ (read-only; Ctrl-C stops)")
    if not is_loopback(host):
        click.echo(
            f"survivor web: WARNING: listening on {host}, not loopback; anyone who can reach "
            "it sees every check, host and comment",
            err=True,
        )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        click.echo("survivor web: stopped")
    finally:
        server.server_close()


COMMANDS = [web]
