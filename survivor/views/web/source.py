"""Where the pages get their data: the state and history files, read fresh for each answer.

The full snapshot (every check.json) is kept for `cache_s` seconds, so that
several browser tabs polling every five seconds cost one read of the state
tree, not one each. Host and check pages read only their own directories.
Like every reader, nothing here locks or writes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from survivor.clock import Clock, local_zone, parse_time, utc_iso
from survivor.model.codes import code_name
from survivor.model.config import Config, FsyncPolicy
from survivor.model.words import scalar_text
from survivor.selection import SelectionError, parse_selector, resolve
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.layout import StateLayout
from survivor.views.availability import pair_availability
from survivor.views.rows import age_text
from survivor.views.snapshot import (
    PAIR_DOCS,
    Snapshot,
    host_detail,
    queue_totals,
    queue_updated,
    read_pair_docs,
    read_snapshot,
    summary,
)

PLOT_DAYS = 7
PERFDATA_KEYS = ("label", "value", "uom", "warn", "crit", "min", "max")
PLOT_POINTS = 720
RECENT = 10


class StatusSource:
    def __init__(
        self,
        state_dir: Path,
        history_dir: Path,
        clock: Clock,
        *,
        configured: Collection[tuple[str, str]] | None = None,
        cache_s: float = 1.0,
        config: Config | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.config = config  # for the availability report (each check's interval)
        self.history = HistoryStore(history_dir, FileWriter(FsyncPolicy.NEVER))  # read only
        self.clock = clock
        self.configured = frozenset(configured) if configured is not None else None
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    # ---------------------------------------------------------------- snapshots

    def snapshot(self) -> Snapshot:
        """Every pair, read at most once per `cache_s` however many requests wait.

        One reader at a time, and the copy is stamped when its read ENDS: at 20,000
        pairs a read takes about a second, and a stamp taken at its start made the
        copy stale on arrival, so every request waiting behind it read everything
        again (8 tabs: 9.3 s a refresh)."""
        with self._lock:
            if self._cached is not None and self.clock.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            snap = read_snapshot(self.state_dir, self.clock.now(), configured=self.configured)
            self._cached = (self.clock.monotonic(), snap)
            return snap

    def host_snapshot(self, host: str) -> Snapshot:
        return read_snapshot(
            self.state_dir, self.clock.now(), configured=self.configured, hosts={host}
        )

    def knows_host(self, snap: Snapshot, host: str) -> bool:
        return bool(snap.rows_of(host) or snap.queue_of(host))

    # ---------------------------------------------------------------- API answers

    def summary(self) -> dict[str, Any]:
        return summary(self.snapshot())

    def host(self, host: str) -> dict[str, Any] | None:
        snap = self.host_snapshot(host)
        return host_detail(snap, host) if self.knows_host(snap, host) else None

    def queue(self) -> dict[str, Any]:
        snap = self.snapshot()
        now = snap.now
        return {
            "now": utc_iso(now),
            "daemon": snap.daemon.to_dict(now),
            "totals": {**queue_totals(snap.queue), "scheduled": scheduled_later(snap.queue_doc)},
            "updated_age": queue_updated(snap.queue_doc, now),
            "items": [q.to_dict(now) for q in snap.queue],
        }

    def check(self, host: str, check: str) -> dict[str, Any] | None:
        snap = self.host_snapshot(host)
        row = snap.row(host, check)
        if row is None:
            return None
        now = snap.now
        errors: list[str] = []
        docs = read_pair_docs(StateLayout(self.state_dir).pair_dir(host, check), PAIR_DOCS, errors)
        state = row.to_dict(now)
        state.setdefault("long_output", "")  # a key for the page's live element
        return {
            "now": utc_iso(now),
            "daemon": snap.daemon.to_dict(now),
            "host": host,
            "check": check,
            "level": "problem" if row.problem else ("ok" if row.present else "warning"),
            "state": state,
            "perfdata": [
                {key: item.get(key) for key in PERFDATA_KEYS} for item in state.get("perfdata", [])
            ],
            **{name: docs.get(name) for name in PAIR_DOCS},
            "ack_text": _ack_text(docs.get("ack"), now),
            "inhibit_text": _inhibit_text(docs.get("inhibit"), now),
            "escalate_text": _escalate_text(docs.get("escalate"), now),
            "alert_text": _alert_text(docs.get("alert"), now),
            "queue": [q.to_dict(now) for q in snap.queue_of(host, check)],
            "results": [_result(r) for r in reversed(self.recent(host, check, "check", now, 1))],
            "alerts": [_record(r) for r in reversed(self.recent(host, check, "alert", now, 90))],
            "commands": [
                _record(r) for r in reversed(self.recent(host, check, "command", now, 90))
            ],
            "errors": errors,
        }

    def availability(
        self, host: str, check: str | None, since: datetime, until: datetime
    ) -> list[dict[str, Any]] | None:
        """`survivor report HOST[/CHECK]`'s rows (views.availability, counted the same way);
        None when there is no configuration or it has no such host or pair."""
        config = self.config
        if config is None:
            return None
        try:
            pairs = resolve(config, [parse_selector(host if check is None else f"{host}/{check}")])
        except SelectionError:
            return None
        tz = local_zone(config.instance.timezone)
        rows = []
        for h, c in pairs:
            report = pair_availability(self.history, config, (h, c), since, until, tz, bad=[])
            rows.append({"host": h, "check": c, **report.to_dict()})
        return rows

    # ---------------------------------------------------------------- history

    def recent(
        self, host: str, check: str, kind: str, now: datetime, days: int, limit: int = RECENT
    ) -> list[dict[str, Any]]:
        """The last `limit` records of one kind from the last `days` days, oldest first."""
        since = now - timedelta(days=days)
        return list(deque(self.history.read(host, check, kind, since=since, bad=[]), limit))

    def plot_records(self, host: str, check: str) -> list[dict[str, Any]]:
        now = self.clock.now()
        return self.recent(host, check, "check", now, PLOT_DAYS, PLOT_POINTS)


# --------------------------------------------------------------------------- texts


def _who(doc: Mapping[str, Any], now: datetime) -> str:
    at = age_text(parse_time(doc.get("at")), now)
    comment = doc.get("comment")
    return f"by {doc.get('user', '?')} {at}" + (f": {comment}" if comment else "")


def _ack_text(doc: Mapping[str, Any] | None, now: datetime) -> str:
    if doc is None:
        return ""
    about = doc.get("about_code") or doc.get("about_rc") or "?"
    return f"Acknowledged ({about}) {_who(doc, now)}"


def _inhibit_text(doc: Mapping[str, Any] | None, now: datetime) -> str:
    if doc is None:
        return ""
    until = parse_time(doc.get("until"))
    if until is not None and until <= now:
        return f"Inhibition expired {age_text(until, now)} (was {_who(doc, now)})"
    span = f"until {utc_iso(until)}" if until else "until removed"
    return f"Alerts inhibited {span}, {_who(doc, now)}"


def _escalate_text(doc: Mapping[str, Any] | None, now: datetime) -> str:
    if doc is None:
        return ""
    return f"Escalated to level {doc.get('level', '?')} {_who(doc, now)}"


def _alert_text(doc: Mapping[str, Any] | None, now: datetime) -> str:
    if doc is None:
        return ""
    about = doc.get("about_code") or doc.get("about_rc") or "?"
    sent = doc.get("alerts_sent", 0)
    fixes = doc.get("fixes_tried", 0)
    last = age_text(parse_time(doc.get("last_alert")), now)
    extra = " (escalated)" if doc.get("escalated") else ""
    return (
        f"Alert state for {about}: {sent} alert(s) sent, last {last}; {fixes} fix(es) tried{extra}"
    )


def _result(r: Mapping[str, Any]) -> dict[str, Any]:
    rc = r.get("rc")
    scalar = r.get("scalar")
    return {
        "t": r.get("t"),
        "code": r.get("code") or (code_name(rc) if isinstance(rc, int) else "?"),
        "scalar_text": scalar_text(scalar) if isinstance(scalar, int | float) else "",
        "duration_ms": r.get("duration_ms"),
        "fp": r.get("fp"),
        "comment": r.get("comment"),
    }


_SUMMARY_FIRST = ("command", "event", "code", "try", "clear", "comment", "user")


def _record(r: Mapping[str, Any]) -> dict[str, Any]:
    """An alert or command record in one line, whatever fields its writer chose."""
    keys = [k for k in _SUMMARY_FIRST if k in r] + sorted(
        k for k in r if k not in _SUMMARY_FIRST and k not in ("v", "t")
    )
    return {"t": r.get("t"), "summary": " ".join(f"{k}={_short(r[k])}" for k in keys)}


def _short(value: object) -> str:
    text = _words(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _words(value: object) -> str:
    """A record's value for people: recipients as `alice (mail)`, lists joined, no reprs."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, Mapping):
        if "person" in value:
            via = value.get("via")
            return f"{value['person']} ({via})" if via else str(value["person"])
        return ", ".join(f"{k}: {_words(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value) or "-"
    return str(value)


def scheduled_later(doc: Mapping[str, Any] | None) -> int:
    """Items accepted for later in the current minute (queue.json counts, not lists, them)."""
    counts = (doc or {}).get("scheduled")
    if not isinstance(counts, Mapping):
        return 0
    return sum(n for n in counts.values() if isinstance(n, int) and not isinstance(n, bool))
