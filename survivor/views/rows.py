"""Rows of the views: times for people, check.json and queue.json items.

Pure functions of documents already read; every reader of a state file is
lenient (an old, new or damaged document gives what it can and says what it
could not), because a view must never die on the files it is meant to show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.model.codes import code_name, is_failing, urgency
from survivor.model.documents import CheckState, as_int
from survivor.model.words import scalar_text

# --------------------------------------------------------------------------- time text


def span_text(secs: float, *, tenths: bool = False) -> str:
    """A duration for people: 45s, 12m, 5h, 3d (5.5h, 3.2d with `tenths`)."""
    secs = int(secs)
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs / 3600:.1f}h" if tenths else f"{secs // 3600}h"
    return f"{secs / 86400:.1f}d" if tenths else f"{secs // 86400}d"


def age_text(t: datetime | None, now: datetime) -> str:
    """`5m ago`, `in 2m` or `never`."""
    if t is None:
        return "never"
    secs = (now - t).total_seconds()
    if secs < 0:
        return "in " + span_text(-secs)
    return span_text(secs) + " ago"


def due_text(t: datetime, now: datetime) -> str:
    """When a run is due, for people: `in 2m`, `now` (due within the last minute: its
    slot in the minute is coming), or `overdue 5m` (late; `0s ago` said nothing)."""
    secs = (t - now).total_seconds()
    if secs > 0:
        return "in " + span_text(secs)
    if secs > -60:
        return "now"
    return "overdue " + span_text(-secs)


def iso(t: datetime | None) -> str | None:
    return None if t is None else utc_iso(t)


# --------------------------------------------------------------------------- check rows


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One check@host as every view shows it."""

    host: str
    check: str
    state: CheckState
    acked: bool = False
    inhibited: bool = False
    downtime: bool = False  # in scheduled downtime (alerts held); set by callers with a config
    configured: bool | None = None  # None: no configuration was consulted
    present: bool = True  # False: no check.json yet (never ran, or not written)
    error: str | None = None  # why (part of) the state could not be read

    @property
    def rc(self) -> int:
        return self.state.rc

    @property
    def code(self) -> str:
        return self.state.code

    @property
    def problem(self) -> bool:
        return is_failing(self.state.rc)

    def flags(self) -> list[str]:
        """ACK, INHIBITED, DOWNTIME: what silences the pair, as the views show it."""
        return [
            word
            for word, on in (
                ("ACK", self.acked),
                ("INHIBITED", self.inhibited),
                ("DOWNTIME", self.downtime),
            )
            if on
        ]

    def sort_key(self) -> tuple[int, str, str]:
        return (urgency(self.state.rc), self.host, self.check)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """check.json's fields plus the view's: ages as text, flags, errors."""
        st = self.state
        d: dict[str, Any] = {"host": self.host, "check": self.check, **st.to_dict()}
        d.update(
            problem=self.problem,
            acked=self.acked,
            inhibited=self.inhibited,
            downtime=self.downtime,
            present=self.present,
            since_age=age_text(st.since, now) if st.since else "",
            last_age=age_text(st.last_start, now),
            next_due_in=due_text(st.next_due, now) if st.next_due else "",
            scalar_text="" if st.scalar is None else scalar_text(st.scalar),
            flags=" ".join(self.flags()),
        )
        d["configured"] = self.configured
        d["error"] = self.error
        return d


def sort_rows(rows: Iterable[CheckRow]) -> list[CheckRow]:
    """Problems first (most urgent code first), then by host and check."""
    return sorted(rows, key=CheckRow.sort_key)


def count_by_code(rows: Iterable[CheckRow]) -> dict[str, int]:
    """How many pairs have each code, most urgent code first."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row.rc] = counts.get(row.rc, 0) + 1
    return {code_name(rc): counts[rc] for rc in sorted(counts, key=lambda rc: (urgency(rc), rc))}


# --------------------------------------------------------------------------- queue rows


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One item of queue.json."""

    id: str
    kind: str
    check: str
    hosts: tuple[str, ...]
    state: str  # queued | running
    planned: datetime | None
    started: datetime | None
    pid: int | None
    worker: str | None
    reason: str

    @property
    def since(self) -> datetime | None:
        """Running: when it started; queued: when it is planned to start."""
        return self.started if self.state == "running" else self.planned

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "check": self.check,
            "hosts": list(self.hosts),
            "state": self.state,
            "planned": iso(self.planned),
            "started": iso(self.started),
            "since_age": age_text(self.since, now),
            "pid": self.pid,
            "worker": self.worker,
            "reason": self.reason,
        }


def queue_rows(doc: Mapping[str, Any] | None) -> tuple[list[QueueRow], list[str]]:
    """The items of queue.json (running first), and what could not be read."""
    if doc is None:
        return [], []
    items = doc.get("items")
    if not isinstance(items, list):
        return [], ["queue.json: no list of items"]
    rows: list[QueueRow] = []
    errors: list[str] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            errors.append(f"queue.json: item {n} is not a work item: {str(item)[:80]}")
            continue
        hosts = item.get("hosts")
        rows.append(
            QueueRow(
                id=item["id"],
                kind=str(item.get("kind") or "?"),
                check=str(item.get("check") or "?"),
                hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else (),
                state=str(item.get("state") or "queued"),
                planned=parse_time(item.get("planned")),
                started=parse_time(item.get("started")),
                pid=as_int(item.get("pid")),
                worker=None if item.get("worker") is None else str(item.get("worker")),
                reason=str(item.get("reason") or ""),
            )
        )
    rows.sort(key=_queue_order)
    return rows, errors


def _queue_order(row: QueueRow) -> tuple[bool, bool, float]:
    """Running before queued, each oldest first; items without a time last."""
    since = row.since
    return (row.state != "running", since is None, since.timestamp() if since else 0.0)


def queue_by_host(rows: Iterable[QueueRow]) -> dict[str, list[QueueRow]]:
    """Each item under every host it covers (a batched check covers several)."""
    by_host: dict[str, list[QueueRow]] = {}
    for row in rows:
        for host in row.hosts or ("?",):
            by_host.setdefault(host, []).append(row)
    return by_host
