"""Reading a state directory once into a Snapshot, and the summaries every view shows.

`read_snapshot` is the one reader (readers never lock, STYLE habit 7); the
summaries are pure functions of the snapshot.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.errors import StateError
from survivor.model.codes import urgency
from survivor.model.documents import Inhibit
from survivor.model.names import is_safe_name
from survivor.model.words import scalar_text
from survivor.store.fsio import read_document
from survivor.store.layout import StateLayout
from survivor.store.overview import VERSION as OVERVIEW_VERSION
from survivor.store.overview import read_marks
from survivor.store.pidfile import read_pid
from survivor.views.health import DaemonHealth, daemon_health
from survivor.views.rows import CheckRow, QueueRow, age_text, count_by_code, queue_rows, sort_rows

PAIR_DOCS = ("ack", "inhibit", "escalate", "alert")
OVERVIEW_FRESH_S = 15.0  # the daemon's heartbeat: overview.json older than this is not used


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a view needs, read once."""

    now: datetime
    daemon_doc: Mapping[str, Any] | None
    daemon: DaemonHealth
    queue_doc: Mapping[str, Any] | None
    queue: Sequence[QueueRow]
    rows: Sequence[CheckRow]  # sorted: problems first
    errors: Sequence[str] = field(default_factory=tuple)

    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.rows} | {h for q in self.queue for h in q.hosts})

    def rows_of(self, host: str) -> list[CheckRow]:
        return [r for r in self.rows if r.host == host]

    def row(self, host: str, check: str) -> CheckRow | None:
        for r in self.rows:
            if r.host == host and r.check == check:
                return r
        return None

    def queue_of(self, host: str, check: str | None = None) -> list[QueueRow]:
        return [q for q in self.queue if host in q.hosts and (check is None or q.check == check)]


def _read(path: Path, errors: list[str]) -> dict[str, Any] | None:
    try:
        return read_document(path)
    except StateError as err:
        errors.append(str(err))
    except OSError as err:
        errors.append(f"{path}: {err.strerror or err}")
    return None


def read_pair_docs(pair_dir: Path, names: Iterable[str], errors: list[str]) -> dict[str, Any]:
    """The named documents of one pair directory that exist and parse (ack, inhibit, ...)."""
    docs: dict[str, Any] = {}
    for name in names:
        doc = _read(pair_dir / f"{name}.json", errors)
        if doc is not None:
            docs[name] = doc
    return docs


def _disk_pairs(
    layout: StateLayout, hosts: Collection[str] | None
) -> dict[tuple[str, str], set[str]]:
    """(host, check) -> names of the documents present, for every pair directory on disk."""
    found: dict[tuple[str, str], set[str]] = {}
    host_names = sorted(hosts) if hosts is not None else _safe_entries(layout.hosts)
    for host in host_names:
        if not is_safe_name(host):
            continue
        for check in _safe_entries(layout.hosts / host):
            try:
                names = {
                    e.name[:-5]
                    for e in os.scandir(layout.pair_dir(host, check))
                    if e.name.endswith(".json") and not e.name.startswith(".")
                }
            except OSError:
                continue
            found[(host, check)] = names
    return found


def _safe_entries(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if is_safe_name(e.name) and e.is_dir())
    except OSError:
        return []


def _pair_names(layout: StateLayout, host: str, check: str) -> set[str]:
    """Names of the documents in one pair directory (none if it is not there)."""
    try:
        return {
            e.name[:-5]
            for e in os.scandir(layout.pair_dir(host, check))
            if e.name.endswith(".json") and not e.name.startswith(".")
        }
    except OSError:
        return set()


def _disk_row(
    layout: StateLayout,
    host: str,
    check: str,
    names: Collection[str],
    configured: bool | None,
    now: datetime,
) -> CheckRow:
    """One pair from its own files (`names`: the documents its directory holds)."""
    pair_dir = layout.pair_dir(host, check)
    errors: list[str] = []
    doc = _read(pair_dir / "check.json", errors) if "check" in names else None
    extra = read_pair_docs(pair_dir, [n for n in ("ack", "inhibit") if n in names], errors)
    return _row(host, check, doc, extra.get("ack"), extra.get("inhibit"), errors, configured, now)


