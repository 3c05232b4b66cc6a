"""Builds state-example/: a small, realistic state and history tree, written by survivor's own code.

    python -m tests.state_example state-example     # regenerate (deterministic)

A few hosts, a month of check history at an hourly cadence, one failing check
that is acknowledged and was alerted on, an inhibited check, a rotating call
list, daemon events, a reload that changed one check's definition (so its
history holds two incarnations). tests/test_state_example.py reads the
committed tree with the daemon's readers and checks it matches this builder.
"""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from survivor.model.config import FsyncPolicy
from survivor.model.documents import (
    Ack,
    AlertState,
    CallListState,
    CheckState,
    Inhibit,
    Recipient,
    Substitution,
)
from survivor.model.work import CheckResult, PerfDatum
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)

CONFIG = """\
# The configuration that state-example/ was written under: `survivor -c
# state-example/etc/survivor.yaml status` shows the example tree.
instance:
  name: example
  state_dir: ../state
  history_dir: ../history
  module_dir: ../../mod
hosts:
  web1: {address: 192.0.2.10}
  web2: {address: 192.0.2.11}
  db1: {address: 192.0.2.20}
classes:
  web: {hosts: [web1, web2], schedule: hourly, alertplan: standard}
  db: {hosts: [db1], schedule: hourly, alertplan: standard}
schedules:
  hourly: [{every: 1h}]
  rotate-monday: [{at: ["mon 09:00"]}]
alerts:
  mail: {format: plain, transmit: mail}
people:
  alice: {mail: alice@example.org}
  bob: {mail: bob@example.org}
calllists:
  oncall: {members: [alice, bob], via: mail, rotate: rotate-monday}
alertplans:
  standard:
    rules:
      - on: [1]
        after: 2
        using: [{schedule: hourly, tries: [{alert: [oncall]}]}]
    notify_on_clear: true
checks:
  ping: {module: ping, hosts: [web, db]}
  http: {module: http, hosts: [web], args: {url: "http://{address}/"}}
  disk: {module: disk, hosts: [db], args: {paths: [/var/lib/postgresql], warn_pct: 80}}
"""

PAIRS = [
    ("ping", "web1"),
    ("ping", "web2"),
    ("ping", "db1"),
    ("http", "web1"),
    ("http", "web2"),
    ("disk", "db1"),
]
FP = {"ping": "5d1c0f2a9b44", "http": "a07e3c11d2f9", "disk": "c3b9e80412aa"}
NEW_HTTP_FP = "f19d4be6c032"  # http's args changed at the reload of Nov 20
RELOAD = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
DISK_FAILS = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def result_for(check: str, host: str, t: datetime, rng: random.Random) -> CheckResult:
    if check == "ping":
        rtt = round(rng.uniform(0.3, 2.5), 2)
        return CheckResult(
            host,
            0,
            f"3/3 replies, rtt avg {rtt} ms",
            rtt,
            int(rtt * 3 + 2),
            (PerfDatum("rtt", rtt, "ms", "200", "1000"),),
        )
    if check == "http":
        ms = rng.randint(20, 180)
        return CheckResult(
            host,
            0,
            f"HTTP 200 in {ms} ms",
            float(ms),
            ms,
            (PerfDatum("time", ms / 1000, "s", "1", "5", 0.0),),
        )
    used = 61.0 + (t - START).total_seconds() / 86400 * 0.8
    if t >= DISK_FAILS:
        used = 96.4
    rc = 1 if used >= 95 else (2 if used >= 80 else 0)
    return CheckResult(
        host,
        rc,
        f"/var/lib/postgresql {used:.1f}% used",
        round(used, 1),
        4,
        (PerfDatum("/var/lib/postgresql", round(used, 1), "%", "80", "95", 0.0, 100.0),),
    )


