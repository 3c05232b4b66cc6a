"""`survivor web`: serve the status page until Ctrl-C; `survivor web passwd USER`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from survivor.cli.app import App, friendly_errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from survivor.model.config import WebConfig
    from survivor.views.web.server import Request, Response
    from survivor.views.web.source import StatusSource

DEFAULT_BIND = "127.0.0.1:8080"
WEB_EXAMPLE = """
web:
  users: web-users      # relative to the instance file's directory
"""


@click.group(invoke_without_command=True)
@click.option(
    "--bind",
    default=None,
    metavar="HOST:PORT",
    help=f"Where to listen (default: the config's web.bind, else {DEFAULT_BIND}). Keep it "
    "on loopback unless the page is behind TLS (web.tls_cert) or a reverse proxy.",
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
@click.pass_context
def web(ctx: click.Context, bind: str | None, hostnames: tuple[str, ...]) -> None:
    """Serve the status page: overview, hosts, checks with plots, the queue, availability.

    It reads the state and history files like `survivor status` and refreshes
    itself every few seconds from small JSON endpoints (/api/summary,
    /api/host/HOST, /api/check/HOST/CHECK, /api/queue, /api/report/HOST[/CHECK]);
    /metrics serves the Prometheus text. Ctrl-C stops it.

    It is read-only unless the config's `web:` section names a `users` file
    (`survivor web passwd USER` makes it; log in at /login) or a
    `trust_header` that an authenticating reverse proxy sets (the page then
    listens on loopback only). Logged-in users get forms to ack, unack,
    inhibit, uninhibit, escalate, reschedule and add downtime, recorded in the
    command history under their name. See docs/operations.md.
    """
    if ctx.invoked_subcommand is None:
        friendly_errors(serve)(ctx.obj, bind, hostnames)


def serve(app: App, bind: str | None, hostnames: tuple[str, ...]) -> None:
    import logging

    from survivor.clock import SystemClock
    from survivor.views.web import StatusSource, is_loopback, make_server, parse_bind

    config = app.config
    settings = config.web
    where = bind or _configured_bind(settings) or DEFAULT_BIND
    try:
        host, port = parse_bind(where)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--bind") from None
    inst = config.instance
    clock = SystemClock()
    source = StatusSource(
        inst.state_dir,
        inst.history_dir,
        clock,
        configured={(h.name, c.name) for c, h in config.pairs()},
        config=config,
    )
    logging.basicConfig(level=logging.INFO, format="survivor web: %(levelname)s %(message)s")
    answer, mode = _front(app, settings, host, source)
    tls = None
    if settings is not None and settings.tls_cert is not None and settings.tls_key is not None:
        tls = (settings.tls_cert, settings.tls_key)
    try:
        server = make_server(host, port, source, hostnames, answer=answer, tls=tls)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {where}: {err.strerror or err}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if tls else "http"
    click.echo(f"survivor web: serving {scheme}://{shown}:{bound_port}/ ({mode}; Ctrl-C stops)")
    if not is_loopback(host):
        risk = (
            "anyone who can reach it sees every check, host and comment"
            if answer is None
            else "passwords and session cookies cross the network in clear (set web.tls_cert)"
            if tls is None
            else "anyone who can reach it sees the login form"
        )
        click.echo(f"survivor web: WARNING: listening on {host}, not loopback; {risk}", err=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        click.echo("survivor web: stopped")
    finally:
        server.server_close()


def _configured_bind(settings: WebConfig | None) -> str | None:
    if settings is None or settings.bind is None:
        return None
    host, port = settings.bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _front(
    app: App, settings: WebConfig | None, host: str, source: StatusSource
) -> tuple[Callable[[Request], Response] | None, str]:
    """The answer function that logs in and acts, and the mode for the start line; (None,
    "read-only") without users or a trusted header."""
    import functools

    from survivor.cli.web_actions import web_act
    from survivor.clock import SystemClock
    from survivor.views.web import is_loopback
    from survivor.views.web.auth import Gate
    from survivor.views.web.front import answer

    if settings is None or not settings.can_act:
        return None, "read-only: the config's web: names no users file or trust_header"
    if settings.trust_header is not None and not is_loopback(host):
        raise click.BadParameter(
            f"web.trust_header ({settings.mark}) needs a loopback bind: anyone who reaches "
            f"{host} could send {settings.trust_header} and act as anyone",
            param_hint="--bind",
        )
    if settings.users is not None:
        from survivor.store.passwords import read_users

        if not read_users(settings.users):  # PasswordFileError names the file and line
            raise click.ClickException(
                f"{settings.users} lists no users; add one with `survivor web passwd USER`"
            )
        mode = f"actions for the users of {settings.users}; log in at /login"
    else:
        mode = f"actions for the user the proxy names in {settings.trust_header}"
    config = app.config
    clock = SystemClock()
    gate = Gate(
        clock=clock,
        act=web_act(config, app.state_store(), app.history_store(), clock),
        users_file=settings.users,
        trust_header=settings.trust_header,
        secure=settings.tls_cert is not None,
    )
    return functools.partial(answer, source, gate), mode


@web.command()
@click.argument("user")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin (for scripts) instead of a prompt.",
)
@click.pass_obj
@friendly_errors
def passwd(app: App, user: str, password_stdin: bool) -> None:
    """Add USER to the web page's users file, or change their password.

    The file is the config's `web.users`; it is created (mode 0600) when it
    does not exist and replaced atomically. Only argon2id hashes are stored.
    Run it as the user who runs `survivor web`, which must be able to read the
    file. A running page uses the new password at the next login.
    """
    settings = app.config.web
    if settings is None or settings.users is None:
        raise click.ClickException(
            f"{app.config_path} names no users file; add to it:\n{WEB_EXAMPLE}"
        )
    try:
        from survivor.store.passwords import set_password
    except ImportError as err:  # argon2-cffi is a dependency; a broken install lacks it
        raise click.ClickException(
            f"password hashing needs argon2-cffi ({err}); pip install argon2-cffi"
        ) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt(
            f"password for {user}", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        raise click.ClickException(
            "stdin is not a terminal: give --password-stdin to read the password from it"
        )
    new = set_password(settings.users, user, password)
    did = "added" if new else "changed the password of"
    click.echo(f"{did} {user} in {settings.users} (mode 0600)")


COMMANDS = [web]
