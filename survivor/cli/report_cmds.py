"""`survivor report`: availability of checks over a period, from history alone."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import click

from survivor.cli.app import App, echo_json, friendly_errors, say, select_pairs
from survivor.views.rows import span_text

CSV_FIELDS = (
    "host",
    "check",
    "ok_share",
    "warning_share",
    "problem_share",
    "other_share",
    "unknown_share",
    "downtime_seconds",
    "outages",
    "longest_outage_seconds",
    "mean_time_to_recover_seconds",
)


@click.command()
@click.argument("targets", nargs=-1, metavar="[SELECTION...]")
@click.option(
    "-g", "--group", "groups", metavar="G", multiple=True, help="The hosts of group or class G."
)
@click.option(
    "--since",
    help="Start of the period (ISO 8601, or YYYY-MM-DD; default: 30 days before --until).",
)
@click.option("--until", "until_text", help="End of the period (default: now).")
@click.option("--json", "as_json", is_flag=True, help="The full report as JSON, outages listed.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per check@host.")
@click.pass_obj
@friendly_errors
def report(
    app: App,
    targets: tuple[str, ...],
    groups: tuple[str, ...],
    since: str | None,
    until_text: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Availability of each check@host over a period, from its history alone.

    SELECTION is HOST/CHECK, HOST (all its checks), '*/CHECK' or --group G, as for the
    operator actions. Per pair: the share
    of time in OK, WARNING, PROBLEM and other codes; time no result covers (the
    daemon was down, the check not yet configured) is shown as unknown, never as
    OK: a result counts for at most twice its check's interval. Then the number
    of outages, the longest, and the mean time to recover. Time in downtime (the
    pair's `downtime add` ... `remove` records, and the recurring windows of the
    current config) is counted apart, outside the shares. Months are read from their
    summaries (written by `history archive`, or here when the history directory is
    writable; of the current month, a summary of what it held then, plus what came
    after), which give the same figures much faster.
    """
    from survivor.clock import SystemClock, local_zone
    from survivor.store.history import month_of
    from survivor.views.availability import pair_availability

    if as_json and as_csv:
        raise click.UsageError("--json and --csv do not go together")
    now = SystemClock().now()
    until = _when(until_text, "--until") if until_text else now
    start = _when(since, "--since") if since else until - timedelta(days=30)
    if start >= until:
        raise click.BadParameter("must be before --until", param_hint="--since")
    config = app.config
    store = app.history_store()
    tz = local_zone(config.instance.timezone)
    current = month_of(now)  # closed months get a summary if they lack one (and we may write)
    rows: list[dict[str, Any]] = []
    for host, check in select_pairs(app, targets, groups):
        r = pair_availability(store, config, (host, check), start, until, tz, None, current)
        rows.append({"host": host, "check": check, **r.to_dict()})
    if as_json:
        echo_json(rows)
    elif as_csv:
        click.echo(_csv(rows), nl=False)
    else:
        for line in _table(rows):
            say(line)


def _when(text: str, hint: str) -> datetime:
    from survivor.clock import parse_iso

    try:
        return parse_iso(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time; use ISO 8601 (2026-11-01T00:00:00Z) or a date (2026-11-01)",
            param_hint=hint,
        ) from None


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for r in rows:
        share = r["share"]
        writer.writerow(
            [
                r["host"],
                r["check"],
                share["OK"],
                share["WARNING"],
                share["PROBLEM"],
                share["other"],
                share["unknown"],
                r["downtime_seconds"],
                r["outages"],
                r["longest_outage_seconds"],
                r["mean_time_to_recover_seconds"],
            ]
        )
    return out.getvalue()


def _span(seconds: float | None) -> str:
    return "-" if seconds is None else span_text(seconds, tenths=True)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no checks"]
    width = max(len(f"{r['host']}/{r['check']}") for r in rows)
    head = (
        f"{'host/check':<{width}}  {'OK':>7} {'WARN':>7} {'PROB':>7} {'other':>7} "
        f"{'unknown':>7}  {'down':>6} {'outages':>7} {'longest':>8} {'MTTR':>8}"
    )
    lines = [head]
    for r in rows:
        s = r["share"]
        lines.append(
            f"{r['host'] + '/' + r['check']:<{width}}  "
            + " ".join(
                f"{100 * s[g]:6.2f}%" for g in ("OK", "WARNING", "PROBLEM", "other", "unknown")
            )
            + f"  {_span(r['downtime_seconds']):>6} {r['outages']:>7} "
            f"{_span(r['longest_outage_seconds']):>8} {_span(r['mean_time_to_recover_seconds']):>8}"
        )
    return lines


COMMANDS = [report]
