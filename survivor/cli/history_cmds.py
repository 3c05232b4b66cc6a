"""`survivor history`: a pair's records, plus `history archive` and `history prune`.

`history HOST/CHECK` (survivor.cli.status_cmds) stays what it was; the group
below only routes its two words to their commands, so a HOST/CHECK (which
always has a `/` or `@`) is never read as a subcommand, nor a subcommand as a
pair. Archive compresses old month files in place, readable as before; prune
is the one way history is ever deleted, an explicit operator command that
the store records in the daemon events history with the user. Neither ever
touches the current UTC month, which the daemon is still appending to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from survivor.cli.app import App, echo_json, friendly_errors
from survivor.cli.status_cmds import history as show_history
from survivor.model.words import counted

_MONTH = re.compile(r"\A\d{4}-(0[1-9]|1[0-2])\Z")

HELP = """Show a pair's history, or archive or prune old months.

\b
  survivor history HOST/CHECK [--kind K] [--since T] [--fp FP] [--json]
  survivor history archive --before YYYY-MM [--json]
  survivor history prune --before YYYY-MM [--yes] [--json]

`survivor history HOST/CHECK --help` describes the first form. The daemon never
deletes history; `archive` gzips whole months in place (still read by
`history` and the web page), `prune` deletes them and is recorded in
history/daemon/events-*.jsonl. Neither touches the current UTC month.
"""


class HistoryGroup(click.Group):
    """`history archive|prune ...` go to their commands; anything else is `history HOST/CHECK`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["show", *args]  # the pair's history, every argument and option its own
        return super().parse_args(ctx, args)


def month_option(fn: Any) -> Any:
    return click.option(
        "--before",
        "before",
        required=True,
        metavar="YYYY-MM",
        help="Months strictly before this one (UTC). The current month is never touched.",
    )(fn)


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")(fn)


def months_before(before: str) -> tuple[str, str | None]:
    """The month to use and, when it was moved back, the note why (never the current month)."""
    if not _MONTH.match(before):
        raise click.BadParameter(f"{before!r} is not a month (use YYYY-MM)", param_hint="--before")
    from survivor.clock import SystemClock
    from survivor.store.history import month_of

    current = month_of(SystemClock().now())
    if before > current:
        return current, (
            f"the current month {current} is never archived or pruned "
            f"(the daemon still writes to it): months before {current} only"
        )
    return before, None


def relative(app: App, paths: list[Path]) -> list[str]:
    root = app.config.instance.history_dir
    return [str(p.relative_to(root)) for p in paths]


@click.group(cls=HistoryGroup, help=HELP, invoke_without_command=False)
def history() -> None:
    pass


history.add_command(show_history, "show")  # `history show HOST/CHECK` works too


@history.command()
@month_option
@json_option
@click.pass_obj
@friendly_errors
def archive(app: App, before: str, as_json: bool) -> None:
    """Compress the month files of months before YYYY-MM in place (`check-2026-10.jsonl.gz`).

    Every reader still reads them. Safe while the daemon runs: the current
    month is never touched, and a record that reaches an archived month late
    is folded in at the next archive. Run it from cron, e.g. monthly with
    `--before` the previous month. Each check history month before YYYY-MM that
    lacks one also gets a summary (`.check-YYYY-MM.summary.json`, derived data
    that makes `survivor report` fast).
    """
    month, note = months_before(before)
    if note:
        click.echo(f"survivor: {note}", err=True)
    from survivor.store.summary import SummaryStore

    store = app.history_store()
    done = relative(app, store.archive(month))
    summarised = SummaryStore(store).refresh_all(month)
    if as_json:
        echo_json(
            {"before": month, "requested": before, "archived": done, "summarised": summarised}
        )
        return
    for name in done:
        click.echo(f"archived {name}")
    click.echo(f"{counted(len(done), 'file')} archived before {month}")
    if summarised:
        click.echo(f"{counted(summarised, 'month')} of check history summarised for reports")


@history.command()
@month_option
@click.option("--yes", is_flag=True, help="Really delete. Without it: list what would go, exit 1.")
@json_option
@click.pass_obj
@friendly_errors
def prune(app: App, before: str, yes: bool, as_json: bool) -> None:
    """Delete the history of months before YYYY-MM: the one way history is ever deleted.

    Without --yes nothing is deleted: the files that would go are listed and
    the exit code is 1. With --yes they are deleted and one record
    `{"event": "prune", "user", "before", "files"}` goes into
    history/daemon/events-*.jsonl (the daemon events history itself is never
    pruned). The user is the Unix user running the command.
    """
    from survivor.actions.operator import current_user
    from survivor.clock import SystemClock

    month, note = months_before(before)
    if note:
        click.echo(f"survivor: {note}", err=True)
    store = app.history_store()
    if not yes:
        would = relative(app, store.months_before(month, events=False))
        if as_json:
            echo_json({"before": month, "requested": before, "deleted": [], "would_delete": would})
        else:
            for name in would:
                click.echo(f"would delete {name}")
            click.echo(f"{counted(len(would), 'file')} before {month}")
        if would:
            raise click.ClickException("nothing deleted: add --yes to delete these files")
        return
    deleted = relative(app, store.prune(month, user=current_user(), t=SystemClock().now()))
    if as_json:
        echo_json({"before": month, "requested": before, "deleted": deleted, "would_delete": []})
        return
    for name in deleted:
        click.echo(f"deleted {name}")
    click.echo(f"{counted(len(deleted), 'file')} deleted before {month}")


COMMANDS = [history]