def build(root: Path) -> None:
    writer = FileWriter(FsyncPolicy.NEVER)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "survivor.yaml").write_text(CONFIG)
    state = StateStore(root / "state", writer)
    # Written as the daemon writes: acks and inhibits leave no mark in changed/ for the
    # views (store/overview.py); the daemon keeps them for overview.json instead, which
    # a state at rest need not show.
    state.keep_overview()
    history = HistoryStore(root / "history", writer)
    rng = random.Random(1)
    history.append_event(
        START - timedelta(days=3),
        "start",
        pid=812,
        version="0.1.0",
        generation=7,
        fingerprint="1b2c3d4e5f60",
    )
    history.append_event(
        RELOAD,
        "reload",
        generation=8,
        fingerprint="7a8b9c0d1e2f",
        diff="0 checks added, 2 changed, 0 removed",
        not_applied=[],
    )
    for check, host in PAIRS:
        st = CheckState()
        t = START
        while t <= NOW:
            fp = NEW_HTTP_FP if check == "http" and t >= RELOAD else FP[check]
            gen = 8 if t >= RELOAD else 7
            start = t + timedelta(seconds=sum(map(ord, check + host)) % 60, milliseconds=412)
            result = result_for(check, host, t, rng)
            st = st.advance(result, start=start, planned=t, fingerprint=fp, generation=gen)
            record = {
                "rc": result.rc,
                "code": result.code,
                "scalar": result.scalar,
                "comment": result.comment,
                "duration_ms": result.duration_ms,
                "fp": fp,
                "gen": gen,
                "perfdata": [p.to_dict() for p in result.perfdata],
            }
            history.append(host, check, "check", start, record)
            t += timedelta(hours=1)
        state.write_check(host, check, replace(st, next_due=t))

    # db1/disk is failing: alerted twice, then acknowledged by alice.
    alice = Recipient("alice", "alice@example.org", "mail", "oncall")
    first = DISK_FAILS + timedelta(hours=1, minutes=1)
    for n, at in enumerate([first, first + timedelta(hours=1)], start=1):
        history.append(
            "db1",
            "disk",
            "alert",
            at,
            {
                "via": "mail",
                "ok": True,
                "recipients": [alice.to_dict()],
                "rc": 1,
                "code": "PROBLEM",
                "try": n,
                "escalated": False,
                "clear": False,
                "action": "alert",
            },
        )
    state.write_pair_doc(
        "db1",
        "disk",
        "alert",
        AlertState(
            about_rc=1,
            status_since=DISK_FAILS + timedelta(seconds=4, milliseconds=412),
            alerts_sent=2,
            try_index=0,
            last_alert=first + timedelta(hours=1),
            last_recipients=(alice,),
        ).to_dict(),
    )
    acked = first + timedelta(hours=1, minutes=14)
    state.write_pair_doc(
        "db1",
        "disk",
        "ack",
        Ack("alice", "vacuuming; extra disk ordered (TICKET-4411)", acked, 1).to_dict(),
    )
    history.append(
        "db1",
        "disk",
        "command",
        acked,
        {
            "user": "alice",
            "command": "ack",
            "comment": "vacuuming; extra disk ordered (TICKET-4411)",
        },
    )

    # web2/http is in maintenance until tonight.
    inhibited = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    state.write_pair_doc(
        "web2",
        "http",
        "inhibit",
        Inhibit(
            "bob", "kernel upgrade", inhibited, datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
        ).to_dict(),
    )
    history.append(
        "web2",
        "http",
        "command",
        inhibited,
        {
            "user": "bob",
            "command": "inhibit",
            "comment": "kernel upgrade",
            "until": "2026-11-24T20:00:00.000Z",
        },
    )

    # The rotating call list: bob is on call this week, alice covers Wednesday for him.
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    sub = Substitution(
        "alice",
        "bob",
        datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        "bob",
        datetime(2026, 11, 22, 17, 3, tzinfo=UTC),
    )
    state.write_calllist(
        "oncall",
        CallListState(
            on_call="bob", last_rotation=monday, substitutions=(sub,), members=("alice", "bob")
        ),
    )
    for week in range(4):
        at = monday - timedelta(weeks=3 - week)
        history.append_calllist(
            "oncall", at, {"event": "rotate", "steps": 1, "on_call": ["alice", "bob"][week % 2]}
        )

    state.write_daemon(
        {
            "version": 1,
            "pid": 812,
            "survivor": "0.1.0",
            "instance": "example",
            "mood": "running",
            "started": "2026-10-29T00:00:00.000Z",
            "updated": "2026-11-24T10:05:00.000Z",
            "config": {
                "path": "/etc/survivor/survivor.yaml",
                "files": ["/etc/survivor/survivor.yaml"],
                "generation": 8,
                "fingerprint": "7a8b9c0d1e2f",
                "loaded_at": "2026-11-20T14:00:00.000Z",
                "stale": False,
                "on_disk": {"stale": False},
            },
            "last_reload": {
                "at": "2026-11-20T14:00:00.000Z",
                "ok": True,
                "errors": [],
                "diff": "0 checks added, 2 changed, 0 removed",
                "not_applied": [],
            },
            "ticks": {"check": "2026-11-24T10:05:00.002Z", "alert": "2026-11-24T10:05:30.001Z"},
            "pools": {
                "check": {"size": 15, "busy": 0, "queued": 0, "completed": 17280, "failed": 0},
                "alert": {"size": 5, "busy": 0, "queued": 0, "completed": 2, "failed": 0},
            },
            "alerts": {"sent": 2, "failed": 0, "throttled": 0, "digests": 0, "fixes": 0},
            "health": {
                "disk": "ok",
                "disk_errors": 0,
                "last_disk_error": None,
                "failing_since": None,
            },
            "heartbeat_s": 15.0,
        }
    )
    state.write_queue(
        {"version": 1, "updated": "2026-11-24T10:05:00.412Z", "pid": 812, "items": []}
    )


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "state-example"))
