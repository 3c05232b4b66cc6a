"""`survivor queue`: what is queued and running per host, and `queue cancel ID`.

Both read queue.json (rewritten by the daemon every second) and the check
states; `cancel` also drops a request file the daemon applies within about a
second (DESIGN.md §5 requests/) and records the operator's command in the
history of every host the item covers. Nothing here talks to the daemon any
other way.

Exit codes of `queue cancel`: 0 the item is gone from the queue; 1 it could
not be asked (unknown or finished ID, no daemon, unreadable state); 3 the
request was made but the item was still listed when --timeout ran out.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from survivor.cli.app import App, echo_json, friendly_errors, say

if TYPE_CHECKING:
    from survivor.clock import Clock
    from survivor.views.rows import CheckRow, QueueRow
    from survivor.views.snapshot import Snapshot

EXIT_STILL_QUEUED = 3


def operator_name() -> str:
    """The real user (from the uid, not $USER), and who ran sudo when root does it."""
    import getpass
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = getpass.getuser()
    sudo_user = os.environ.get("SUDO_USER")
    if os.getuid() == 0 and sudo_user and sudo_user != user:
        return f"{user} (sudo by {sudo_user})"
    return user


@click.group(invoke_without_command=True)
@click.option("--host", "host", metavar="HOST", help="Only this host (and every check it has).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def queue(ctx: click.Context, host: str | None, as_json: bool) -> None:
    """Show queued and running work per host, and what ran last.

    Read from queue.json, which the daemon rewrites every second, and from
    each check's state. An item covering several hosts (a batched check) is
    listed under each of them. `survivor queue cancel ID` cancels one item.
    """
    if ctx.invoked_subcommand is not None:
        return
    from survivor.clock import SystemClock
    from survivor.model.names import is_safe_name
    from survivor.views.snapshot import read_snapshot

    app: App = ctx.obj
    if host is not None and not is_safe_name(host):
        raise click.BadParameter(f"{host!r} is not a valid host name", param_hint="--host")
    config = app.config
    configured = {(h.name, c.name) for c, h in config.pairs()}
    now = SystemClock().now()
    snap = read_snapshot(
        config.instance.state_dir,
        now,
        configured=configured,
        hosts=None if host is None else {host},
    )
    hosts = [host] if host is not None else snap.hosts()
    if host is not None and not snap.rows_of(host) and not snap.queue_of(host):
        raise click.ClickException(f"no host named {host!r} in {app.config_path} or the state")
    report = [host_report(snap, h) for h in hosts]
    if as_json:
        echo_json(
            {
                "now": now,
                "daemon": snap.daemon.to_dict(now),
                "queue_updated": None if snap.queue_doc is None else snap.queue_doc.get("updated"),
                "hosts": report,
                "errors": list(snap.errors),
            }
        )
        return
    for line in queue_header(snap):
        say(line)
    if not report:
        click.echo("no hosts")
    for entry in report:
        for line in host_lines(entry, every_check=host is not None):
            say(line)


def host_report(snap: Snapshot, host: str) -> dict[str, Any]:
    now = snap.now
    ran = sorted(
        (r for r in snap.rows_of(host) if r.last_start is not None),
        key=_last_start,
        reverse=True,
    )
    return {
        "host": host,
        "items": [q.to_dict(now) for q in snap.queue_of(host)],
        "ran": [_ran(r, now) for r in ran],
        "never_ran": sorted(r.check for r in snap.rows_of(host) if r.last_start is None),
    }


def _last_start(row: CheckRow) -> float:
    return row.last_start.timestamp() if row.last_start else 0.0


def _ran(row: CheckRow, now: datetime) -> dict[str, Any]:
    from survivor.views.rows import age_text, iso

    return {
        "check": row.check,
        "last_start": iso(row.last_start),
        "last_age": age_text(row.last_start, now),
        "duration_ms": row.state.duration_ms,
        "code": row.code,
    }


def queue_header(snap: Snapshot) -> list[str]:
    from survivor.views.snapshot import queue_totals, queue_updated

    now = snap.now
    lines = snap.daemon.lines(now)[:1]
    totals = queue_totals(snap.queue)
    if snap.queue_doc is None:
        lines.append("queue.json: absent (the daemon has not run with this state directory)")
    else:
        updated = queue_updated(snap.queue_doc, now)
        lines.append(
            f"queue.json: updated {updated}: {totals['running']} running, {totals['queued']} queued"
        )
        if not snap.daemon.running and snap.queue:
            lines.append(
                "  the daemon is NOT RUNNING: these items are what it left behind; none runs"
            )
    lines.extend(f"warning: {e}" for e in snap.errors)
    return lines


def host_lines(entry: dict[str, Any], *, every_check: bool) -> list[str]:
    items: list[dict[str, Any]] = entry["items"]
    ran: list[dict[str, Any]] = entry["ran"]
    running = sum(1 for i in items if i["state"] == "running")
    counts = [f"{n} {word}" for n, word in ((running, "running"), (len(items) - running, "queued"))]
    state = ", ".join(c for c in counts if not c.startswith("0 ")) or "idle"
    lines = [f"{entry['host']}: {state}"]
    for i in items:
        when = "since" if i["state"] == "running" else "planned"
        worker = f"  worker {i['worker']}" if i["worker"] else ""
        pid = f"  pid {i['pid']}" if i["pid"] else ""
        lines.append(
            f"  {i['state']:<8} {i['id']:<10} {i['kind']:<6} {i['check']:<16} "
            f"{when} {i['since_age']}{worker}{pid}  ({i['reason']})"
        )
    shown = ran if every_check else ran[:1]
    if shown:
        label = "ran" if every_check else "last ran"
        for n, r in enumerate(shown):
            lines.append(
                f"  {label if n == 0 else ' ' * len(label)}: {r['check']} {r['last_age']} "
                f"({r['duration_ms']} ms, {r['code']})"
            )
    elif not every_check or not entry["never_ran"]:
        lines.append("  nothing has run yet")
    if every_check and entry["never_ran"]:
        lines.append(f"  never ran: {', '.join(entry['never_ran'])}")
    return lines


# --------------------------------------------------------------------------- cancel


@queue.command()
@click.argument("item_id", metavar="ID")
@click.option(
    "-m", "--comment", default="", metavar="TEXT", help="Why; kept in the command history."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the item to leave the queue (0: do not wait).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable outcome.")
@click.pass_obj
@friendly_errors
def cancel(app: App, item_id: str, comment: str, timeout: float, as_json: bool) -> None:
    """Cancel a queued item, or kill a running one, by its ID (see `survivor queue`).

    The daemon applies the request within about a second: a queued item is
    dropped, a running module's process group is killed. The command is kept
    in the command history of every host the item covers, with your user
    name. Exit 0 once the item has left the queue, 1 if it cannot be asked
    (unknown or finished ID, no daemon), 3 if it is still listed after
    --timeout seconds.
    """
    from survivor.clock import SystemClock
    from survivor.model.names import is_safe_name

    if not is_safe_name(item_id):
        raise click.BadParameter(f"{item_id!r} is not a queue item ID", param_hint="ID")
    clock = SystemClock()
    item = find_item(app, item_id)
    user = operator_name()
    now = clock.now()
    submit_cancel(app, item, user, comment, now)
    gone = wait_gone(app, item_id, clock, timeout)
    outcome = {
        "id": item_id,
        "kind": item.kind,
        "check": item.check,
        "hosts": list(item.hosts),
        "was": item.state,
        "gone": gone,
        "user": user,
    }
    if as_json:
        echo_json(outcome)
    what = f"{item.kind} {item.check} on {', '.join(item.hosts) or '?'}"
    if gone:
        verb = "killed" if item.state == "running" else "cancelled"
        if not as_json:
            click.echo(f"{item_id}: {verb} ({what})")
        return
    if timeout == 0:
        if not as_json:
            click.echo(f"{item_id}: cancel requested ({what}); not waiting")
        return
    click.echo(
        f"survivor: {item_id}: cancel requested, but the item is still in the queue after "
        f"{timeout:g} s; the daemon may be busy (see `survivor queue` and its log)",
        err=True,
    )
    click.get_current_context().exit(EXIT_STILL_QUEUED)


def find_item(app: App, item_id: str) -> QueueRow:
    """The item in queue.json, or a clear error saying why it cannot be cancelled."""
    from survivor.clock import SystemClock
    from survivor.views.snapshot import read_snapshot

    state_dir = app.config.instance.state_dir
    snap = read_snapshot(state_dir, SystemClock().now(), hosts=())
    if snap.queue_doc is None:
        problem = next((e for e in snap.errors if "queue.json" in e), None)
        raise click.ClickException(
            problem or f"no {state_dir / 'queue.json'}: the daemon has not run with this state"
        )
    item = next((q for q in snap.queue if q.id == item_id), None)
    if item is None:
        raise click.ClickException(
            f"no queued or running item {item_id!r} in {state_dir / 'queue.json'} "
            "(it may have finished already; `survivor queue` lists the current ones)"
        )
    if not snap.daemon.running:
        raise click.ClickException(
            f"the daemon is not running: item {item_id!r} is left over in queue.json "
            "and is not running; there is nothing to cancel"
        )
    return item


def submit_cancel(app: App, item: QueueRow, user: str, comment: str, now: datetime) -> None:
    """Drop the request for the daemon and record the command for every host of the item."""
    from survivor.model.documents import Request
    from survivor.model.names import is_safe_name

    stamp = now.strftime("%Y%m%dT%H%M%S")
    request = Request(
        id=f"{stamp}-cancel-{secrets.token_hex(3)}",
        action="cancel",
        user=user,
        at=now,
        check=item.check if is_safe_name(item.check) else None,
        target=item.id,
        comment=comment,
    )
    app.state_store().submit_request(request)
    history = app.history_store()
    record = {
        "user": user,
        "command": "queue cancel",
        "comment": comment,
        "item": item.id,
        "kind": item.kind,
        "was": item.state,
    }
    if is_safe_name(item.check):
        for host in item.hosts:
            if is_safe_name(host):
                history.append(host, item.check, "command", now, record)


def wait_gone(app: App, item_id: str, clock: Clock, timeout: float) -> bool:
    """Poll queue.json until the item is no longer listed, or `timeout` seconds pass."""
    import threading

    from survivor.views.rows import queue_rows
    from survivor.views.snapshot import read_pair_docs

    state_dir = app.config.instance.state_dir
    never = threading.Event()
    deadline = clock.monotonic() + timeout
    while True:
        docs = read_pair_docs(state_dir, ["queue"], [])
        rows, _ = queue_rows(docs.get("queue"))
        if "queue" in docs and all(r.id != item_id for r in rows):
            return True
        if clock.monotonic() >= deadline:
            return False
        clock.sleep_until(min(deadline, clock.monotonic() + 0.1), never)


COMMANDS = [queue]
