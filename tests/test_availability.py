"""Availability from hand-made history with known answers (survivor.views.availability)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.views.availability import availability

MIN = timedelta(minutes=1)
DAY0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def rec(t: datetime, rc: int, fp: str = "a") -> dict[str, object]:
    return {"v": 1, "t": t.isoformat().replace("+00:00", "Z"), "rc": rc, "fp": fp}


def minutes(start: datetime, n: int, rc: int, fp: str = "a") -> list[dict[str, object]]:
    return [rec(start + k * MIN, rc, fp) for k in range(n)]


def hour_of_history() -> list[dict[str, object]]:
    """09:59 OK; 10:00-10:09 OK; 10:10-10:19 PROBLEM; 10:20-10:29 OK; the daemon stopped
    10:30-10:49; 10:50-10:59 WARNING (with a new definition from 10:50)."""
    return [
        rec(DAY0 - MIN, 0),
        *minutes(DAY0, 10, 0),
        *minutes(DAY0 + 10 * MIN, 10, 1),
        *minutes(DAY0 + 20 * MIN, 10, 0),
        *minutes(DAY0 + 50 * MIN, 10, 2, fp="b"),
    ]


def test_shares_outages_and_unknown_time_from_known_history() -> None:
    r = availability(hour_of_history(), DAY0, DAY0 + 60 * MIN, max_cover=2 * MIN)
    s = r.seconds
    assert s["OK"] == 21 * 60  # 10:00-10:10, and 10:20-10:31 (the 10:29 result covers 2 min)
    assert s["PROBLEM"] == 10 * 60
    assert s["unknown"] == 19 * 60  # 10:31-10:50: no record, so never OK
    assert s["WARNING"] == 10 * 60
    assert s["other"] == 0 and sum(s.values()) == 3600
    assert r.share("OK") == pytest.approx(21 / 60)
    assert [(o.start, o.end, o.worst) for o in r.outages] == [
        (DAY0 + 10 * MIN, DAY0 + 20 * MIN, "PROBLEM"),
        (DAY0 + 50 * MIN, None, "WARNING"),  # still failing at the end of the period
    ]
    assert r.mean_time_to_recover() == 600  # only recovered outages
    assert r.longest_outage() == 600
    assert r.fingerprints == ["a", "b"] and r.records == 40


def test_downtime_is_counted_apart_from_the_shares() -> None:
    window = (DAY0 + 12 * MIN, DAY0 + 18 * MIN)
    r = availability(hour_of_history(), DAY0, DAY0 + 60 * MIN, 2 * MIN, downtimes=[window])
    assert r.downtime == 6 * 60
    assert r.seconds["PROBLEM"] == 4 * 60
    assert sum(r.seconds.values()) == 3600 - 6 * 60


def test_a_period_without_records_is_unknown_not_ok() -> None:
    old = [rec(DAY0 - 10 * MIN, 0)]  # too old to cover the period's start
    r = availability(old, DAY0, DAY0 + 5 * MIN, max_cover=2 * MIN)
    assert r.seconds["unknown"] == 300 and r.seconds["OK"] == 0
    assert availability([], DAY0, DAY0 + MIN, MIN).seconds["unknown"] == 60


def test_an_outage_begun_before_the_period_starts_with_it() -> None:
    history = [*minutes(DAY0 - 3 * MIN, 5, 1), *minutes(DAY0 + 2 * MIN, 3, 0)]
    r = availability(history, DAY0, DAY0 + 5 * MIN, max_cover=2 * MIN)
    assert [(o.start, o.end) for o in r.outages] == [(DAY0, DAY0 + 2 * MIN)]
    assert r.seconds["PROBLEM"] == 120 and r.seconds["OK"] == 180


def test_across_a_month_boundary_and_an_archived_month(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    store = HistoryStore(root / "history", FileWriter(FsyncPolicy.NEVER))
    edge = datetime(2026, 11, 1, tzinfo=UTC)
    for k in range(-10, 10):
        store.append("web1", "ping", "check", edge + k * MIN, {"rc": 0 if k < 0 else 1, "fp": "a"})
    assert store.archive("2026-11") != []  # October is compressed in place
    r = availability(store.read("web1", "ping"), edge - 5 * MIN, edge + 5 * MIN, max_cover=2 * MIN)
    assert r.seconds["OK"] == 300 and r.seconds["PROBLEM"] == 300
    assert [(o.start, o.end) for o in r.outages] == [(edge, None)]
