"""Read commands: status and history. They read state files only and never lock."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from survivor.cli.app import App, echo_json, friendly_errors, parse_target


def _age(iso: object, now: float) -> str:
    from survivor.clock import parse_iso

    if not isinstance(iso, str):
        return "never"
    try:
        secs = now - parse_iso(iso).timestamp()
    except ValueError:
        return "?"
    if secs < 0:
        return "in " + _span(-secs)
    return _span(secs) + " ago"


def _span(secs: float) -> str:
    secs = int(secs)
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def daemon_summary(app: App, now: float) -> tuple[dict[str, Any], list[str]]:
    """daemon.json plus whether the pid still holds the lock, and lines for humans."""
    from survivor.errors import StateError
    from survivor.fsio import read_pid
    from survivor.state import read_document

    state_dir = app.config.instance.state_dir
    pid = read_pid(state_dir / "survivor.pid")
    try:
        doc = read_document(state_dir / "daemon.json") or {}
    except StateError as err:
        doc = {"error": str(err)}
    lines: list[str] = []
    if pid is None:
        lines.append(
            "daemon: NOT RUNNING"
            + (f" (last seen {_age(doc.get('updated'), now)})" if doc.get("updated") else "")
        )
    else:
        cfg = doc.get("config") or {}
        heartbeat = _age(doc.get("updated"), now)
        lines.append(
            f"daemon: running, pid {pid}, generation {cfg.get('generation', '?')}, "
            f"heartbeat {heartbeat}"
        )
        if cfg.get("stale"):
            lines.append(
                "config: CHANGED ON DISK since it was loaded; run `survivor reload` to apply it"
            )
        last = doc.get("last_reload") or {}
        if last.get("ok") is False:
            lines.append(
                f"config: last reload FAILED {_age(last.get('at'), now)}; still running "
                "the previous config:"
            )
            lines.extend(f"  {e}" for e in last.get("errors", [])[:10])
        health = doc.get("health") or {}
        if health.get("disk") not in (None, "ok"):
            lines.append(
                f"disk: FAILING since {health.get('failing_since')}: "
                f"{health.get('last_disk_error')}"
            )
    doc = {**doc, "running": pid is not None, "pid_alive": pid}
    return doc, lines


@click.command()
@click.argument("target", required=False, metavar="[HOST[/CHECK]]")
@click.option("--problems", is_flag=True, help="Only check@host pairs that are not OK.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@friendly_errors
def status(app: App, target: str | None, problems: bool, as_json: bool) -> None:
    """Show the daemon's health and the status of checks, from the state files.

    Without arguments: every check@host pair. HOST shows one host, HOST/CHECK
    one pair. Works whether or not the daemon runs; says when its config on
    disk is newer than the one it runs.
    """
    from survivor.errors import StateError
    from survivor.model import ReturnCode
    from survivor.state import CheckState

    now = time.time()
    config = app.config
    host_filter, check_filter = (
        (None, None) if target is None else parse_target(target, need_check=False)
    )
    store = app.state_store()
    daemon_doc, daemon_lines = daemon_summary(app, now)
    rows: list[dict[str, Any]] = []
    for check, host in config.pairs():
        if host_filter and host.name != host_filter:
            continue
        if check_filter and check.name != check_filter:
            continue
        try:
            state = store.read_check(host.name, check.name)
            error = None
        except StateError as err:
            state, error = None, str(err)
        st = state or CheckState()
        if problems and st.rc in (ReturnCode.OK, ReturnCode.NOTYET):
            continue
        row = {"host": host.name, "check": check.name, **st.to_dict()}
        if error:
            row["error"] = error
        rows.append(row)
    if target and not rows and not problems:
        raise click.ClickException(f"nothing configured matches {target!r}")
    rows.sort(key=lambda r: (r["rc"] in (0, 7), r["host"], r["check"]))
    if as_json:
        echo_json({"daemon": daemon_doc, "checks": rows})
        return
    for line in daemon_lines:
        click.echo(line)
    if not rows:
        click.echo("no problems" if problems else "no checks")
        return
    width_h = max(len(r["host"]) for r in rows)
    width_c = max(len(r["check"]) for r in rows)
    for r in rows:
        since = _age(r["since"], now) if r["since"] else ""
        last = _age(r["last_start"], now)
        extra = f" [{r['scalar']:g}]" if isinstance(r["scalar"], int | float) else ""
        err = f" (state unreadable: {r['error']})" if "error" in r else ""
        click.echo(
            f"{r['host']:<{width_h}}  {r['check']:<{width_c}}  {r['code']:<9} "
            f"x{r['consecutive']:<3} since {since:<9} last {last:<9}{extra} "
            f"{r['comment'][:80]}{err}"
        )


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

    from survivor.history import BadLine

    host, check = parse_target(target)
    assert check is not None
    since_dt = _parse_since(since)
    store = app.history_store()
    bad: list[BadLine] = []
    records = [
        r
        for r in store.read(host, check, kind, since=since_dt, bad=bad)
        if fp is None or r.get("fp") == fp
    ]
    if limit > 0:
        records = records[-limit:]
    for b in bad:
        click.echo(
            f"warning: {b.path}:{b.lineno}: unparsable line skipped: {b.text[:80]}", err=True
        )
    if as_json:
        for r in records:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    if not records:
        click.echo(f"no {kind} history for {host}/{check}" + (f" since {since}" if since else ""))
        return
    last_fp: object = object()
    for r in records:
        if r.get("fp") != last_fp and "fp" in r:
            click.echo(f"--- incarnation fp {r.get('fp')} (config generation {r.get('gen')}) ---")
            last_fp = r.get("fp")
        click.echo(_history_line(r))


def _history_line(r: dict[str, Any]) -> str:
    t = r.get("t", "?")
    if "rc" in r and "command" not in r:
        scalar = "" if r.get("scalar") is None else f" [{r['scalar']:g}]"
        dur = f" ({r['duration_ms']} ms)" if r.get("duration_ms") is not None else ""
        return f"{t}  {r.get('code', r['rc']):<9}{scalar} {r.get('comment', '')}{dur}"
    rest = {k: v for k, v in r.items() if k not in ("v", "t")}
    return f"{t}  " + " ".join(f"{k}={v}" for k, v in rest.items())


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


COMMANDS = [status, history]
