"""A year of availability reports, read record by record and through month summaries.

    python3 bench/report_year.py DIR [PAIRS] [--archive] [--current-only]

Writes PAIRS (default 10) pairs of one-minute check history for the twelve
months of 2025 under DIR/history (in the exact on-disk format, ~56 MB per pair
plain), with a few outages per pair and a three-hour daemon stop for all,
then times the report of each pair over 2025 (and over a period that starts
mid-January, so a span is cut by its start) in CPU seconds (process time):
every record read, the first report through summaries (which writes them),
and the next ones. Every way must give the same figures, or the script
fails. With --archive the months are gzipped first (`history archive`), as
the monthly cron job leaves them.

Then the report of the last 365 days at 31 January 2026 18:00, which
includes the current month (January, 44,280 records a pair, written then):
every record; closed months through summaries but the current month read
record by record (no summary of it, as before prefix summaries); the first
report that summarises the current month's prefix (and writes it); and, after
six more hours were appended to every pair, the report that reads only those
(and again). --current-only skips the calendar-year reports. Delete DIR
afterwards.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from survivor.clock import utc_iso
from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore, month_of
from survivor.store.summary import SummaryStore
from survivor.views.availability import availability, check_availability

YEAR = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
COVER = 2 * MIN
STOP = (datetime(2025, 3, 9, 2, 0, tzinfo=UTC), datetime(2025, 3, 9, 5, 0, tzinfo=UTC))


NOW = datetime(2026, 1, 31, 18, 0, tzinfo=UTC)  # "now" for the last 365 days


def generate(
    store: HistoryStore, pairs: int, begin: datetime = YEAR, end: datetime = END, seed: int = 22
) -> int:
    """One-minute records of every pair from `begin` to `end`, appended to the month files."""
    rnd = random.Random(seed)
    written = 0
    minutes = (end - begin) // MIN
    for p in range(pairs):
        host, check = f"host{p:04d}", "ping"
        outages = []
        for _ in range(max(1, 6 * minutes // (365 * 1440))):
            start = begin + timedelta(minutes=rnd.randrange(minutes))
            outages.append((start, start + timedelta(minutes=rnd.randrange(2, 90))))
        offset = timedelta(milliseconds=rnd.randrange(60_000))  # the pair's slot in the minute
        by_month: dict[str, list[bytes]] = {}
        t = begin + offset
        while t < end:
            if not STOP[0] <= t < STOP[1]:
                rc = 1 if any(lo <= t < hi for lo, hi in outages) else 0
                jitter = timedelta(milliseconds=rnd.randrange(40))
                doc = {
                    "v": 1,
                    "t": utc_iso(t + jitter),
                    "rc": rc,
                    "scalar": 12,
                    "comment": "3/3 replies" if rc == 0 else "0/3 replies",
                    "duration_ms": 41,
                    "fp": "3f9a1c0e7b2d",
                    "gen": 14,
                }
                line = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
                by_month.setdefault(month_of(t), []).append(line)
                written += 1
            t += MIN
        directory = store.pair_dir(host, check)
        directory.mkdir(parents=True, exist_ok=True)
        for month, lines in by_month.items():
            with (directory / f"check-{month}.jsonl").open("ab") as fh:
                fh.write(b"".join(lines))
    return written


def reports(
    store: HistoryStore,
    pairs: int,
    since: datetime,
    way: str,
    until: datetime = END,
    write: str | None = month_of(END),
) -> tuple[float, list[str]]:
    """CPU seconds for every pair's report, and the reports as JSON."""
    out = []
    cpu = time.process_time()
    for p in range(pairs):
        pair = (f"host{p:04d}", "ping")
        if way == "raw":
            records = store.read(*pair, "check", since=since - COVER)
            report = availability(records, since, until, COVER)
        else:
            report = check_availability(store, pair, since, until, COVER, (), None, write)
        out.append(json.dumps(report.to_dict()))
    return time.process_time() - cpu, out


def table(label: str, pairs: int, raw: float, rows: list[tuple[str, float]]) -> None:
    scale = 1000 / pairs
    print(f"\n{label}: {pairs} pairs, CPU s (x{scale:g} for 1,000 pairs), ratio to raw")
    for name, spent in rows:
        print(f"  {name:<48} {spent:8.2f} s  {spent * scale:9.1f} s  {raw / spent:8.1f}x")


def last_365_days(store: HistoryStore, pairs: int) -> None:
    """The report of the last 365 days at NOW: the current month with and without a summary
    of its prefix."""
    cpu = time.process_time()
    generate(store, pairs, END, NOW, seed=23)
    print(f"\ngenerated January 2026 to {NOW:%d %H:%M} in {time.process_time() - cpu:.1f} s")
    since, current = NOW - timedelta(days=365), month_of(NOW)
    raw, expected = reports(store, pairs, since, "raw", NOW)
    rows = [("every record", raw)]
    ways = [
        ("closed months summarised, current one raw", None),
        ("first, summarising the current month", current),
        ("current month summarised", current),
    ]
    for name, write in ways:
        spent, got = reports(store, pairs, since, "summaries", NOW, write)
        if got != expected:
            raise SystemExit(f"last 365 days: {name} differs from reading every record")
        rows.append((name, spent))
    later = NOW + timedelta(hours=6)
    generate(store, pairs, NOW, later, seed=24)
    since = later - timedelta(days=365)
    raw6, expected = reports(store, pairs, since, "raw", later)
    for name in ("6 h appended after the summary", "6 h appended, again"):
        spent, got = reports(store, pairs, since, "summaries", later, current)
        if got != expected:
            raise SystemExit(f"last 365 days: {name} differs from reading every record")
        rows.append((name, spent))
    table("last 365 days at 31 Jan 18:00 (+6 h)", pairs, raw, rows)
    print(f"  every record, 6 h later: {raw6:.2f} s")


def main() -> None:
    root = Path(sys.argv[1])
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 10
    store = HistoryStore(root / "history", FileWriter(FsyncPolicy.NEVER))
    cpu = time.process_time()
    records = generate(store, pairs)
    print(f"generated {records:,} records for {pairs} pairs in {time.process_time() - cpu:.1f} s")
    if "--archive" in sys.argv:
        cpu = time.process_time()
        store.archive(month_of(END))
        print(f"archived in {time.process_time() - cpu:.1f} s CPU")
    if "--current-only" in sys.argv:
        SummaryStore(store).refresh_all(month_of(END))
        last_365_days(store, pairs)
        return
    for label, since in (("calendar 2025", YEAR), ("from 15 Jan 10:17", YEAR + timedelta(14.43))):
        raw, expected = reports(store, pairs, since, "raw")
        rows = [("every record", raw)]
        if since == YEAR:
            cpu = time.process_time()
            made = SummaryStore(store).refresh_all(month_of(END))
            rows.append((f"history archive: {made} summaries made", time.process_time() - cpu))
        for way in ("summaries", "summaries, again"):
            spent, got = reports(store, pairs, since, way)
            if got != expected:
                raise SystemExit(f"{label}: {way} differs from reading every record")
            rows.append((way, spent))
        table(label, pairs, raw, rows)
        print(f"  every record: {records / raw:,.0f} records/s")
    last_365_days(store, pairs)


if __name__ == "__main__":
    main()
