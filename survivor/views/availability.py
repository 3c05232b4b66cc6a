"""Availability from history alone: how long a check@host spent in each code, and its outages.

Pure: `availability()` takes a pair's check records (oldest first, as the
history store reads them), the period, the longest a record may count for,
and any downtime windows, and returns the report. `pair_availability()` is
the one reader, shared by `survivor report` and the web page so that both
count alike: it reads the pair's check and command records and passes the
downtime windows `survivor.downtime.report_windows` finds in them and in the
config.

How time is counted (issue 22, "availability reports"):

* a record covers the time from its `t` until the next record, but at most
  `max_cover` (twice the check's interval): a daemon that was stopped, a
  disk that was full, a check that was not configured yet leave time that no
  record covers, and that time is **unknown**, never OK;
* codes are grouped as OK, WARNING, PROBLEM and other (TIMEDOUT, MISCONFIG,
  DEPEND, NOTICE, custom codes: each also counted by name);
* time inside a downtime window is counted apart (`downtime`), whatever the
  code, and is not part of the shares: operator downtimes from the pair's
  command records (from their start, or from when they were added if later,
  to their end or removal), and the recurring windows of the current config;
* an outage is a run of failing results (`model.codes.is_failing`) from its
  first result to the first result that is not failing (the recovery); an
  outage still open at the end of the period is listed but has no recovery,
  and the mean time to recover counts only outages that recovered;
* records of other incarnations (fingerprints) count the same: the report is
  about the service, and it lists the fingerprints seen.

A year of one-minute checks is half a million records per pair, so closed
months are read from their summaries (`survivor.store.summary`) where that
gives the same answer: a span of records of one code whose largest gap is
within the cover is covered from its first record to its last without a
break, so it counts as one stretch and its last record, exactly as its
records one by one would. A span the period's start or end cuts, or whose
gaps the cover does not span, is read record by record (a day at most), and
so is a month without a usable summary. Time is added up in whole
microseconds (timedelta), so the sum does not depend on how it was cut.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from survivor.clock import parse_time, utc_iso
from survivor.downtime import report_windows
from survivor.model.codes import ReturnCode, code_name, is_failing
from survivor.model.config import Config, Schedule
from survivor.store.history import BadLine, HistoryStore, at_or_after, month_of
from survivor.store.summary import US, Span, SummaryStore, from_micros, micros

GROUPS = ("OK", "WARNING", "PROBLEM", "other", "unknown")
DAY = timedelta(days=1)


def max_cover(schedule: Schedule | None, retry: timedelta | None = None) -> timedelta:
    """How long one result may stand for: twice the longest interval the schedule asks
    for (`every`), a day for `at`-only or `never` schedules; at least two minutes."""
    longest = (
        max((line.every for line in schedule.lines if line.every), default=None)
        if schedule
        else None
    )
    if longest is None:
        longest = DAY
    if retry is not None:
        longest = max(longest, retry)
    return max(2 * longest, 2 * timedelta(minutes=1))


@dataclass(frozen=True, slots=True)
class Outage:
    start: datetime
    end: datetime | None  # the recovery; None while still failing at the end of the period
    worst: str  # the code name of its worst result (PROBLEM before WARNING before others)

    def duration(self, until: datetime) -> timedelta:
        return (self.end or until) - self.start

    def to_dict(self, until: datetime) -> dict[str, Any]:
        return {
            "start": utc_iso(self.start),
            "end": None if self.end is None else utc_iso(self.end),
            "seconds": round(self.duration(until).total_seconds(), 3),
            "worst": self.worst,
            "recovered": self.end is not None,
        }


@dataclass(slots=True)
class Availability:
    """One pair's report over [since, until)."""

    since: datetime
    until: datetime
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    by_code: dict[str, float] = field(default_factory=dict)  # every code by name
    downtime: float = 0.0
    downtime_windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    records: int = 0

    def share(self, group: str) -> float:
        """The share of the period outside downtime spent in `group` (0..1)."""
        total = sum(self.seconds.values())
        return self.seconds[group] / total if total else 0.0

    def mean_time_to_recover(self) -> float | None:
        done = [o.duration(self.until).total_seconds() for o in self.outages if o.end]
        return sum(done) / len(done) if done else None

    def longest_outage(self) -> float | None:
        if not self.outages:
            return None
        return max(o.duration(self.until).total_seconds() for o in self.outages)

    def to_dict(self) -> dict[str, Any]:
        mttr = self.mean_time_to_recover()
        return {
            "since": utc_iso(self.since),
            "until": utc_iso(self.until),
            "seconds": {g: round(s, 3) for g, s in self.seconds.items()},
            "share": {g: round(self.share(g), 6) for g in GROUPS},
            "by_code": {c: round(s, 3) for c, s in sorted(self.by_code.items())},
            "downtime_seconds": round(self.downtime, 3),
            "downtime_windows": [
                {"start": utc_iso(lo), "end": utc_iso(hi)} for lo, hi in self.downtime_windows
            ],
            "outages": len(self.outages),
            "longest_outage_seconds": self.longest_outage(),
            "mean_time_to_recover_seconds": None if mttr is None else round(mttr, 3),
            "outage_list": [o.to_dict(self.until) for o in self.outages],
            "fingerprints": self.fingerprints,
            "records": self.records,
        }


