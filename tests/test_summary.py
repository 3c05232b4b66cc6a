"""Month summaries (survivor.store.summary) and reports read through them (issue 22):
the same figures as reading every record, whatever the history looks like."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survivor.model.config import FsyncPolicy
from survivor.store.fsio import DiskWriteError, FileWriter
from survivor.store.history import HistoryStore
from survivor.store.summary import Span, SummaryStore, summary_path
from survivor.views.availability import availability, check_records

MIN = timedelta(minutes=1)
PAIR = ("web1", "ping")
START = datetime(2026, 9, 30, 20, 0, 0, 412000, tzinfo=UTC)  # 28 h before October


def store_at(root: Path) -> HistoryStore:
    return HistoryStore(root / "history", FileWriter(FsyncPolicy.NEVER))


def raw_report(
    store: HistoryStore,
    since: datetime,
    until: datetime,
    cover: timedelta,
    downtimes: list[tuple[datetime, datetime]] | None = None,
) -> dict[str, Any]:
    """The report as it was before summaries: every record read."""
    records = store.read(*PAIR, "check", since=since - cover)
    return availability(records, since, until, cover, downtimes or []).to_dict()


def fast_report(
    store: HistoryStore,
    since: datetime,
    until: datetime,
    cover: timedelta,
    downtimes: list[tuple[datetime, datetime]] | None = None,
    write_before: str | None = "2100-01",
) -> tuple[dict[str, Any], int]:
    """The report through the summaries, and how many spans stood in for records."""
    items = list(check_records(store, PAIR, since, until, cover, None, write_before))
    spans = sum(isinstance(i, Span) for i in items)
    return availability(items, since, until, cover, downtimes or []).to_dict(), spans


def write(store: HistoryStore, rows: list[tuple[datetime, int, str]]) -> None:
    for t, rc, fp in rows:
        store.append(*PAIR, "check", t, {"rc": rc, "fp": fp, "comment": "x"})


def steady(start: datetime, n: int, rc: int = 0, fp: str = "a") -> list[tuple[datetime, int, str]]:
    """n one-minute results, with the few milliseconds of jitter a real daemon has."""
    return [(start + k * MIN + timedelta(milliseconds=(k * 37) % 900), rc, fp) for k in range(n)]


# ------------------------------------------------------------------ the same figures


gaps = st.one_of(
    st.integers(55_000, 65_000),  # a one-minute check, jittered
    st.sampled_from([1, 30_000, 120_000, 121_000, 180_000, 3 * 3600_000, 30 * 3600_000]),
)
steps = st.lists(
    st.tuples(gaps, st.sampled_from([0, 0, 0, 1, 2, 5]), st.sampled_from(["a", "a", "b"])),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    archive=st.booleans(),
    late=st.booleans(),
    cover_min=st.sampled_from([2, 3, 10]),
    edges=st.tuples(st.integers(-5, 200), st.integers(0, 200)),
    on_record=st.booleans(),
    downtime=st.one_of(st.none(), st.tuples(st.integers(0, 3000), st.integers(1, 600))),
)
def test_a_report_through_summaries_equals_reading_every_record(
    steps: list[tuple[int, int, str]],
    archive: bool,
    late: bool,
    cover_min: int,
    edges: tuple[int, int],
    on_record: bool,
    downtime: tuple[int, int] | None,
) -> None:
    times, t = [], START
    for gap_ms, _rc, _fp in steps:
        t += timedelta(milliseconds=gap_ms)
        times.append(t)
    rows = [(when, rc, fp) for when, (_g, rc, fp) in zip(times, steps, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        store = store_at(Path(tmp))
        write(store, rows)
        if archive:
            store.archive("2100-01")
            if late:  # a record reaching an archived month late: a plain file beside it
                write(store, [(times[0] + timedelta(seconds=1), 1, "a")])
        cover = cover_min * MIN
        # the period: from some record (exactly at it, or a bit off) for some records
        first = times[min(edges[0], len(times) - 1)] if edges[0] >= 0 else START - MIN
        since = first if on_record else first - timedelta(seconds=7)
        until = since + timedelta(minutes=1 + edges[1] * 7)
        if on_record and edges[1] < len(times):
            until = max(times[edges[1]], since + timedelta(milliseconds=1))
        windows = []
        if downtime is not None:
            lo = since + timedelta(minutes=downtime[0] / 10)
            windows = [(lo, lo + timedelta(minutes=downtime[1]))]
        fast, _spans = fast_report(store, since, until, cover, windows)
        assert fast == raw_report(store, since, until, cover, windows)
        again, _spans = fast_report(store, since, until, cover, windows)  # from the files
        assert again == fast


def test_a_steady_month_is_a_few_spans_and_counts_the_same(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    rows = steady(START, 3 * 1440)  # three days of one-minute results ...
    rows[1500] = (rows[1500][0], 1, "a")  # ... with a one-minute PROBLEM
    del rows[2000:2060]  # and an hour the daemon was stopped
    write(store, rows)
    since, until = START + 30 * MIN, START + 3 * 1440 * MIN - 30 * MIN
    raw = raw_report(store, since, until, 2 * MIN)
    fast, spans = fast_report(store, since, until, 2 * MIN)
    assert fast == raw and raw["outages"] == 1 and raw["seconds"]["unknown"] > 3000
    assert 0 < spans < 20  # a few spans stood in for 4,000 records
    [(month, paths)] = [m for m in store.months(*PAIR, "check") if m[0] == "2026-10"]
    summary = SummaryStore(store).load(month, paths)
    assert summary is not None and summary.ordered and len(summary.spans) <= 8


def test_the_current_month_is_not_summarised_and_a_cover_too_short_reads_records(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path)
    write(store, steady(START, 2000, fp="a"))
    since, until = START, START + 2000 * MIN
    _fast, spans = fast_report(store, since, until, 2 * MIN, write_before="2026-10")
    assert spans == 1  # September (one span, to midnight: the rest is cut by the period)
    assert not summary_path(store.months(*PAIR, "check")[1][1], "2026-10").exists()
    # a report whose cover does not span the gaps in a span reads its records
    assert fast_report(store, since, until, timedelta(seconds=59))[0] == raw_report(
        store, since, until, timedelta(seconds=59)
    )


# ------------------------------------------------------------------ never a wrong answer


def summarised(tmp_path: Path) -> tuple[HistoryStore, Path, datetime, datetime]:
    store = store_at(tmp_path)
    write(store, steady(START, 1440))
    since, until = START, START + 2 * 1440 * MIN
    fast_report(store, since, until, 2 * MIN)  # writes the summaries
    october = store.months(*PAIR, "check")[1][1]
    path = summary_path(october, "2026-10")
    assert path.exists()
    return store, path, since, until


def test_a_summary_is_not_used_once_its_month_has_changed(tmp_path: Path) -> None:
    store, path, since, until = summarised(tmp_path)
    before = path.read_bytes()
    late = START + 1441 * MIN  # appended to October after its summary was made
    write(store, [(late, 2, "z")])
    october = store.months(*PAIR, "check")[1][1]
    assert SummaryStore(store).load("2026-10", october) is None
    fast, _spans = fast_report(store, since, until, 2 * MIN)
    assert fast == raw_report(store, since, until, 2 * MIN) and "z" in fast["fingerprints"]
    assert path.read_bytes() != before  # made again, for the files as they are now
    store.archive("2100-01")  # the month re-archived: other files, the summary is stale
    october = store.months(*PAIR, "check")[1][1]
    assert SummaryStore(store).load("2026-10", october) is None
    assert fast_report(store, since, until, 2 * MIN)[0] == fast


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not json at all\n",
        b'{"version": 1}\n',
        b"\x00\xff" * 40,
        None,  # the real summary, cut short
        "flip",  # the real summary with one figure changed
        "version",  # a well-formed summary of another version
    ],
)
def test_a_garbled_summary_is_ignored(tmp_path: Path, garbage: bytes | str | None) -> None:
    store, path, since, until = summarised(tmp_path)
    good = path.read_bytes()
    if garbage is None:
        data = good[: len(good) // 2]
    elif garbage == "flip":
        data = good.replace(b'"ordered":true', b'"ordered":false', 1).replace(
            b",1440,", b",1439,", 1
        )
    elif garbage == "version":
        data = good.replace(b'"version":1', b'"version":7', 1)
    else:
        assert isinstance(garbage, bytes)
        data = garbage
    assert data != good
    raw = raw_report(store, since, until, 2 * MIN)
    path.write_bytes(data)
    october = store.months(*PAIR, "check")[1][1]
    assert SummaryStore(store).load("2026-10", october) is None
    assert fast_report(store, since, until, 2 * MIN, write_before=None)[0] == raw


def test_a_report_that_cannot_write_summaries_is_right_and_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path)
    write(store, steady(START, 1440))

    def refuse(self: FileWriter, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        raise DiskWriteError(path, PermissionError(13, "Permission denied"))

    monkeypatch.setattr(FileWriter, "replace", refuse)
    since, until = START, START + 2 * 1440 * MIN
    fast, spans = fast_report(store, since, until, 2 * MIN)
    assert fast == raw_report(store, since, until, 2 * MIN) and spans > 0
    assert not list((tmp_path / "history").rglob("*.summary.json"))


def test_history_readers_ignore_summaries(tmp_path: Path) -> None:
    store, path, _since, _until = summarised(tmp_path)
    pair_dir = store.pair_dir(*PAIR)
    assert [p.name for p in store.files(pair_dir, "check")] == [
        "check-2026-09.jsonl",
        "check-2026-10.jsonl",
    ]
    assert path not in set(store.month_files()) and len(list(store.read(*PAIR))) == 1440
    assert store.archive("2100-01") and path.exists()  # archive leaves it (stale now)
    assert all(not p.name.endswith(".summary.json") for p in store.months_before("2100-01"))
    store.prune("2100-01", user="test", t=START)
    assert not path.exists()  # goes with its month
