"""Which check@host pairs are in scheduled downtime at a given time, and why.

Two sources: downtimes an operator added (`state/downtime/<id>.json`, a
`Downtime` with fixed pairs and a start and end) and recurring windows of the
config's `downtimes:` section (a selection and weekly windows, read in the
instance's zone). Pure: the documents, the config, `now` and `tz` are
arguments. The alert scheduler asks once per tick and holds the alerts of
every pair found here (`alertplan.decide(downtime=...)`); `status`, the
metrics and `downtime list` show the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from survivor.clock import utc_iso
from survivor.model.config import Config, DowntimeDef
from survivor.model.documents import Downtime
from survivor.schedule import window_active, window_end
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
