"""Worker health as people see it: `survivor workers`, and the lines of status and the web page."""

from __future__ import annotations

from datetime import UTC, datetime

from survivor.views.health import daemon_health
from survivor.views.workers import broker_line, summary_lines, table

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WORKERS = {
    "version": 1,
    "workers": [
        {"name": "dc1-a", "groups": ["dc1"], "version": "0.1", "alive": True, "in_flight": 3,
         "last_seen": "2026-12-07T09:59:40Z", "module_mismatch": {}},
        {"name": "dc1-b", "groups": ["dc1"], "alive": False, "last_seen": "2026-12-07T09:50:00Z",
         "module_mismatch": {"ok": {"worker": "ab", "scheduler": "cd"}}},
        {"name": "dc2-a", "groups": ["dc2"], "alive": False, "last_seen": None},
        "not a row",
    ],
    "breakers": {"dc2": {"timeouts": 3, "open": True, "open_for_s": 41.5}},
}  # fmt: skip


def test_the_workers_table_shows_each_worker_and_the_problems() -> None:
    lines = table(WORKERS, NOW)
    assert lines[0].split() == ["WORKER", "STATE", "LAST", "SEEN", "IN", "FLIGHT", "GROUPS"]
    assert lines[1].split() == ["dc1-a", "alive", "20s", "ago", "3", "dc1"]
    assert lines[2].split()[:2] == ["dc1-b", "DOWN"]
    assert lines[3].split()[:3] == ["dc2-a", "never", "seen"]
    assert "worker dc1-b: module ok DIFFERS from the scheduler's" in lines
    assert "worker group dc2: skipped (breaker open) for 41.5s" in lines
    assert table(None, NOW) == [
        "no workers seen (no workers: section, or the daemon has not written it yet)"
    ]


def test_status_shows_the_broker_and_the_workers_under_the_daemon() -> None:
    doc = {
        "mood": "running",
        "updated": "2026-12-07T09:59:55Z",
        "broker": {"connected": False, "since": "2026-12-07T09:58:00Z", "server": ""},
    }
    health = daemon_health(doc, 42, NOW, workers=WORKERS)
    lines = health.lines(NOW)
    assert "broker: UNREACHABLE since 2m ago; placed checks run on the scheduler" in lines
    assert "workers: 1 of 3 alive" in lines
    assert "worker dc1-b: DOWN, last heartbeat 10m ago" in lines
    assert health.level == "warning"
    up = daemon_health({**doc, "broker": {"connected": True, "server": "h:4222"}}, 42, NOW)
    assert up.level == "ok"
    assert broker_line(up.broker, NOW) == "broker: connected to h:4222 since never"
    plain = daemon_health({"mood": "running"}, 42, NOW).lines(NOW)  # no workers: section
    assert not [line for line in plain if line.startswith(("broker", "worker"))]
    assert summary_lines(None, NOW) == []
