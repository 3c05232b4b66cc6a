"""Month summaries (survivor.store.summary) and reports read through them (issue 22):
the same figures as reading every record, whatever the history looks like."""

from __future__ import annotations

import itertools
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survivor.model.config import FsyncPolicy
from survivor.store import summary as summary_module
from survivor.store.fsio import DiskWriteError, FileWriter
from survivor.store.history import HistoryStore
from survivor.store.summary import MonthSummary, Span, SummaryStore, summary_path
from survivor.views.availability import availability, check_availability, check_records

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
    report = check_availability(
        store, PAIR, since, until, cover, downtimes or [], None, write_before
    )
    items = list(check_records(store, PAIR, since, until, cover, None, write_before))
    return report.to_dict(), sum(isinstance(i, Span) for i in items)


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
    late=st.one_of(st.none(), st.integers(0, 119)),
    cover_min=st.sampled_from([2, 3, 10]),
    edges=st.tuples(st.integers(-5, 200), st.integers(0, 200)),
    on_record=st.booleans(),
    downtime=st.one_of(st.none(), st.tuples(st.integers(0, 3000), st.integers(1, 600))),
    grown=st.lists(st.integers(1, 119), max_size=2),
    open_month=st.sampled_from(["2100-01", "2026-10", None]),
    tail_bytes=st.sampled_from([0, 300, 10**9]),
    torn=st.booleans(),
)
def test_a_report_through_summaries_equals_reading_every_record(
    steps: list[tuple[int, int, str]],
    archive: bool,
    late: int | None,
    cover_min: int,
    edges: tuple[int, int],
    on_record: bool,
    downtime: tuple[int, int] | None,
    grown: list[int],
    open_month: str | None,
    tail_bytes: int,
    torn: bool,
) -> None:
    """The history as it grows: reports (which write summaries, of whole months and of
    prefixes of open ones) after each of the first chunks of records, and the figures
    compared after the rest was appended to summarised files."""
    times, t = [], START
    for gap_ms, _rc, _fp in steps:
        t += timedelta(milliseconds=gap_ms)
        times.append(t)
    rows = [(when, rc, fp) for when, (_g, rc, fp) in zip(times, steps, strict=True)]
    cover = cover_min * MIN
    cuts = [0, *sorted(min(g, len(rows)) for g in grown), len(rows)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(summary_module, "TAIL_BYTES", tail_bytes),
    ):
        store = store_at(Path(tmp))
        for lo, hi in itertools.pairwise(cuts[:-1]):
            write(store, rows[lo:hi])
            fast_report(store, START, times[-1] + MIN, cover, None, open_month)
        if torn and cuts[-2] > 0:  # an interrupted write: the next record is glued to it
            last = store.months(*PAIR, "check")[-1][1][-1]
            with last.open("ab") as fh:
                fh.write(b'{"t": "2026-10-31T00:00:00Z", "rc"')
        write(store, rows[cuts[-2] :])
        if archive:
            store.archive("2100-01")
            if late is not None:  # a record reaching an archived month late: a plain file
                write(store, [(times[0] + timedelta(seconds=1), 1, "a")])  # beside it
        elif late is not None:  # one appended to a summarised file, out of time order
            write(store, [(times[min(late, len(times) - 1)] + timedelta(milliseconds=1), 2, "c")])
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
        fast, _spans = fast_report(store, since, until, cover, windows, open_month)
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


def test_a_small_current_month_is_not_summarised_and_a_cover_too_short_reads_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path)
    write(store, steady(START, 2000, fp="a"))
    since, until = START, START + 2000 * MIN
    october = store.months(*PAIR, "check")[1][1]
    monkeypatch.setattr(summary_module, "TAIL_BYTES", october[0].stat().st_size)
    _fast, spans = fast_report(store, since, until, 2 * MIN, write_before="2026-10")
    assert spans == 1  # September (one span, to midnight: the rest is cut by the period)
    assert not summary_path(october, "2026-10").exists()  # read as it is: it is small
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


def test_a_summary_of_a_plain_month_grows_with_it_and_an_archive_makes_it_stale(
    tmp_path: Path,
) -> None:
    store, path, since, until = summarised(tmp_path)
    before = path.read_bytes()
    late = START + 1441 * MIN  # appended to October after its summary was made
    write(store, [(late, 2, "z")])
    october = store.months(*PAIR, "check")[1][1]
    assert SummaryStore(store).load("2026-10", october) is not None  # a prefix of it
    fast, _spans = fast_report(store, since, until, 2 * MIN)
    assert fast == raw_report(store, since, until, 2 * MIN) and "z" in fast["fingerprints"]
    assert path.read_bytes() == before  # one record after it: read, not worth a write
    store.archive("2100-01")  # the month archived: other files, the summary is stale
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
        data = good.replace(b'"version":2', b'"version":1', 1)  # the one before prefixes
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


# ------------------------------------------------------------------ the current month


