"""Operator actions on check@host pairs: ack, unack, inhibit, uninhibit, escalate, reschedule, fix.

Each action takes a selection (`survivor.selection`) and prints one
line per pair saying what was done; every refusal goes to stderr with its
reason and the other pairs are still done. Each pair acted on gets one command
record with the Unix user running it, all of one invocation sharing an
`op_id`. Exit 0 when at least one pair was acted on, 1 when none was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from survivor.cli.app import App, friendly_errors, parse_target, select_pairs
from survivor.errors import SurvivorError

if TYPE_CHECKING:
    from survivor.actions.operator import Operator

TARGET_HELP = """
HOST/CHECK may also be written CHECK@HOST (Survivor's spelling).
"""
SELECTION_EPILOG = """
\b
SELECTION: HOST (all its checks), HOST/CHECK (also CHECK@HOST, Survivor's
spelling), '*/CHECK' (that check on every host), or --group G (a group or a
class); several may be given. --dry-run lists the pairs and changes nothing.
"""

comment_option = click.option(
    "-m",
    "--comment",
    metavar="TEXT",
    help="Why: stored with the action and in the command history (default: '(no reason given)').",
)
group_option = click.option(
    "-g",
    "--group",
    "groups",
    metavar="G",
    multiple=True,
    help="Every pair on the hosts of group or class G (may be repeated).",
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="List the pairs the selection means; change nothing."
)
targets_argument = click.argument("targets", metavar="SELECTION...", nargs=-1)


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """SELECTION..., --group G and --dry-run: what every action on a selection takes."""
    return targets_argument(group_option(dry_run_option(fn)))


target_argument = click.argument("target", metavar="HOST/CHECK")


def operator(app: App, *, acting: bool = False) -> Operator:
    """The acting operator: the real Unix user, never a name from a flag.

    `acting`: give it a new operation id, shared by the command records it writes.
    """
    from survivor.actions.operator import Operator, current_user, operation_id

    op = Operator(app.config, app.state_store(), app.history_store(), current_user())
    return dataclasses.replace(op, operation=operation_id(now())) if acting else op


def now() -> datetime:
    from survivor.clock import SystemClock

    return SystemClock().now()


def apply_each(
    app: App,
    selection: tuple[Sequence[str], Sequence[str], bool],
    action: Callable[[Operator, str, str], str],
) -> None:
    """Run `action` on every selected pair; print what was done, and every refusal on stderr.

    Exit 1 only when no pair was acted on.
    """
    targets, groups, dry_run = selection
    pairs = select_pairs(app, targets, groups)
    if dry_run:
        for host, check in pairs:
            click.echo(f"{host}/{check}")
        return
    op = operator(app, acting=True)
    done = 0
    for host, check in pairs:
        try:
            click.echo(action(op, host, check))
            done += 1
        except SurvivorError as err:
            click.echo(f"Error: {err}", err=True)
    if len(pairs) > 1:
        click.echo(f"{done} of {len(pairs)} pairs acted on (operation {op.operation})", err=True)
    if not done:
        raise click.exceptions.Exit(1)


def until_option(required: bool) -> Callable[[Any], Any]:
    return click.option(
        "--until",
        "until",
        metavar="TIME",
        required=required,
        help="When it ends: ISO 8601 (2026-11-24T18:00, optionally with Z or +01:00), "
        "'YYYY-MM-DD HH:MM', 'HH:MM' (its next occurrence) or relative '+30m', '+2h', '+1d'. "
        "Times without a zone are in the instance's time zone.",
    )


def parse_until_text(app: App, text: str, when: datetime) -> datetime:
    """--until TIME as aware UTC, or a usage error naming the option."""
    from survivor.clock import local_zone
    from survivor.timespec import TimeSpecError, parse_until

    try:
        return parse_until(text, now=when, tz=local_zone(app.config.instance.timezone))
    except TimeSpecError as err:
        raise click.BadParameter(str(err), param_hint="--until") from None


def pair_command(name: str, doc: str) -> click.Command:
    """An action taking a selection and --comment, done by `survivor.actions.pairs.<name>`."""

    @click.command(name=name, help=doc, epilog=SELECTION_EPILOG)
    @selection_options
    @comment_option
    @click.pass_obj
    @friendly_errors
    def command(
        app: App,
        targets: tuple[str, ...],
        groups: tuple[str, ...],
        dry_run: bool,
        comment: str | None,
    ) -> None:
        from survivor.actions import pairs

        act = getattr(pairs, name)
        when = now()
        apply_each(
            app,
            (targets, groups, dry_run),
            lambda op, h, c: act(op, h, c, comment=comment, now=when),
        )

    return command


ack = pair_command(
    "ack",
    """Acknowledge a problem: no more alerts about it until its code changes.

    Only a pair that is failing now (not OK, NOTYET or DEPEND), and is neither
    acknowledged nor inhibited already, can be acknowledged. The
    acknowledgement ends by itself when the check recovers or changes to
    another code (unless the alert plan keeps state across those codes), or
    by hand with `survivor unack`. No clear notice is sent for an
    acknowledged problem.
    """,
)


unack = pair_command(
    "unack",
    """Remove an acknowledgement and re-run the check.

    The check is rescheduled first, so alerting resumes from a fresh result
    instead of the one that was acknowledged.
    """,
)


@click.command(epilog=SELECTION_EPILOG)
@selection_options
@comment_option
@until_option(required=False)
@click.pass_obj
@friendly_errors
def inhibit(
    app: App,
    targets: tuple[str, ...],
    groups: tuple[str, ...],
    dry_run: bool,
    comment: str | None,
    until: str | None,
) -> None:
    """Silence all notifications of a pair: a maintenance switch.

    Unlike an acknowledgement, an inhibition survives code changes and
    recoveries, and may be set while the check is OK. It lasts until
    `survivor uninhibit`, or until --until TIME. Inhibiting an inhibited pair
    replaces the old inhibition (to extend or shorten a maintenance window).
    Checks keep running and recording history meanwhile.
    """
    from survivor.actions import pairs

    when = now()
    end = None if until is None else parse_until_text(app, until, when)
    apply_each(
        app,
        (targets, groups, dry_run),
        lambda op, h, c: pairs.inhibit(op, h, c, comment=comment, until=end, now=when),
    )


uninhibit = pair_command(
    "uninhibit",
    """Remove an inhibition and re-run the check, so alerting resumes on a fresh result.""",
)


escalate = pair_command(
    "escalate",
    """Make the next alert of a failing pair use the next rung of its escalation ladder.

    Needs an outstanding problem and an alert plan with a schedule in effect;
    refused with "Already at maximum escalation level" on the last rung. The
    daemon sends the escalated alert at its next alert tick, without waiting
    for the plan's pacing. Any change of the check's code resets it.
    """,
)


reschedule = pair_command(
    "reschedule",
    """Run a check at once instead of waiting for its schedule.

    The running daemon starts the check within seconds of the command (or
    when it next starts); the result updates state and history like any
    scheduled run. It is an extra run: the regular schedule goes on as
    before. Use `survivor check` to run a check without touching state.
    """,
)


@click.command(epilog=TARGET_HELP)
@target_argument
@comment_option
@click.pass_obj
@friendly_errors
def fix(app: App, target: str, comment: str | None) -> None:
    """Run the check's fix now and print its result.

    Runs in this process, whatever the check's status and even if it is
    acknowledged or inhibited, under the same fix lock as the daemon's
    automatic fixes: if another fix holds the lock, nothing runs. When the fix
    succeeds while the check is failing, the check is rescheduled so the next
    result shows whether it worked. Exits 0 when the fix reported OK, 1
    otherwise.
    """
    from survivor.actions import pairs
    from survivor.alerts.fixes import FixRunner
    from survivor.clock import SystemClock
    from survivor.proc.modules import runner_for

    host, check = parse_target(target)
    assert check is not None
    op = operator(app)
    runner = FixRunner(runner_for(op.config), op.state, op.history, SystemClock())
    done = pairs.fix(op, host, check, comment=comment, runner=runner)
    if not done.outcome.ok:
        raise click.ClickException(done.message)
    click.echo(done.message)


COMMANDS = [ack, unack, inhibit, uninhibit, escalate, reschedule, fix]
