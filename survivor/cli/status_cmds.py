"""Read commands: status (and status --watch) and history. They read files only and never lock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from survivor.cli.app import (
    App,
    echo_json,
    echo_json_rows,
    friendly_errors,
    parse_target,
    say,
    select_pairs,
    visible,
)

if TYPE_CHECKING:
    from survivor.clock import Clock
    from survivor.downtime import Hold
    from survivor.views.rows import CheckRow
    from survivor.views.snapshot import Snapshot


@click.command()
@click.argument("targets", nargs=-1, metavar="[SELECTION...]")
@click.option(
    "-g",
    "--group",
    "groups",
    metavar="G",
    multiple=True,
    help="Only the hosts of group or class G (may be repeated).",
)
@click.option(
    "--problems",
    is_flag=True,
    help="Only check@host pairs that need attention; exit 0 when nothing does, 1 when a "
    "check is failing or the daemon is not healthy (not running, heartbeat stale, disk failing).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--watch",
    is_flag=True,
    help="Keep the view on screen, redrawn every --interval seconds, until Ctrl-C.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between redraws with --watch.",
)
@click.pass_obj
@friendly_errors
def status(
    app: App,
    targets: tuple[str, ...],
    groups: tuple[str, ...],
    problems: bool,
    as_json: bool,
    watch: bool,
    interval: float,
) -> None:
    """Show the daemon's health and the status of checks, from the state files.

    Without arguments: every check@host pair, problems first. A SELECTION
    narrows it: HOST (its checks), HOST/CHECK (one pair, with its ack,
    inhibition and alert state), '*/CHECK' (that check on every host), or
    --group G (a group or class); several may be given. Works whether or not
    the daemon runs; says when its config on disk is newer than the one it
    runs. With --watch the view
    stays on screen (cleared and redrawn on a terminal, repeated otherwise)
    until Ctrl-C.

    Exit status: 0; with --problems (for scripts and cron), 0 when nothing
    needs attention and 1 when a check is failing or the daemon is not healthy.
    """
    from survivor.clock import SystemClock

    if watch and as_json:
        raise click.UsageError("--watch and --json do not go together")
    selected = select_pairs(app, targets, groups) if targets or groups else None
    one = selected[0] if selected is not None and len(selected) == 1 else None
    view = StatusQuery(app, selected, problems)
    clock = SystemClock()
    if watch:
        watch_status(view, clock, interval)
        return
    import gc

    # One read, then exit: the cyclic collector walking 20,000 rows' documents again and
    # again while they are made took a sixth of `status` and a fifth of --json, and
    # none of them is garbage. (--watch above keeps it.)
    gc.disable()
    now = clock.now()
    snap, rows = view.read(now)
    if as_json:
        daemon = {
            **(snap.daemon_doc or {}),
            "running": snap.daemon.running,
            "pid_alive": snap.daemon.pid is not None,
            "live_pid": snap.daemon.pid,
            "summary": snap.daemon.to_dict(now),
        }
        if snap.daemon.error:
            daemon["error"] = snap.daemon.error
        if one is not None:
            checks = [r.to_dict(now) for r in rows]
            for row in checks:
                row["alerting"] = pair_alerting(app, *one)
                hold = view.held.get(one)
                row["alerting"]["downtime"] = None if hold is None else hold.describe()
            echo_json({"daemon": daemon, "checks": checks})
        else:  # 20,000 rows as one structure took 171 MB: a row at a time, same text
            echo_json_rows({"daemon": daemon}, "checks", (r.to_dict(now) for r in rows))
    else:
        print_status(app, snap, rows, problems, one, view.held, now)
    if problems and (rows or snap.daemon.level == "problem"):
        raise SystemExit(1)  # something needs attention: for scripts, after the output


def print_status(
    app: App,
    snap: Snapshot,
    rows: list[CheckRow],
    problems: bool,
    one: tuple[str, str] | None,
    held: Mapping[tuple[str, str], Any],
    now: datetime,
) -> None:
    for line in snap.daemon.lines(now):
        say(line)
    if not rows:
        click.echo("no problems" if problems else "no checks")
        return
    from survivor.views.snapshot import status_lines

    click.echo("\n".join(visible(line) for line in status_lines(snap, rows)))  # one write
    if one is not None:
        for pair_row in rows:  # one pair: its long output in full, as the plugin wrote it
            if pair_row.state.long_output:
                click.echo("  long output:")
                for text in pair_row.state.long_output.splitlines():
                    say(f"    {text}")
        hold = held.get(one)
        if hold is not None:
            say(f"  in {hold.describe()}: alerts held")
        for line in pair_alerting_lines(pair_alerting(app, *one), now):
            say(line)


def pair_alerting(app: App, host: str, check: str) -> dict[str, Any]:
    """ack, inhibit, escalate and alert state of one pair, each None when absent or unreadable."""
    from survivor.errors import StateError
    from survivor.model.documents import Ack, AlertState, Escalation, Inhibit

    store = app.state_store()
    out: dict[str, Any] = {}
    for name, cls in (
        ("ack", Ack),
        ("inhibit", Inhibit),
        ("escalate", Escalation),
        ("alert", AlertState),
    ):
        try:
            doc = store.read_pair_doc(host, check, name)
            out[name] = None if doc is None else cls.from_dict(doc).to_dict()
        except StateError as err:
            out[name] = {"error": str(err)}
    return out


def pair_alerting_lines(info: dict[str, Any], now: datetime) -> list[str]:
    from survivor.clock import parse_time
    from survivor.views.rows import age_text

    def ago(value: Any) -> str:
        return age_text(parse_time(value), now)

    lines: list[str] = []
    ack, inhibit, esc, alert = (info.get(k) for k in ("ack", "inhibit", "escalate", "alert"))
    if ack:
        lines.append(
            f"  acknowledged by {ack.get('user')} {ago(ack.get('at'))}: {ack.get('comment')}"
        )
    if inhibit:
        until = inhibit.get("until") or "uninhibit"
        lines.append(
            f"  inhibited by {inhibit.get('user')} until {until}: {inhibit.get('comment')}"
        )
    if esc:
        lines.append(
            f"  escalation to level {esc.get('level')} asked by {esc.get('user')}: "
            f"{esc.get('comment')}"
        )
    if alert:
        to = (
            ", ".join(
                f"{r.get('person')} ({r.get('via')})" for r in alert.get("last_recipients") or []
            )
            or "nobody yet"
        )
        flag = ", ESCALATED" if alert.get("escalated") else ""
        lines.append(
            f"  alerts: {alert.get('alerts_sent')} sent, {alert.get('fixes_tried')} fixes "
            f"tried{flag}; last {ago(alert.get('last_alert'))} to {to}"
        )
    if not lines:
        lines.append("  no alerts sent, not acknowledged or inhibited")
    return lines


class StatusQuery:
    """The configured pairs a `status` invocation asks about, read fresh each time."""

    def __init__(
        self, app: App, selected: list[tuple[str, str]] | None, problems_only: bool
    ) -> None:
        """`selected`: the (host, check) pairs of a selection; None: every configured pair."""
        config = app.config
        self.config = config
        self.state_dir = config.instance.state_dir
        self.instance = config.instance.name
        self.problems_only = problems_only
        self.pairs = (
            {(h.name, c.name) for c, h in config.pairs()} if selected is None else set(selected)
        )
        self.hosts = None if selected is None else {h for h, _ in selected}
        self.held: dict[tuple[str, str], Hold] = {}  # pairs in downtime at the last read

    def read(self, now: datetime) -> tuple[Snapshot, list[CheckRow]]:
        from survivor.views.snapshot import read_snapshot

        hosts = self.hosts
        snap = read_snapshot(self.state_dir, now, configured=self.pairs, hosts=hosts)
        rows = [r for r in snap.rows if r.configured and (not self.problems_only or r.problem)]
        return snap, self.mark_downtime(rows, now)

    def mark_downtime(self, rows: list[CheckRow], now: datetime) -> list[CheckRow]:
        """Flag the rows whose pair is in scheduled downtime now."""
        import dataclasses

        from survivor.clock import local_zone
        from survivor.downtime import holds
        from survivor.store.layout import StateLayout
        from survivor.store.state import read_downtimes

        found, _ = read_downtimes(StateLayout(self.state_dir))
        held = holds(self.config, found, now, local_zone(self.config.instance.timezone))
        self.held = held
        if not held:
            return rows
        return [
            dataclasses.replace(r, downtime=True) if (r.host, r.check) in held else r for r in rows
        ]


def watch_screen(view: StatusQuery, now: datetime, size: tuple[int, int] | None) -> str:
    """One frame of `status --watch`: header, daemon health, counts, then problems first.

    `size` (columns, lines) cuts lines and rows to fit a terminal; None: no cut.
    """
    from survivor.views.rows import count_by_code
    from survivor.views.snapshot import queue_totals, status_lines

    snap, rows = view.read(now)
    counts = ", ".join(f"{n} {code}" for code, n in count_by_code(rows).items()) or "none"
    queue = queue_totals(snap.queue)
    header = [
        f"survivor {view.instance}: {now.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}"
        "  (Ctrl-C to quit)",
        *snap.daemon.lines(now),
        f"checks: {len(rows)} ({counts}); queue: {queue['running']} running, "
        f"{queue['queued']} queued",
        "",
    ]
    width = size[0] if size else 0
    body = status_lines(snap, rows, width=width) or [
        "no problems" if view.problems_only else "no checks"
    ]
    if size is not None:
        room = max(1, size[1] - len(header) - 1)
        if len(body) > room:
            hidden = len(body) - (room - 1)
            body = [*body[: room - 1], f"... {hidden} more (a taller terminal shows them)"]
        header = [line[:width] if width else line for line in header]
    return "\n".join(visible(line) for line in header + body)


CLEAR = "\x1b[H\x1b[2J"


def watch_status(view: StatusQuery, clock: Clock, interval: float) -> None:
    """Redraw until Ctrl-C, which ends it quietly with exit 0."""
    import shutil
    import sys
    import threading

    tty = sys.stdout.isatty()
    never = threading.Event()
    try:
        while True:
            term = shutil.get_terminal_size()
            size = (term.columns, term.lines) if tty else None
            frame = watch_screen(view, clock.now(), size)
            if tty:
                click.echo(CLEAR + frame, nl=True)
            else:
                click.echo(frame + "\n")
            sys.stdout.flush()
            clock.sleep_until(clock.monotonic() + interval, never)
    except KeyboardInterrupt:
        if tty:
            click.echo("")
    except BrokenPipeError:
        # The reader went away (`status --watch | head`): nothing left to say.
        sys.stderr.close()


@click.command()
@click.argument("target", metavar="HOST/CHECK")
@click.option("--since", help="Only records at or after this time (ISO 8601 or YYYY-MM-DD).")
@click.option(
    "--kind",
    type=click.Choice(["check", "alert", "fix", "command"]),
    default="check",
    show_default=True,
    help="Which history of the pair.",
)
@click.option("--fp", help="Only records of this incarnation (fingerprint).")
@click.option("--limit", type=int, default=0, help="Only the last N records (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
@click.pass_obj
@friendly_errors
def history(
    app: App, target: str, since: str | None, kind: str, fp: str | None, limit: int, as_json: bool
) -> None:
    """Show what a check@host recorded over time, oldest first.

    History outlives config changes: each record carries the fingerprint
    (`fp`) of the check definition that produced it, and a line marks where
    the incarnation changes. Archived (compressed) months are read too.
    """
    import json

    from survivor.store.history import BadLine

    host, check = parse_target(target)
    assert check is not None
    since_dt = _parse_since(since)
    store = app.history_store()
    bad: list[BadLine] = []

    def wanted(r: dict[str, Any]) -> bool:
        return fp is None or r.get("fp") == fp

    # --limit reads backwards from the newest month; otherwise records stream, a line at a
    # time (a year of one pair is half a million records: never all in memory).
    records: Iterable[dict[str, Any]] = (
        store.read_latest(host, check, kind, limit, since=since_dt, keep=wanted, bad=bad)
        if limit > 0
        else (r for r in store.read(host, check, kind, since=since_dt, bad=bad) if wanted(r))
    )
    shown = 0
    last_fp: object = object()
    for r in records:
        shown += 1
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False))
            continue
        if r.get("fp") != last_fp and "fp" in r:
            click.echo(f"--- incarnation fp {r.get('fp')} (config generation {r.get('gen')}) ---")
            last_fp = r.get("fp")
        say(_history_line(r))
    for b in bad:
        say(f"warning: {b.path}:{b.lineno}: unparsable line skipped: {b.text[:80]}", err=True)
    if not shown and not as_json:
        click.echo(f"no {kind} history for {host}/{check}" + (f" since {since}" if since else ""))


def _history_line(r: dict[str, Any]) -> str:
    t = r.get("t", "?")
    if "via" in r and "recipients" in r:
        return _alert_line(r)
    if "rc" in r and "command" not in r:
        scalar = "" if r.get("scalar") is None else f" [{_scalar(r['scalar'])}]"
        dur = f" ({r['duration_ms']} ms)" if r.get("duration_ms") is not None else ""
        return f"{t}  {r.get('code', r['rc']):<9}{scalar} {r.get('comment', '')}{dur}"
    rest = {k: v for k, v in r.items() if k not in ("v", "t")}
    return f"{t}  " + " ".join(f"{k}={v}" for k, v in rest.items())


def _scalar(value: Any) -> str:
    from survivor.model.words import scalar_text

    return scalar_text(value) if isinstance(value, int | float) else str(value)


def _alert_line(r: dict[str, Any]) -> str:
    """One delivery: what was sent, at which try, by which method, to whom, and whether it went."""
    people = ", ".join(
        f"{p.get('person', '?')} <{p.get('address', '?')}>"
        for p in r.get("recipients") or []
        if isinstance(p, dict)
    )
    what = "clear notice" if r.get("clear") else f"try {r.get('try', '?')}"
    if r.get("digest"):
        what = "in a digest"
    parts = [f"{r.get('t', '?')}  {r.get('code', r.get('rc', '?')):<9}", what]
    if r.get("escalated"):
        parts.append("escalated")
    parts.append(f"via {r.get('via')} to {people or 'nobody'}:")
    parts.append("ok" if r.get("ok") else f"FAILED ({r.get('error') or 'no reason recorded'})")
    fix = r.get("fix")
    if isinstance(fix, dict):
        parts.append(f"[fix {fix.get('code', '?')}: {fix.get('comment', '')}]")
    return " ".join(parts)


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    from survivor.clock import parse_iso

    try:
        return parse_iso(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time (use e.g. 2026-11-24 or 2026-11-24T10:00Z)",
            param_hint="--since",
        ) from None


COMMANDS = [status]  # `history` is routed by survivor.cli.history_cmds
