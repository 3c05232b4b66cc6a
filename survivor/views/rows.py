"""Rows of the views: times for people, check.json and queue.json items.

Pure functions of documents already read; every reader of a state file is
lenient (an old, new or damaged document gives what it can and says what it
could not), because a view must never die on the files it is meant to show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.model.codes import code_name, is_failing, urgency
from survivor.model.documents import CheckState, as_int
from survivor.model.words import scalar_text
from survivor.model.work import PerfDatum

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

# check.json as the daemon writes it, field by field: what `CheckState.from_dict` accepts
# and gives back unchanged (times aside), so a view can read such a document as it is.
_INTS = ("consecutive", "duration_ms", "generation")
_STRS = ("comment", "fingerprint")
_BIG = 2**1023  # an int beyond this is no float: from_dict would fail on it
_UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # utc_iso's own form


def _is_number(value: object) -> bool:
    """None, a float, or an int that converts to one (not a bool)."""
    return value is None or type(value) is float or (type(value) is int and -_BIG < value < _BIG)


def _stored_time(value: object) -> datetime | None:
    """A time of a plain document, as `CheckState.from_dict` reads it (ValueError if bad)."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise ValueError(value)
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))  # clock.parse_iso, inline
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def plain_times(doc: Mapping[str, Any]) -> tuple[datetime | None, datetime | None] | None:
    """`since` and `last_start` of a check.json as the daemon writes it; None for any other.

    "As the daemon writes it": version 1, every field of the type `to_dict` gives it and
    every time parsing. `CheckState.from_dict` accepts such a document and changes no field
    but the times, so a row can read it straight from the dict (building 20,000 CheckStates
    took a third of `status`); any other document is read with `from_dict_lenient`.
    """
    get = doc.get  # loops, not any(): this runs 20,000 times per `status`
    if get("version") != CheckState.VERSION or type(get("rc")) is not int:
        return None
    for key in _INTS:
        if type(get(key, 0)) is not int:
            return None
    for key in _STRS:
        if type(get(key, "")) is not str:
            return None
    if not _is_number(get("scalar")):
        return None
    perfdata = get("perfdata")
    if perfdata:
        if type(perfdata) is not list:
            return None
        for p in perfdata:
            if type(p) is not dict or "label" not in p:
                return None
            if not (_is_number(p.get("value")) and _is_number(p.get("min"))):
                return None
            if not _is_number(p.get("max")):
                return None
    try:
        since, last_start = _stored_time(get("since")), _stored_time(get("last_start"))
        _stored_time(get("last_planned"))
        _stored_time(get("next_due"))
    except ValueError:
        return None
    return since, last_start