def _row(
    host: str,
    check: str,
    doc: Mapping[str, Any] | None,
    ack: Any,
    inhibit_doc: Any,
    errors: list[str],
    configured: bool | None,
    now: datetime,
) -> CheckRow:
    """The row of one pair from its documents (None: absent), read from files or overview.json."""
    inhibit, inhibit_why = (
        Inhibit.from_dict_lenient(inhibit_doc) if inhibit_doc is not None else (None, None)
    )
    row, why = CheckRow.read(
        host,
        check,
        doc,
        acked=ack is not None,
        inhibited=inhibit is not None and inhibit.active(now),
        configured=configured,
    )
    problems = [e for e in (why, inhibit_why, *errors) if e]
    return dataclasses.replace(row, error="; ".join(problems)) if problems else row


OverviewDocs = tuple[
    dict[tuple[str, str], Mapping[str, Any]],
    dict[tuple[str, str], Mapping[str, Any]],
    set[tuple[str, str]],
]


def read_overview(layout: StateLayout, daemon: DaemonHealth, now: datetime) -> OverviewDocs | None:
    """overview.json's check documents and silencers by (host, check), and the pairs marked
    changed since (to be read from their files); None when it must not be trusted.

    Trusted only when the daemon that wrote it holds the pidfile now and it is at most
    OVERVIEW_FRESH_S old, so it never shows what the files contradict for longer than a
    heartbeat (store/overview.py); anything odd about it is no error, just a full read.
    """
    if not daemon.running or daemon.pid is None:
        return None
    try:
        doc = read_document(layout.overview)
        marks = read_marks(layout)
    except (StateError, OSError):
        return None
    if doc is None or doc.get("version") != OVERVIEW_VERSION or doc.get("pid") != daemon.pid:
        return None
    updated = parse_time(doc.get("updated"))
    if updated is None or abs((now - updated).total_seconds()) > OVERVIEW_FRESH_S:
        return None
    found: list[dict[tuple[str, str], Mapping[str, Any]]] = []
    for key in ("checks", "silencers"):
        entries = doc.get(key)
        if not isinstance(entries, list):
            return None
        by_pair: dict[tuple[str, str], Mapping[str, Any]] = {}
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], dict)):
                return None
            host, check, body = entry
            if is_safe_name(host) and is_safe_name(check):
                by_pair[(host, check)] = body
        found.append(by_pair)
    return found[0], found[1], {(host, check) for host, check, _ in marks}


def read_snapshot(
    state_dir: Path,
    now: datetime,
    *,
    configured: Collection[tuple[str, str]] | None = None,
    hosts: Collection[str] | None = None,
) -> Snapshot:
    """Read daemon.json, queue.json and every pair's check, ack and inhibit documents.

    `configured` ((host, check) pairs of the config, when the caller has one)
    adds rows for pairs that have not run yet and marks rows the config no
    longer has; `hosts` limits the pairs read to those hosts (a host page need
    not read 20,000 files). Nothing here raises for a bad or missing file.
    """
    errors: list[str] = []
    daemon_errors: list[str] = []
    layout = StateLayout(state_dir)
    daemon_doc = _read(layout.daemon, daemon_errors)
    errors.extend(daemon_errors)
    try:
        pid = read_pid(layout.pidfile)
    except (OSError, ValueError) as err:
        errors.append(f"survivor.pid: {err}")
        pid = None
    workers_doc = _read(layout.workers, errors) if daemon_doc and "broker" in daemon_doc else None
    health = daemon_health(
        daemon_doc,
        pid,
        now,
        error=daemon_errors[0] if daemon_errors else None,
        workers=workers_doc,
    )
    queue_doc = _read(layout.queue, errors)
    queue, queue_errors = queue_rows(queue_doc)
    errors.extend(queue_errors)
    overview = read_overview(layout, health, now) if hosts is None else None
    rows: list[CheckRow] = []

    def in_config(pair: tuple[str, str]) -> bool | None:
        return None if configured is None else pair in configured

    if overview is None:
        on_disk = _disk_pairs(layout, hosts)
        wanted = set(on_disk)
        if configured is not None:
            wanted |= {p for p in configured if hosts is None or p[0] in hosts}
        for pair in wanted:
            names = on_disk.get(pair, set())
            rows.append(_disk_row(layout, *pair, names, in_config(pair), now))
    else:
        checks, silencers, marked = overview
        wanted = set(checks) | set(silencers)
        if configured is not None:
            wanted |= set(configured)
        for pair in marked:  # changed since the overview was written: read from the files
            names = _pair_names(layout, *pair)
            if names or pair in wanted:
                rows.append(_disk_row(layout, *pair, names, in_config(pair), now))
        for pair in wanted - marked:
            extra = silencers.get(pair) or {}
            ack, inhibit, why = extra.get("ack"), extra.get("inhibit"), extra.get("errors")
            errors = [str(e) for e in why] if isinstance(why, list) else []
            rows.append(_row(*pair, checks.get(pair), ack, inhibit, errors, in_config(pair), now))
    return Snapshot(
        now=now,
        daemon_doc=daemon_doc,
        daemon=health,
        queue_doc=queue_doc,
        queue=queue,
        rows=sort_rows(rows),
        errors=tuple(errors),
    )


