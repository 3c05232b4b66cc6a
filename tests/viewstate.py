"""A realistic state and history tree for the read-only views (status, queue, web, metrics).

Written with the same StateStore and HistoryStore the daemon uses, so the
views are tested against the real formats. `hold_pidfile` makes the tree
look like a running daemon owns it: the views judge liveness by the pidfile's
flock, and flock excludes another descriptor even in the same process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from survivor.clock import utc_iso
from survivor.model.codes import ReturnCode
from survivor.model.config import FsyncPolicy
from survivor.model.documents import CheckState
from survivor.model.work import PerfDatum
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.pidfile import PidFile
from survivor.store.state import StateStore

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

CONFIG = """\
instance:
  name: viewtest
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  fsync: never
hosts:
  web1: {address: 127.0.0.1}
  web2: {address: 127.0.0.2}
  db1: {address: 127.0.0.3}
classes:
  servers: {hosts: [web1, web2, db1], schedule: every-minute}
schedules:
  every-minute: [{every: 1m}]
checks:
  ping: {module: ok, hosts: [web1, web2, db1]}
  http: {module: ok, hosts: [web1, web2]}
  disk: {module: ok, hosts: [db1]}
"""


@dataclass
class Tree:
    root: Path
    config: Path
    state: Path
    history: Path
    store: StateStore
    hist: HistoryStore


def write_config(root: Path, text: str = CONFIG) -> Path:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    path = etc / "survivor.yaml"
    path.write_text(text)
    return path


def empty_tree(root: Path) -> Tree:
    """Config only: the state and history directories do not exist yet."""
    config = write_config(root)
    writer = FileWriter(FsyncPolicy.NEVER)
    return Tree(
        root,
        config,
        root / "state",
        root / "history",
        StateStore(root / "state", writer),
        HistoryStore(root / "history", writer),
    )


def state(
    rc: ReturnCode | int,
    *,
    minutes_ago: float,
    now: datetime = NOW,
    since_minutes: float | None = None,
    consecutive: int = 1,
    scalar: float | None = None,
    comment: str = "",
    fingerprint: str = "aaaaaaaaaaaa",
    duration_ms: int = 40,
    lag_s: float = 0.5,
    next_due_in: float = 1.0,
) -> CheckState:
    start = now - timedelta(minutes=minutes_ago)
    return CheckState(
        rc=int(rc),
        since=now - timedelta(minutes=since_minutes if since_minutes is not None else minutes_ago),
        consecutive=consecutive,
        last_start=start,
        last_planned=start - timedelta(seconds=lag_s),
        duration_ms=duration_ms,
        scalar=scalar,
        comment=comment,
        perfdata=(PerfDatum("rtt", scalar, "ms"),) if scalar is not None else (),
        next_due=start + timedelta(minutes=next_due_in),
        fingerprint=fingerprint,
        generation=3,
    )


def daemon_doc(
    now: datetime = NOW, *, updated: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "pid": os.getpid(),
        "survivor": "0.1.0",
        "instance": "viewtest",
        "mood": "running",
        "started": utc_iso(now - timedelta(hours=2)),
        "updated": utc_iso(updated or now),
        "config": {
            "path": "/etc/survivor/survivor.yaml",
            "files": [],
            "generation": 3,
            "fingerprint": "cafecafecafe",
            "loaded_at": utc_iso(now - timedelta(hours=1)),
            "stale": False,
        },
        "last_reload": {"at": utc_iso(now - timedelta(hours=1)), "ok": True, "errors": []},
        "ticks": {"check": utc_iso(now)},
        "pools": {"check": {"size": 4, "busy": 1, "queued": 1, "completed": 120, "failed": 0}},
        "health": {"disk": "ok", "disk_errors": 0, "last_disk_error": None},
        "heartbeat_s": 15.0,
    }
    doc.update(extra)
    return doc


def queue_items(now: datetime = NOW) -> list[dict[str, Any]]:
    return [
        {
            "id": "c1f2a",
            "kind": "check",
            "check": "http",
            "hosts": ["web1"],
            "state": "running",
            "planned": (now - timedelta(seconds=20)).timestamp(),
            "started": (now - timedelta(seconds=12)).timestamp(),
            "pid": 4242,
            "worker": "check-2",
            "reason": "schedule",
        },
        {
            "id": "c1f2b",
            "kind": "check",
            "check": "ping",
            "hosts": ["web1", "web2"],
            "state": "queued",
            "planned": (now + timedelta(seconds=20)).timestamp(),
            "started": None,
            "pid": None,
            "worker": None,
            "reason": "retry",
        },
    ]


def full_tree(root: Path, now: datetime = NOW) -> Tree:
    """Three hosts; a PROBLEM (acknowledged, with alert history and an incarnation change),
    a WARNING (inhibited), OKs, a pair that never ran, a queue with one running item."""
    tree = empty_tree(root)
    s = tree.store
    s.write_daemon(daemon_doc(now))
    s.write_queue({"version": 1, "updated": utc_iso(now), "pid": 4242, "items": queue_items(now)})
    s.write_check(
        "web1", "ping", state(0, now=now, minutes_ago=1, scalar=0.4, comment="3/3 replies")
    )
    s.write_check(
        "web1",
        "http",
        state(
            1,
            now=now,
            minutes_ago=1,
            since_minutes=30,
            consecutive=30,
            scalar=5012,
            comment="<script>alert('x')</script> connection refused",
            fingerprint="bbbbbbbbbbbb",
            duration_ms=5012,
            lag_s=2.0,
        ),
    )
    s.write_check(
        "web2", "ping", state(0, now=now, minutes_ago=1, scalar=0.5, comment="3/3 replies")
    )
    s.write_check("web2", "http", state(0, now=now, minutes_ago=2, scalar=120, comment="200 OK"))
    s.write_check(
        "db1", "disk", state(2, now=now, minutes_ago=3, scalar=91.5, comment="/ 91.5% used")
    )
    # db1/ping never ran: no check.json.
    s.write_pair_doc(
        "web1",
        "http",
        "ack",
        {
            "version": 1,
            "user": "alice",
            "comment": "on it",
            "at": utc_iso(now - timedelta(minutes=10)),
            "about_rc": 1,
            "about_code": "PROBLEM",
        },
    )
    s.write_pair_doc(
        "db1",
        "disk",
        "inhibit",
        {
            "version": 1,
            "user": "bob",
            "comment": "disk swap tonight",
            "at": utc_iso(now - timedelta(hours=1)),
            "until": utc_iso(now + timedelta(hours=8)),
        },
    )
    s.write_pair_doc(
        "web1",
        "http",
        "alert",
        {
            "version": 1,
            "about_rc": 1,
            "about_code": "PROBLEM",
            "status_since": utc_iso(now - timedelta(minutes=30)),
            "alerts_sent": 2,
            "fixes_tried": 0,
            "try": 1,
            "last_alert": utc_iso(now - timedelta(minutes=20)),
            "escalated": False,
        },
    )
    h = tree.hist
    for n in range(60):
        t = now - timedelta(minutes=60 - n)
        rc = 0 if n < 30 else 1
        h.append(
            "web1",
            "http",
            "check",
            t,
            {
                "rc": rc,
                "code": "OK" if rc == 0 else "PROBLEM",
                "scalar": 100 + n if rc == 0 else 5012,
                "comment": "200 OK" if rc == 0 else "connection refused",
                "duration_ms": 100 + n,
                "fp": "aaaaaaaaaaaa" if n < 20 else "bbbbbbbbbbbb",
                "gen": 2 if n < 20 else 3,
            },
        )
    h.append(
        "web1",
        "http",
        "alert",
        now - timedelta(minutes=20),
        {"code": "PROBLEM", "try": 1, "recipients": ["alice"], "comment": "connection refused"},
    )
    h.append(
        "web1",
        "http",
        "command",
        now - timedelta(minutes=10),
        {"user": "alice", "command": "ack", "comment": "on it"},
    )
    return tree


@contextlib.contextmanager
def hold_pidfile(state_dir: Path, pid: int | None = None) -> Iterator[int]:
    """Look like a running daemon: hold survivor.pid's flock with `pid` written in it."""
    pidfile = PidFile(state_dir / "survivor.pid")
    pidfile.acquire()
    try:
        pidfile.write_pid(pid or os.getpid())
        yield pid or os.getpid()
    finally:
        pidfile.release()


def write_raw(path: Path, data: str | bytes | dict[str, Any]) -> None:
    """Put anything at `path`: damaged, partial or old-version documents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, dict):
        data = json.dumps(data)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