def plain_state_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`CheckState.from_dict(doc).to_dict()` for a document `plain_times` accepts, without
    the objects (`status --json` shows 20,000 of them)."""

    def stored(key: str) -> str | None:
        value = doc.get(key)
        if value is None or value == "":
            return None
        return value if _UTC_ISO.fullmatch(value) else utc_iso(_stored_time(value))  # type: ignore[arg-type]

    rc = doc["rc"]
    scalar = doc.get("scalar")
    out = {
        "version": CheckState.VERSION,
        "rc": rc,
        "code": code_name(rc),
        "since": stored("since"),
        "consecutive": doc.get("consecutive", 0),
        "last_start": stored("last_start"),
        "last_planned": stored("last_planned"),
        "duration_ms": doc.get("duration_ms", 0),
        "scalar": None if scalar is None else float(scalar),
        "comment": doc.get("comment", ""),
        "perfdata": [PerfDatum.from_dict(p).to_dict() for p in doc.get("perfdata") or ()],
        "next_due": stored("next_due"),
        "fingerprint": doc.get("fingerprint", ""),
        "generation": doc.get("generation", 0),
        "reschedule": bool(doc.get("reschedule", False)),
    }
    long_output = str(doc.get("long_output") or "")
    if long_output:
        out["long_output"] = long_output
    return out


# What a row keeps of a plain check.json, each field with from_dict's default: a tuple of
# values is a third of the dict json.loads made (whose keys a file read does not share).
_KEPT = (
    ("rc", None),
    ("since", None),
    ("consecutive", 0),
    ("last_start", None),
    ("last_planned", None),
    ("duration_ms", 0),
    ("scalar", None),
    ("comment", ""),
    ("perfdata", None),
    ("next_due", None),
    ("fingerprint", ""),
    ("generation", 0),
    ("reschedule", False),
    ("long_output", None),
)
_AT = {key: n for n, (key, _) in enumerate(_KEPT)}


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One check@host as every view shows it.

    Made with `CheckRow.read`: the fields of a check.json as the daemon writes it are kept
    as they are (`kept`, in _KEPT's order) and the full `state` is built only for a view
    that asks for it (one pair's page, the metrics); any other document is read leniently
    into `state` at once.
    """

    host: str
    check: str
    kept: tuple[Any, ...] | None = field(repr=False)  # None: read into `state` at once
    rc: int
    since: datetime | None  # first result with this code
    last_start: datetime | None
    acked: bool = False
    inhibited: bool = False
    downtime: bool = False  # in scheduled downtime (alerts held); set by callers with a config
    configured: bool | None = None  # None: no configuration was consulted
    present: bool = True  # False: no check.json yet (never ran, or not written)
    error: str | None = None  # why (part of) the state could not be read
    _state: CheckState | None = field(default=None, compare=False, repr=False)  # see `state`

    @classmethod
    def read(
        cls, host: str, check: str, doc: Mapping[str, Any] | None, **flags: Any
    ) -> tuple[CheckRow, str | None]:
        """The row of check.json `doc` (None: absent), and what was wrong with it."""
        if doc is None:
            none = CheckState()
            return cls(
                host, check, None, none.rc, None, None, **flags, present=False, _state=none
            ), None
        times = plain_times(doc)
        if times is not None:
            kept = tuple([doc.get(key, default) for key, default in _KEPT])
            return cls(host, check, kept, doc["rc"], *times, **flags), None
        state, why = CheckState.from_dict_lenient(doc)
        row = cls(host, check, None, state.rc, state.since, state.last_start, **flags, _state=state)
        return row, why

    @property
    def state(self) -> CheckState:
        """check.json as a CheckState, built the first time it is asked for."""
        if self._state is None:
            state = CheckState.from_dict(self._document())  # rows without `kept` have one
            object.__setattr__(self, "_state", state)  # a cache: the row is the same
        assert self._state is not None
        return self._state

    @property
    def code(self) -> str:
        return code_name(self.rc)

    @property
    def problem(self) -> bool:
        return is_failing(self.rc)

    @property
    def consecutive(self) -> int:
        return self._state.consecutive if self._state is not None else self._plain("consecutive")

    @property
    def scalar(self) -> float | None:
        if self._state is not None:
            return self._state.scalar
        scalar = self._plain("scalar")
        return None if scalar is None else float(scalar)

    @property
    def comment(self) -> str:
        return self._state.comment if self._state is not None else self._plain("comment")

    def _plain(self, key: str) -> Any:
        assert self.kept is not None  # rows without `kept` have a `state`
        return self.kept[_AT[key]]

    def _document(self) -> dict[str, Any]:
        """The plain check.json again, as far as CheckState reads it."""
        assert self.kept is not None
        return {"version": CheckState.VERSION, **dict(zip(_AT, self.kept, strict=True))}

    def state_dict(self) -> dict[str, Any]:
        """`self.state.to_dict()`, without building the state when it is not built."""
        if self._state is not None:
            return self._state.to_dict()
        return plain_state_dict(self._document())

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
        return (urgency(self.rc), self.host, self.check)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """check.json's fields plus the view's: ages as text, flags, errors."""
        st = self.state_dict()
        next_due = self._state.next_due if self._state else _stored_time(self._plain("next_due"))
        scalar = st["scalar"]
        d: dict[str, Any] = {"host": self.host, "check": self.check, **st}
        d.update(
            problem=self.problem,
            acked=self.acked,
            inhibited=self.inhibited,
            downtime=self.downtime,
            present=self.present,
            since_age=age_text(self.since, now) if self.since else "",
            last_age=age_text(self.last_start, now),
            next_due_in=due_text(next_due, now) if next_due else "",
            scalar_text="" if scalar is None else scalar_text(scalar),
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