# --------------------------------------------------------------------------- summaries


def summary(snap: Snapshot) -> dict[str, Any]:
    """The overview: daemon health, counts by code, problems first, hosts, queue totals."""
    now = snap.now
    problems = [r for r in snap.rows if r.problem]
    hosts: dict[str, list[CheckRow]] = {}
    for r in snap.rows:
        hosts.setdefault(r.host, []).append(r)
    return {
        "now": utc_iso(now),
        "daemon": snap.daemon.to_dict(now),
        "total": len(snap.rows),
        "counts": count_by_code(snap.rows),
        "problem_count": len(problems),
        "problems": [r.to_dict(now) for r in problems],
        "hosts": sorted(
            (host_line(h, rows) for h, rows in hosts.items()),
            key=lambda line: (line["rank"], line["host"]),
        ),
        "queue": queue_totals(snap.queue),
        "queue_updated": queue_updated(snap.queue_doc, now),
        "errors": list(snap.errors)
        + [f"{r.host}/{r.check}: {r.error}" for r in snap.rows if r.error],
    }


def host_line(host: str, rows: Sequence[CheckRow]) -> dict[str, Any]:
    worst = min(rows, key=CheckRow.sort_key)
    return {
        "host": host,
        "rank": urgency(worst.rc),
        "checks": len(rows),
        "problems": sum(r.problem for r in rows),
        "worst": worst.code,
        "counts": count_by_code(rows),
        "counts_text": ", ".join(f"{n} {code}" for code, n in count_by_code(rows).items()),
    }


def queue_totals(rows: Iterable[QueueRow]) -> dict[str, int]:
    totals = {"running": 0, "queued": 0}
    for r in rows:
        totals[r.state] = totals.get(r.state, 0) + 1
    return totals


def queue_updated(doc: Mapping[str, Any] | None, now: datetime) -> str:
    if doc is None:
        return "never"
    return age_text(parse_time(doc.get("updated")), now)


def host_detail(snap: Snapshot, host: str) -> dict[str, Any]:
    """One host: its checks (problems first), its queue items, what ran last."""
    now = snap.now
    rows = snap.rows_of(host)
    ran = sorted(
        (r for r in rows if r.last_start is not None),
        key=lambda r: r.last_start or now,
        reverse=True,
    )
    return {
        "now": utc_iso(now),
        "host": host,
        "daemon": snap.daemon.to_dict(now),
        "counts": count_by_code(rows),
        "total": len(rows),
        "checks": [r.to_dict(now) for r in rows],
        "queue": [q.to_dict(now) for q in snap.queue_of(host)],
        "ran": [r.to_dict(now) for r in ran],
    }


def status_lines(snap: Snapshot, rows: Sequence[CheckRow], *, width: int = 0) -> list[str]:
    """The compact text view of `status` and `status --watch`: one line per pair."""
    now = snap.now
    if not rows:
        return []
    width_h = max(len(r.host) for r in rows)
    width_c = max(len(r.check) for r in rows)
    lines = []
    for r in rows:
        since = age_text(r.since, now) if r.since else ""
        scalar = r.scalar
        extra = f" [{scalar_text(scalar)}]" if scalar is not None else ""
        flags = (
            "".join(f" {word}" for word in r.flags())
            if r.acked or r.inhibited or r.downtime
            else ""
        )
        err = f" (state unreadable: {r.error})" if r.error else ""
        line = (
            f"{r.host:<{width_h}}  {r.check:<{width_c}}  {r.code:<9} "
            f"x{r.consecutive:<3} since {since:<9} last {age_text(r.last_start, now):<9}"
            f"{extra}{flags} {r.comment[:80]}{err}"
        ).rstrip()
        lines.append(line[:width] if width > 0 else line)
    return lines