def test_the_current_month_is_summarised_as_a_prefix_and_then_only_its_tail_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path)
    write(store, steady(START, 3 * 1440))  # to 3 October, 20:00
    since, until = START, START + 5 * 1440 * MIN
    fast_report(store, since, until, 2 * MIN, write_before="2026-10")
    october = store.months(*PAIR, "check")[1][1]
    path = summary_path(october, "2026-10")
    first = MonthSummary.decode(path.read_bytes())
    assert first.prefix is not None and first.prefix.end == october[0].stat().st_size
    write(store, steady(START + 3 * 1440 * MIN, 300, rc=1))  # five hours of PROBLEM after it
    raw = raw_report(store, since, until, 2 * MIN)

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("read the whole month")

    monkeypatch.setattr(summary_module, "summarise", whole)
    monkeypatch.setattr(HistoryStore, "read_files", whole)
    fast, spans = fast_report(store, since, until, 2 * MIN, write_before="2026-10")
    assert fast == raw and raw["outages"] == 1 and spans > 3
    assert path.read_bytes() == first.encode()  # ~25 KB after it: not worth a write
    write(store, steady(START + 3 * 1440 * MIN + 300 * MIN, 1000))  # ~85 KB more
    raw = raw_report(store, since, until, 2 * MIN)
    assert fast_report(store, since, until, 2 * MIN, write_before="2026-10")[0] == raw
    grown = MonthSummary.decode(path.read_bytes())  # written back, to the end
    assert grown.prefix is not None and grown.prefix.end == october[0].stat().st_size
    assert grown.spans[: len(first.spans)] == first.spans and len(grown.spans) > len(first.spans)
    assert fast_report(store, since, until, 2 * MIN, write_before=None)[0] == raw


@pytest.mark.parametrize("change", ["truncated", "rewritten", "replaced"])
def test_a_prefix_of_a_file_that_was_not_just_appended_to_is_ignored(
    tmp_path: Path, change: str
) -> None:
    store, _path, since, until = summarised(tmp_path)
    [october] = store.months(*PAIR, "check")[1][1]
    data = october.read_bytes()
    lines = data.splitlines(keepends=True)
    before = raw_report(store, since, until, 2 * MIN)
    if change == "truncated":  # to half, and a day appended: longer, but not the same
        os.truncate(october, len(data) // 2)
        write(store, steady(START + 1440 * MIN, 1440, rc=1))
    elif change == "rewritten":  # in place, the same inode: emptied and written again
        os.truncate(october, 0)
        write(store, steady(START + 1440 * MIN + 7 * MIN, 1500, rc=2))
        assert october.stat().st_size > len(data)
    else:  # by rename: the same bytes but a record in the middle, the last ones the same
        mid = len(lines) // 2
        lines[mid] = lines[mid].replace(b'"rc":0', b'"rc":2', 1)
        tmp = october.with_name("new.tmp")
        tmp.write_bytes(b"".join(lines))
        os.replace(tmp, october)
        assert len(october.read_bytes()) == len(data)
    raw = raw_report(store, since, until, 2 * MIN)
    assert raw != before  # so believing the summary would be wrong
    assert SummaryStore(store).load("2026-10", [october]) is None
    assert fast_report(store, since, until, 2 * MIN, write_before=None)[0] == raw
    assert fast_report(store, since, until, 2 * MIN)[0] == raw  # made again, for the new file


@pytest.mark.parametrize("tail", ["torn", "out of order", "of another month"])
def test_a_tail_that_does_not_just_continue_the_prefix_counts_as_in_a_raw_read(
    tmp_path: Path, tail: str
) -> None:
    store = store_at(tmp_path)
    write(store, steady(START, 1440))
    october = store.months(*PAIR, "check")[1][1]
    since, until = START, START + 2 * 1440 * MIN
    if tail == "torn":  # a write cut short: the next record is glued to it, a bad line
        with october[0].open("ab") as fh:
            fh.write(b'{"v":1,"t":"2026-10-01T19:59:59Z","rc":2')
    fast_report(store, since, until, 2 * MIN)  # the summary of what is there now
    assert summary_path(october, "2026-10").exists()
    more = steady(START + 1440 * MIN, 30, rc=1)
    if tail == "out of order":  # one into the middle of what was summarised
        more.insert(3, (START + 900 * MIN + timedelta(seconds=20), 2, "a"))
    elif tail == "of another month":  # into September's last hours
        more.insert(3, (START + 60 * MIN + timedelta(seconds=20), 2, "a"))
        with october[0].open("ab") as fh:  # as the daemon never would: in October's file
            fh.write(b'{"v":1,"t":"2026-09-30T21:00:20Z","rc":2,"fp":"a"}\n')
        del more[3]
    write(store, more)
    raw = raw_report(store, since, until, 2 * MIN)
    assert fast_report(store, since, until, 2 * MIN)[0] == raw
    assert fast_report(store, since, until, 2 * MIN, write_before=None)[0] == raw
