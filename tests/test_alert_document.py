"""The alert scheduler's document carries what the check said, long output included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from survivor.alerts.jobs import AlertJob, AlertStats
from survivor.alerts.scheduler import AlertScheduler
from survivor.config import load_config
from survivor.model.codes import ReturnCode
from survivor.model.config import FsyncPolicy
from survivor.model.documents import CheckState
from survivor.model.work import ItemIds
from survivor.store.books import AlertBook, CheckBook
from survivor.store.fsio import FileWriter
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from tests.fakes import FakeClock

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = """\
instance: {name: t, state_dir: state, history_dir: history}
hosts:
  web1: {address: 192.0.2.10}
classes:
  web: {hosts: [web1], schedule: hourly, alertplan: standard}
schedules:
  hourly: [{every: 1h}]
alerts:
  mail: {format: plain, transmit: mail}
people:
  alice: {mail: alice@example.org}
calllists:
  oncall: {members: [alice], via: mail}
alertplans:
  standard:
    rules:
      - on: [1]
        after: 1
        using: [{schedule: hourly, tries: [{alert: [oncall]}]}]
checks:
  raid: {plugin: check_raid, hosts: [web]}
"""


def test_the_alert_document_carries_the_long_output(tmp_path: Path) -> None:
    path = tmp_path / "survivor.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    writer = FileWriter(FsyncPolicy.NEVER)
    state = StateStore(config.instance.state_dir, writer)
    history = HistoryStore(config.instance.history_dir, writer)
    checks = CheckBook()
    failing = CheckState(
        rc=int(ReturnCode.PROBLEM),
        since=NOW - timedelta(minutes=10),
        consecutive=3,
        last_start=NOW - timedelta(minutes=1),
        comment="RAID CRITICAL: 1 of 2 degraded",
        long_output="md0: ok\nmd1: degraded",
    )
    checks.put("raid", "web1", failing)
    scheduler = AlertScheduler(
        checks,
        AlertBook(state, DiskHealth(FakeClock(NOW))),
        state,
        history,
        ItemIds("t"),
        AlertStats(),
        UTC,
        lambda key: False,
    )
    [item] = scheduler.tick(config, NOW)
    job = item.payload["job"]
    assert isinstance(job, AlertJob)
    assert job.doc["comment"] == "RAID CRITICAL: 1 of 2 degraded"
    assert job.doc["long_output"] == "md0: ok\nmd1: degraded"
