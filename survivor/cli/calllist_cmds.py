"""`survivor calllist show|substitute`: who gets alerts from a call list, and stand-ins."""

from __future__ import annotations

from typing import Any

import click

from survivor.cli.app import App, echo_json, friendly_errors
from survivor.cli.ops_cmds import comment_option, now, operator, parse_until_text, until_option


@click.group()
def calllist() -> None:
    """Call lists: who is on call, who gets the next alert, and temporary substitutes.

    Simple lists hand each alert to the next member, rotating lists have one
    person on call who changes at the times of their rotation schedule, and
    broadcast lists alert every member. A substitution puts one person in
    another's place until a given time.
    """


@calllist.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the call list as one JSON object.")
@click.pass_obj
@friendly_errors
def show(app: App, name: str, as_json: bool) -> None:
    """Show a call list: members, who an alert would go to now, and substitutions.

    Reads the call list's state only; the rotation shown is computed for the
    present moment, and the daemon stores it when it next alerts through the
    list.
    """
    from survivor.actions.calllists import show_calllist

    config = app.config
    view = show_calllist(config, app.state_store(), name, now=now())
    if as_json:
        echo_json(view)
        return
    for line in describe(view, config.instance.timezone):
        click.echo(line)


def describe(view: dict[str, Any], timezone: str | None) -> list[str]:
    """The call list for a human, one fact per line."""
    from survivor.clock import local_zone, parse_iso

    tz = local_zone(timezone)

    def local(iso: str) -> str:
        return parse_iso(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

    kind = view["kind"]
    how = f"rotating at the times of {view['rotate']}" if kind == "rotating" else kind
    alias = f", alias of {view['alias_of']}" if view["alias_of"] else ""
    lines = [f"call list {view['name']} ({how}, via {view['via']}{alias})"]
    lines.append(f"  members: {', '.join(view['members']) or '(none)'}")
    if kind == "rotating":
        if view["rotations_due"]:
            n = view["rotations_due"]
            since = f" (rotated {n} time{'s' if n > 1 else ''} since the last alert)"
        elif view["last_rotation"]:
            since = f" (since {local(view['last_rotation'])})"
        else:
            since = " (the first alert through the list starts the rotation)"
        lines.append(f"  on call now: {view['on_call']}{since}")
    elif kind == "simple" and view["last_notified"]:
        lines.append(f"  last notified: {view['last_notified']}")
    label = "an alert now goes to" if kind != "simple" else "the next alert goes to"
    who = [f"{r['person']} <{r['address']}>" for r in view["recipients_now"]]
    lines.append(f"  {label}: {', '.join(who) or 'nobody'}")
    lines.extend(f"  skipped: {why}" for why in view["skipped"])
    subs = view["substitutions"]
    if subs:
        lines.append("  substitutions:")
        for s in subs:
            state = "" if s["active"] else " (expired)"
            by = f" (by {s['by']})" if s.get("by") else ""
            lines.append(f"    {s['person']} for {s['for']} until {local(s['until'])}{by}{state}")
    else:
        lines.append("  substitutions: none")
    return lines


@calllist.command()
@click.argument("name")
@click.argument("person")
@click.option(
    "--for",
    "for_person",
    metavar="PERSON",
    required=True,
    help="The member PERSON stands in for.",
)
@until_option(required=True)
@comment_option
@click.pass_obj
@friendly_errors
def substitute(
    app: App, name: str, person: str, for_person: str, until: str, comment: str | None
) -> None:
    """Let PERSON receive the alerts of another member of call list NAME until a time.

    The member given with --for must be on the list, and PERSON must be a
    defined person with an address for the list's alert method. While the
    substitution lasts, PERSON gets every alert the member would have got
    (their turn in a simple list, their on-call period in a rotating one). A
    new substitution for the same member replaces the earlier one. Recorded
    in the call list's history with your Unix user name.
    """
    from survivor.actions.calllists import substitute

    when = now()
    end = parse_until_text(app, until, when)
    message = substitute(
        operator(app), name, person, for_person=for_person, until=end, comment=comment, now=when
    )
    click.echo(message)


COMMANDS = [calllist]