def group_of(rc: int) -> str:
    if rc == ReturnCode.OK:
        return "OK"
    if rc == ReturnCode.WARNING:
        return "WARNING"
    if rc == ReturnCode.PROBLEM:
        return "PROBLEM"
    return "other"


_WORST_FIRST = ("PROBLEM", "WARNING")

# (t, rc, through): a record at t, covered until `through` when it starts a span (then the
# cover is not what limits it), else for at most the cover
Point = tuple[datetime, int, datetime | None]


def availability(
    records: Iterable[Mapping[str, Any] | Span],
    since: datetime,
    until: datetime,
    max_cover: timedelta,
    downtimes: Sequence[tuple[datetime, datetime]] = (),
) -> Availability:
    """The report of one pair over [since, until) from its check records, oldest first.

    Records before `since` matter: the last one says what the period began with
    (within `max_cover`). Records with no parsable `t` or `rc` are skipped.
    `downtimes` must not overlap (`survivor.downtime.merge_spans`). A `Span` of a
    month summary stands for its records: one wholly before `since`, or one inside
    the period whose gaps `max_cover` spans (`pair_availability` passes no other).
    """
    report = Availability(since, until)
    report.downtime_windows = [(lo, hi) for lo, hi in downtimes if hi > since and lo < until]
    tally = _Tally(downtimes)
    points = _points(records, since, until, max_cover, report)
    if not points or points[0][0] > since:
        first = points[0][0] if points else until
        tally.add(since, first, "", "unknown")
    for i, (t, rc, through) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else until
        covered_to = min(t + max_cover if through is None else through, nxt, until)
        tally.add(max(t, since), covered_to, code_name(rc), group_of(rc))
        tally.add(max(covered_to, since), nxt, "", "unknown")
    tally.settle(report)
    report.outages = _outages(points, since, until)
    return report


class Interleaved(ValueError):
    """A record lies amid those a span stands for (a month file holding records of another
    month, read as it is): the spans do not give the same answer; read every record."""


def pair_availability(
    history: HistoryStore,
    config: Config,
    pair: tuple[str, str],
    since: datetime,
    until: datetime,
    tz: tzinfo,
    bad: list[BadLine] | None = None,
    summarise_before: str | None = None,
) -> Availability:
    """The report of one configured pair, read from its history: `survivor report` and the
    web page both call this. Command records are read whole (they are few), since a
    downtime may have been added long before the period it falls in. Closed months are
    read from their summaries where they give the same answer (`check_records`); the
    CLI passes the current month as `summarise_before` to write missing ones."""
    host, check = pair
    checkdef, hostdef = config.checks[check], config.hosts[host]
    cover = max_cover(config.schedule_for(checkdef, hostdef), checkdef.retry)
    commands = _before(history.read(host, check, "command", bad=bad), until)
    windows = report_windows(config, pair, commands, since, until, tz)
    return check_availability(history, pair, since, until, cover, windows, bad, summarise_before)


def check_availability(
    history: HistoryStore,
    pair: tuple[str, str],
    since: datetime,
    until: datetime,
    cover: timedelta,
    downtimes: Sequence[tuple[datetime, datetime]] = (),
    bad: list[BadLine] | None = None,
    summarise_before: str | None = None,
) -> Availability:
    """`availability` of the pair's check history, through summaries where they give the
    same answer (`check_records`), and from every record when they turn out not to."""
    try:
        records = check_records(history, pair, since, until, cover, bad, summarise_before)
        return availability(records, since, until, cover, downtimes)
    except Interleaved:
        records = history.read(*pair, "check", since=since - cover, bad=bad)
        return availability(records, since, until, cover, downtimes)


def check_records(
    history: HistoryStore,
    pair: tuple[str, str],
    since: datetime,
    until: datetime,
    cover: timedelta,
    bad: list[BadLine] | None = None,
    summarise_before: str | None = None,
) -> Iterator[Mapping[str, Any] | Span]:
    """What `availability` needs of the pair's check history: what `history.read(since=
    since - cover)` reads, with the spans of month summaries in place of their records
    where they count the same. A summary of a prefix of a month (the current one) is
    extended by what was appended since, read record by record. With `summarise_before`
    (YYYY-MM), summaries are written when the history directory lets us: for a month
    before it that has no valid one, and for any month of which more than TAIL_BYTES
    would otherwise be read record by record."""
    host, check = pair
    summaries = SummaryStore(history)
    lo = since - cover
    for month, paths in history.months(host, check, "check"):
        if month < month_of(lo):
            continue
        summary = summaries.current(month, paths, summarise_before)
        items = None
        if summary is not None and summary.ordered:
            items = _month_items(summaries, paths, summary.spans, lo, since, until, cover)
        if items is None:
            yield from history.read_files(paths, since=lo, bad=bad)
        else:
            yield from items


