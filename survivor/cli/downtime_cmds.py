"""`survivor downtime add|list|remove`: scheduled maintenance, alerts held, checks running."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from survivor.cli.app import App, echo_json, friendly_errors, select_pairs
from survivor.cli.ops_cmds import comment_option, group_option, now, operator, targets_argument

if TYPE_CHECKING:
    from survivor.model.documents import Downtime

TIME_HELP = (
    "ISO 8601 (2026-12-06T02:00Z, 2026-12-06T03:00+01:00; without a zone: the instance's "
    "time zone), 'YYYY-MM-DD HH:MM', 'HH:MM' (its next occurrence) or relative '+30m', '+2h'."
)


@click.group()
def downtime() -> None:
    """Scheduled downtime: hold the alerts of a selection for a while.

    During a downtime checks keep running and recording history; no alert,
    fix or clear notice is sent for its pairs, and a problem still present
    when it ends is alerted as a new one. Recurring windows (every Sunday
    02:00-04:00) belong in the config's `downtimes:` section; this command
    adds one-off downtimes as files under STATE_DIR/downtime/.
    """


@downtime.command()
@targets_argument
@group_option
@click.option(
    "--start",
    "start_text",
    metavar="TIME",
    default="now",
    show_default=True,
    help="When it begins: 'now' or " + TIME_HELP,
)
@click.option("--end", "end_text", metavar="TIME", required=True, help="When it ends: " + TIME_HELP)
@comment_option
@click.pass_obj
@friendly_errors
def add(
    app: App,
    targets: tuple[str, ...],
    groups: tuple[str, ...],
    start_text: str,
    end_text: str,
    comment: str | None,
) -> None:
    """Add a downtime of SELECTION from --start to --end.

    SELECTION is HOST, HOST/CHECK, '*/CHECK' or --group G (a group or class),
    several at once; the pairs are fixed when it is added. Each pair gets a
    command record in its history.
    """
    from survivor.actions import downtimes
    from survivor.selection import describe, parse_selection

    when = now()
    start = _time(app, start_text, when, "--start", future=False)
    end = _time(app, end_text, when, "--end", future=True)
    pairs = select_pairs(app, targets, groups)
    selection = describe(parse_selection(targets, groups))
    op = operator(app, acting=True)
    done = downtimes.add(op, selection, pairs, start=start, end=end, comment=comment, now=when)
    click.echo(
        f"downtime {done.id}: {len(done.pairs)} pair(s) of {selection} from "
        f"{_shown(app, done.start)} until {_shown(app, done.end)}: {done.comment}"
    )


@downtime.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Also downtimes that have ended.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@friendly_errors
def list_(app: App, show_all: bool, as_json: bool) -> None:
    """List downtimes (now and to come) and the config's recurring windows.

    Each downtime shows its id (for `downtime remove`), the selection and the
    pairs it holds, start, end, comment and who added it. Ended downtimes
    stay on disk until removed; --all shows them too.
    """
    from survivor.clock import local_zone
    from survivor.downtime import window_pairs
    from survivor.schedule import describe_window, window_active

    config = app.config
    when = now()
    found, problems = app.state_store().read_downtimes()
    shown = [d for d in found if show_all or d.end > when]
    tz = local_zone(config.instance.timezone)
    windows: list[dict[str, Any]] = [
        {
            "name": w.name,
            "selection": " ".join([*w.select, *(f"--group {g}" for g in w.groups)]),
            "pairs": [f"{h}/{c}" for h, c in window_pairs(config, w)],
            "windows": [describe_window(line) for line in w.windows],
            "active": window_active(w.windows, when, tz),
            "comment": w.comment,
            "file": str(w.mark),
        }
        for w in config.downtimes.values()
    ]
    if as_json:
        echo_json(
            {
                "downtimes": [{**d.to_dict(), "active": d.active(when)} for d in shown],
                "windows": windows,
                "errors": problems,
            }
        )
        return
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if not shown and not windows:
        click.echo("no downtimes")
    for d in shown:
        click.echo(_line(app, d, when))
    for w in windows:
        state = "ACTIVE" if w["active"] else "recurring"
        click.echo(
            f"{w['name']}  {state}  {w['selection']} ({len(w['pairs'])} pairs)  "
            f"{'; '.join(w['windows'])}  (config {w['file']}): {w['comment']}".rstrip(": ")
        )


@downtime.command()
@click.argument("downtime_id", metavar="ID")
@comment_option
@click.pass_obj
@friendly_errors
def remove(app: App, downtime_id: str, comment: str | None) -> None:
    """Remove the downtime ID (from `downtime list`); alerts resume at the next alert tick."""
    from survivor.actions import downtimes

    when = now()
    gone = downtimes.remove(operator(app, acting=True), downtime_id, comment=comment, now=when)
    click.echo(f"removed downtime {gone.id} ({len(gone.pairs)} pair(s) of {gone.selection})")


def _time(app: App, text: str, when: datetime, option: str, *, future: bool) -> datetime:
    from survivor.clock import local_zone
    from survivor.timespec import TimeSpecError, parse_until, parse_when

    tz = local_zone(app.config.instance.timezone)
    try:
        if future:
            return parse_until(text, now=when, tz=tz)
        return parse_when(text, now=when, tz=tz)
    except TimeSpecError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _shown(app: App, t: datetime) -> str:
    from survivor.clock import local_zone
    from survivor.timespec import _shown

    return _shown(t, local_zone(app.config.instance.timezone))


def _line(app: App, d: Downtime, when: datetime) -> str:
    state = "ACTIVE" if d.active(when) else ("ended" if d.end <= when else "planned")
    return (
        f"{d.id}  {state}  {d.selection} ({len(d.pairs)} pairs)  "
        f"{_shown(app, d.start)} - {_shown(app, d.end)}  by {d.user}: {d.comment}"
    )


COMMANDS = [downtime]
