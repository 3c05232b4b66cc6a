"""DiskHealth: an outage's span and the history records it cost (issue 23, item 10)."""

from __future__ import annotations

import errno
from pathlib import Path

from survivor.store.fsio import DiskWriteError
from survivor.store.health import DiskHealth
from tests.fakes import FakeClock

FULL = OSError(errno.ENOSPC, "No space left on device")


def test_an_outage_is_offered_once_with_its_span_and_the_records_it_cost() -> None:
    clock = FakeClock()
    health = DiskHealth(clock, Path("/h"))
    began = clock.now()
    for _ in range(3):
        health.failed(DiskWriteError(Path("/h/host/web1/ping/check-2026-11.jsonl"), FULL))
        clock.advance(10)
    health.failed(DiskWriteError(Path("/s/host/web1/ping/check.json"), FULL))  # state: no record
    health.failed(DiskWriteError(Path("/elsewhere/results.jsonl"), FULL))  # not history
    ended = clock.now()
    assert health.current_outage() is not None
    clock.advance(30)
    health.succeeded()  # less than a minute without failures: not over yet
    assert health.take_outages() == []
    clock.advance(31)
    health.succeeded()
    [outage] = health.take_outages()
    assert outage["history_records_lost"] == 3 and outage["errors"] == 5
    assert outage["since"] == began.isoformat().replace("+00:00", ".000Z")
    assert outage["until"] == ended.isoformat().replace("+00:00", ".000Z")
    assert outage["ongoing"] is False and "No space left" in outage["last_error"]
    assert health.take_outages() == [] and health.current_outage() is None
    # The next outage counts from zero.
    health.failed(DiskWriteError(Path("/h/daemon/events-2026-11.jsonl"), FULL))
    current = health.current_outage()
    assert current is not None and current["history_records_lost"] == 1 and current["ongoing"]
