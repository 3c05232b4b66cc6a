"""Which check@host pairs are in scheduled downtime at a given time, and why.

Two sources: downtimes an operator added (`state/downtime/<id>.json`, a
`Downtime` with fixed pairs and a start and end) and recurring windows of the
config's `downtimes:` section (a selection and weekly windows, read in the
instance's zone). Pure: the documents, the config, `now` and `tz` are
arguments. The alert scheduler asks once per tick and holds the alerts of
every pair found here (`alertplan.decide(downtime=...)`); `status`, the
metrics and `downtime list` show the same.

`report_windows` answers the same question for a past period, from history
alone, for the availability report: a pair's operator downtimes from its
`downtime` / `downtime-remove` command records, and the recurring windows of
the *current* config (history records no config, so an earlier version of a
window is not known).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.model.config import Config, DowntimeDef
from survivor.model.documents import Downtime
from survivor.schedule import window_active, window_end, window_spans
from survivor.selection import SelectionError, parse_selection, resolve


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a pair's alerts are held: which downtime, by whom, until when (None: unknown)."""

    source: str  # "downtime ID" or "downtime window NAME"
    until: datetime | None
    comment: str = ""

    def describe(self) -> str:
        end = "" if self.until is None else f" until {utc_iso(self.until)}"
        why = f": {self.comment}" if self.comment else ""
        return f"{self.source}{end}{why}"


def holds(
    config: Config, downtimes: Iterable[Downtime], now: datetime, tz: tzinfo
) -> dict[tuple[str, str], Hold]:
    """(host, check) -> the Hold for every configured pair in downtime at `now`.

    When several downtimes cover a pair, the one ending last is named.
    """
    out: dict[tuple[str, str], Hold] = {}
    for dt in downtimes:
        if not dt.active(now):
            continue
        hold = Hold(f"downtime {dt.id} by {dt.user}", dt.end, dt.comment)
        for pair in dt.pairs:
            _keep_latest(out, pair, hold)
    for window in config.downtimes.values():
        if not window_active(window.windows, now, tz):
            continue
        hold = Hold(
            f"downtime window {window.name}", window_end(window.windows, now, tz), window.comment
        )
        for pair in window_pairs(config, window):
            _keep_latest(out, pair, hold)
    configured = {(h.name, c.name) for c, h in config.pairs()} if out else set()
    return {pair: hold for pair, hold in out.items() if pair in configured}


def window_pairs(config: Config, window: DowntimeDef) -> list[tuple[str, str]]:
    """The pairs a config window selects (the loader made sure it selects some)."""
    try:
        return resolve(config, parse_selection(window.select, window.groups))
    except SelectionError:
        return []


def _keep_latest(out: dict[tuple[str, str], Hold], pair: tuple[str, str], hold: Hold) -> None:
    old = out.get(pair)
    if old is None or (old.until is not None and (hold.until is None or hold.until > old.until)):
        out[pair] = hold


# --------------------------------------------------------------------------- past periods

Span = tuple[datetime, datetime]
ADDED = "downtime"  # the command records of actions/downtimes
REMOVED = "downtime-remove"


def report_windows(
    config: Config,
    pair: tuple[str, str],
    commands: Iterable[Mapping[str, Any]],
    since: datetime,
    until: datetime,
    tz: tzinfo,
) -> list[Span]:
    """The stretches of [since, until) a pair spent in downtime: merged, oldest first.

    `commands` are the pair's command records (any order; others are ignored):
    the operator downtimes they tell of, and the windows of `config.downtimes`
    that select the pair, read in `tz`. Overlaps are merged, so no second counts
    twice.
    """
    spans = operator_spans(commands)
    for window in config.downtimes.values():
        if pair in window_pairs(config, window):
            spans.extend(window_spans(window.windows, since, until, tz))
    return merge_spans(spans, since, until)


def operator_spans(commands: Iterable[Mapping[str, Any]]) -> list[Span]:
    """[from, to) of each operator downtime in a pair's command records.

    A downtime counts from its start, or from when it was added if that was later
    (alerts were not held before the file existed), to its end, or to its removal
    if that came first. A removal whose adding record is not there (pruned
    history) still has the downtime's start and end. Unmerged, unclipped.
    """
    found: dict[str, list[datetime]] = {}  # id -> [from, to]
    for record in commands:
        command, did = record.get("command"), record.get("downtime")
        t = parse_time(record.get("t"))
        start, end = parse_time(record.get("start")), parse_time(record.get("end"))
        if command not in (ADDED, REMOVED) or not isinstance(did, str) or t is None:
            continue
        if start is None or end is None:
            continue
        span = found.setdefault(did, [start, end])
        if command == ADDED:
            span[0] = max(span[0], start, t)
        else:
            span[1] = min(span[1], t)
    return [(lo, hi) for lo, hi in found.values() if hi > lo]


def merge_spans(spans: Iterable[Span], since: datetime, until: datetime) -> list[Span]:
    """`spans` clipped to [since, until), overlapping or touching ones joined, in order."""
    clipped = sorted((max(lo, since), min(hi, until)) for lo, hi in spans)
    merged: list[Span] = []
    for lo, hi in clipped:
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
