"""The `survivor` command: one click group; each command and its imports load on first use.

Every option can also come from the environment as SURVIVOR_<OPTION>
(e.g. SURVIVOR_CONFIG), so init scripts and cron jobs need no flags.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from survivor import __version__
from survivor.cli.app import App
from survivor.errors import SurvivorError

DEFAULT_CONFIG = Path("/etc/survivor/survivor.yaml")

HELP = """\
survivor - a systems monitor that keeps all its state as plain files.

The daemon (`survivor run`) runs checks on schedules, decides whom to alert,
and writes every status to STATE_DIR and every result to a never-pruned
HISTORY_DIR. Everything else here reads those files or asks the daemon through
its pidfile and request directory, so the commands work the same whether the
daemon runs or not.

\b
Common tasks:
  survivor validate                  check the configuration, every error with file:line
  survivor run                       run the daemon in the foreground
  survivor status --problems         what is failing now
  survivor history web1/http         what a check said over time
  survivor check web1/http           run one check now (no state touched)
  survivor reload --wait             apply a changed configuration

\b
Exit codes: 0 success; 1 failure (the message says why); 2 bad usage;
78 configuration errors at daemon start.
"""


# Each command's module, imported only when that command runs (or --help lists them all):
# `survivor validate` or `survivor status` from a cron job does not pay for the others.
COMMAND_MODULES = {
    "run": "daemon_cmds",
    "validate": "daemon_cmds",
    "reload": "daemon_cmds",
    "stop": "daemon_cmds",
    "check": "daemon_cmds",
    "status": "status_cmds",
    "history": "history_cmds",
    "queue": "queue_cmds",
    "ack": "ops_cmds",
    "unack": "ops_cmds",
    "inhibit": "ops_cmds",
    "uninhibit": "ops_cmds",
    "escalate": "ops_cmds",
    "reschedule": "ops_cmds",
    "fix": "ops_cmds",
    "calllist": "calllist_cmds",
    "downtime": "downtime_cmds",
    "web": "web_cmds",
    "report": "report_cmds",
    "broker-config": "remote_cmds",
    "worker": "remote_cmds",
    "workers": "remote_cmds",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported from COMMAND_MODULES on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"survivor.cli.{COMMAND_MODULES[cmd_name]}")
            for defined in module.COMMANDS:
                self.commands.setdefault(defined.name or "", defined)
            command = self.commands.get(cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as err:
            # click suggests from the commands loaded so far, which here are none: offer all.
            raise click.exceptions.NoSuchCommand(
                err.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


@click.group(
    cls=LazyGroup,
    help=HELP,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "SURVIVOR",
        "max_content_width": 100,
    },
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="SURVIVOR_CONFIG",
    show_envvar=True,
    help="The instance file (YAML).",
)
@click.version_option(__version__, prog_name="survivor")
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    ctx.obj = App(config_path)


def run() -> None:
    """Console entry point with SurvivorError turned into a message and exit 1."""
    try:
        main.main(standalone_mode=True)
    except SurvivorError as err:
        click.echo(f"survivor: {err}", err=True)
        sys.exit(1)
