"""Reading a state directory once into a Snapshot, and the summaries every view shows.

`read_snapshot` is the one reader (readers never lock, STYLE habit 7); the
summaries are pure functions of the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.errors import StateError
from survivor.model.codes import urgency
from survivor.model.documents import CheckState, Inhibit
from survivor.model.names import is_safe_name
from survivor.model.words import scalar_text
from survivor.store.fsio import read_document
from survivor.store.layout import StateLayout
from survivor.store.pidfile import read_pid
from survivor.views.health import DaemonHealth, daemon_health
from survivor.views.rows import CheckRow, QueueRow, age_text, count_by_code, queue_rows, sort_rows

PAIR_DOCS = ("ack", "inhibit", "escalate", "alert")


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
    on_disk = _disk_pairs(layout, hosts)
    wanted = set(on_disk)
    if configured is not None:
        wanted |= {p for p in configured if hosts is None or p[0] in hosts}
    rows: list[CheckRow] = []
    for host, check in wanted:
        names = on_disk.get((host, check), set())
        pair_dir = layout.pair_dir(host, check)
        row_errors: list[str] = []
        doc = _read(pair_dir / "check.json", row_errors) if "check" in names else None
        state, why = CheckState.from_dict_lenient(doc) if doc is not None else (CheckState(), None)
        extra = read_pair_docs(pair_dir, [n for n in ("ack", "inhibit") if n in names], row_errors)
        inhibit, inhibit_why = (
            Inhibit.from_dict_lenient(extra["inhibit"]) if "inhibit" in extra else (None, None)
        )
        problems = [e for e in (why, inhibit_why, *row_errors) if e]
        rows.append(
            CheckRow(
                host=host,
                check=check,
                state=state,
                acked="ack" in extra,
                inhibited=inhibit is not None and inhibit.active(now),
                configured=None if configured is None else (host, check) in configured,
                present=doc is not None,
                error="; ".join(problems) if problems else None,
            )
        )
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
        (r for r in rows if r.state.last_start is not None),
        key=lambda r: r.state.last_start or now,
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
        st = r.state
        since = age_text(st.since, now) if st.since else ""
        extra = f" [{scalar_text(st.scalar)}]" if st.scalar is not None else ""
        flags = "".join(f" {word}" for word in r.flags())
        err = f" (state unreadable: {r.error})" if r.error else ""
        line = (
            f"{r.host:<{width_h}}  {r.check:<{width_c}}  {r.code:<9} "
            f"x{st.consecutive:<3} since {since:<9} last {age_text(st.last_start, now):<9}"
            f"{extra}{flags} {st.comment[:80]}{err}"
        ).rstrip()
        lines.append(line[:width] if width > 0 else line)
    return lines