def _month_items(
    summaries: SummaryStore,
    paths: list[Path],
    spans: Sequence[Span],
    lo: datetime,
    since: datetime,
    until: datetime,
    cover: timedelta,
) -> list[Mapping[str, Any] | Span] | None:
    """A summarised month's spans and the records of those read one by one; None when
    those cannot be read (then the month is read as it is, reporting why)."""
    lo_us, since_us, until_us, cover_us = micros(lo), micros(since), micros(until), cover // US
    items: list[Mapping[str, Any] | Span] = []
    for span in spans:
        if span.last < lo_us or span.first >= until_us:
            continue  # what `read(since=lo)` drops, or what the report ignores
        if span.last < since_us or (
            span.first >= since_us and span.last < until_us and span.gap <= cover_us
        ):
            items.append(span)
            continue
        try:
            items.extend(r for r in summaries.span_records(paths, span) if at_or_after(r, lo))
        except (OSError, EOFError, zlib.error):
            return None
    return items


def _before(records: Iterable[dict[str, Any]], until: datetime) -> Iterator[dict[str, Any]]:
    """Records made before `until`: what was done later cannot change the period."""
    for record in records:
        t = parse_time(record.get("t"))
        if t is not None and t < until:
            yield record


def _points(
    records: Iterable[Mapping[str, Any] | Span],
    since: datetime,
    until: datetime,
    cover: timedelta,
    report: Availability,
) -> list[Point]:
    """Points in time order: the last record before `since` (it may cover the period's
    start), then every record inside the period; a span inside the period is two points,
    its first (covered through to its last) and its last."""
    before: Point | None = None
    inside: list[Point] = []
    stretches: list[tuple[Point, Point]] = []  # the two points of a span (these objects)
    for record in records:
        if isinstance(record, Span):
            first, last = from_micros(record.first), from_micros(record.last)
            if last < since:  # only its last record can be the one before the period
                if before is None or last >= before[0]:
                    before = (last, record.rc, None)
                continue
            if first < since or last >= until or record.gap > cover // US:
                raise ValueError("a span the period cuts or the cover does not span")
            end: Point = (last, record.rc, None)
            if record.count > 1:
                start: Point = (first, record.rc, last)
                stretches.append((start, end))
                inside.append(start)
            inside.append(end)
            report.records += record.count
            fp: object = record.fp
        else:
            t, rc = parse_time(record.get("t")), record.get("rc")
            if t is None or not isinstance(rc, int) or isinstance(rc, bool) or t >= until:
                continue
            if t < since:
                if before is None or t >= before[0]:
                    before = (t, rc, None)
                continue
            inside.append((t, rc, None))
            report.records += 1
            fp = record.get("fp")
        if isinstance(fp, str) and fp not in report.fingerprints:
            report.fingerprints.append(fp)
    inside.sort(key=lambda p: p[0])
    if stretches:
        at = {id(p): i for i, p in enumerate(inside)}
        if any(at[id(b)] != at[id(a)] + 1 for a, b in stretches):
            # a record (of a month read as it is) amid the records a span stands for
            raise Interleaved("a record inside a span")
    return [before, *inside] if before is not None else inside


class _Tally:
    """Time per group and code, and in downtime, added up exactly (timedelta)."""

    def __init__(self, downtimes: Sequence[tuple[datetime, datetime]]) -> None:
        self.downtimes = downtimes
        self.groups: dict[str, timedelta] = {}
        self.codes: dict[str, timedelta] = {}
        self.downtime = timedelta(0)

    def add(self, start: datetime, end: datetime, code: str, group: str) -> None:
        """Add [start, end) to `group` (and `code`), less the parts inside downtime."""
        if end <= start:
            return
        inside = timedelta(0)
        for d_start, d_end in self.downtimes:
            lo, hi = max(start, d_start), min(end, d_end)
            if hi > lo:
                inside += hi - lo
        outside = end - start - inside
        self.downtime += inside
        self.groups[group] = self.groups.get(group, timedelta(0)) + outside
        if code:
            self.codes[code] = self.codes.get(code, timedelta(0)) + outside

    def settle(self, report: Availability) -> None:
        report.downtime = self.downtime.total_seconds()
        for group, span in self.groups.items():
            report.seconds[group] = span.total_seconds()
        report.by_code = {code: span.total_seconds() for code, span in self.codes.items()}


def _outages(points: Sequence[Point], since: datetime, until: datetime) -> list[Outage]:
    outages: list[Outage] = []
    start: datetime | None = None
    worst = ""
    for t, rc, _through in points:
        if is_failing(rc):
            name = group_of(rc) if group_of(rc) in _WORST_FIRST else code_name(rc)
            if start is None:
                start, worst = max(t, since), name
            elif _worse(name, worst):
                worst = name
        elif start is not None:
            if t > since:
                outages.append(Outage(start, t, worst))
            start = None
    if start is not None:
        outages.append(Outage(start, None, worst))
    return [o for o in outages if o.start < until]


def _worse(a: str, b: str) -> bool:
    rank = {name: i for i, name in enumerate(_WORST_FIRST)}
    return rank.get(a, len(rank)) < rank.get(b, len(rank))
