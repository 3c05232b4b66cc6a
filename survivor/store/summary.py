"""Month summaries: a closed month of a pair's check history as runs of one code (issue 22).

A year of one-minute checks is half a million records per pair, and a report that
reads each one takes an hour for 1,000 pairs. A month summary holds what the
availability report needs of one month file set (`check-2026-10.jsonl.gz` and
a late plain file beside it, if any) in a few dozen *spans*: consecutive
records with the same `rc` and `fp`, in one file and one UTC day, broken too
at every gap larger than twice the month's median gap. A span keeps its first
and last `t`, its code, fingerprint, number of records, the largest gap
inside it, and where its lines are (file, byte range of the uncompressed
stream), so a report can read just those lines when it needs the records
themselves (`span_records`).

Summaries are derived data, never history: one hidden file per month beside
the month files, `.check-2026-10.summary.json` (no reader of month files
matches it; `history prune` removes it with its month). It is used only while
every month file it was made from still has the same name, size and mtime
(so a late record or a new archive makes it stale), and its last line is a
digest of the rest (so a torn or garbled file is ignored, not believed).
Written through `FileWriter.replace` by `survivor history archive` and by
`survivor report` when they may write there; anyone else just reads slower.

A month whose records are not in time order, or not all of that month, gets
a summary with no spans (`ordered` false): reports read it record by record.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import os
import statistics
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from survivor.clock import parse_iso
from survivor.store.fsio import DiskWriteError
from survivor.store.history import HistoryStore

log = logging.getLogger(__name__)

VERSION = 1
SUFFIX = ".summary.json"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
DAY_US = 86_400_000_000
MIN_BREAK_US = 120_000_000  # never break below two minutes: the shortest cover a report uses

FileKey = tuple[str, int, int]  # name, size, mtime_ns


def micros(t: datetime) -> int:
    """Microseconds since the epoch: exact, unlike a float timestamp."""
    return (t - EPOCH) // US


def from_micros(us: int) -> datetime:
    return EPOCH + us * US


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive records of one code and fingerprint: `count` records from `first` to
    `last` (microseconds since the epoch), no two of them further apart than `gap`."""

    first: int
    last: int
    rc: int
    fp: str | None
    count: int
    gap: int
    file: int  # index into the month's files
    start: int  # byte offset of its first line in the (uncompressed) file
    end: int  # byte offset after its last line

    def to_list(self) -> list[Any]:
        return [
            self.first,
            self.last,
            self.rc,
            self.fp,
            self.count,
            self.gap,
            self.file,
            self.start,
            self.end,
        ]

    @classmethod
    def from_list(cls, row: Any, files: int) -> Span:
        if not isinstance(row, list) or len(row) != 9:
            raise ValueError("span is not a list of nine")
        first, last, rc, fp, count, gap, file, start, end = row
        ints = (first, last, rc, count, gap, file, start, end)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError("span field is not an integer")
        if fp is not None and not isinstance(fp, str):
            raise ValueError("span fingerprint is not a string")
        if not (first <= last and count >= 1 and 0 <= gap <= last - first):
            raise ValueError("span times do not add up")
        if not (0 <= file < files and 0 <= start < end):
            raise ValueError("span position out of range")
        return cls(first, last, rc, fp, count, gap, file, start, end)


@dataclass(frozen=True, slots=True)
class MonthSummary:
    month: str  # YYYY-MM
    files: tuple[FileKey, ...]
    ordered: bool  # False: the records are not in time order (or not of this month): no spans
    spans: tuple[Span, ...]

    def encode(self) -> bytes:
        """The document, then a line with its digest."""
        body = json.dumps(
            {
                "version": VERSION,
                "month": self.month,
                "files": [list(k) for k in self.files],
                "ordered": self.ordered,
                "spans": [s.to_list() for s in self.spans],
            },
            separators=(",", ":"),
        ).encode()
        return body + b"\n" + _digest(body) + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> MonthSummary:
        """Raises ValueError on anything but a whole, well-formed summary."""
        body, _, digest = data.rstrip(b"\n").rpartition(b"\n")
        if not body or digest != _digest(body):
            raise ValueError("digest does not match")
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError("not a summary of this version")
        month, files, ordered, spans = doc["month"], doc["files"], doc["ordered"], doc["spans"]
        if not isinstance(month, str) or not isinstance(ordered, bool):
            raise ValueError("month or ordered of the wrong type")
        if not isinstance(files, list) or not isinstance(spans, list) or not files:
            raise ValueError("files or spans are not lists")
        keys: list[FileKey] = []
        for k in files:
            if not (isinstance(k, list) and len(k) == 3 and isinstance(k[0], str)):
                raise ValueError("file key is not [name, size, mtime_ns]")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in k[1:]):
                raise ValueError("file key size or mtime is not an integer")
            keys.append((k[0], k[1], k[2]))
        return cls(month, tuple(keys), ordered, tuple(Span.from_list(s, len(keys)) for s in spans))


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).hexdigest().encode()


def file_keys(paths: Sequence[Path]) -> tuple[FileKey, ...] | None:
    """What a summary of these files is valid for; None when one cannot be stat()ed."""
    keys = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        keys.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(keys)


def summary_path(paths: Sequence[Path], month: str) -> Path:
    """`.check-2026-10.summary.json` beside `check-2026-10.jsonl[.gz]`."""
    first = paths[0]
    stem = first.name[: first.name.index(f"-{month}.jsonl")]
    return first.with_name(f".{stem}-{month}{SUFFIX}")


def month_bounds(month: str) -> tuple[int, int]:
    """[start, end) of a UTC month in microseconds."""
    year, mon = int(month[:4]), int(month[5:7])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return micros(start), micros(end)


def summarise(month: str, paths: Sequence[Path], keys: tuple[FileKey, ...]) -> MonthSummary:
    """The summary of one month's files, read whole. Raises OSError (and friends) when a
    file cannot be read to its end."""
    lo, hi = month_bounds(month)
    rows: list[tuple[int, int, str | None, int, int, int]] = []  # t, rc, fp, file, start, end
    ordered = True
    last = lo
    for index, path in enumerate(paths):
        for start, end, record in _lines(path):
            t, rc = record.get("t"), record.get("rc")
            if not isinstance(t, str) or not isinstance(rc, int) or isinstance(rc, bool):
                continue  # not a point of the report (as `availability` skips it)
            try:
                us = micros(parse_iso(t))
            except ValueError:
                continue
            if not lo <= us < hi or us < last:
                ordered = False
            last = us
            fp = record.get("fp")
            rows.append((us, rc, fp if isinstance(fp, str) else None, index, start, end))
    if not ordered:
        return MonthSummary(month, keys, False, ())
    return MonthSummary(month, keys, True, tuple(_spans(rows)))


def _spans(rows: list[tuple[int, int, str | None, int, int, int]]) -> Iterator[Span]:
    if not rows:
        return
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(rows)]
    limit = max(2 * int(statistics.median(gaps)) if gaps else 0, MIN_BREAK_US)
    first = prev = rows[0]
    count, gap = 1, 0
    for row in rows[1:]:
        step = row[0] - prev[0]
        if (
            row[1] != first[1]
            or row[2] != first[2]
            or row[3] != first[3]
            or row[0] // DAY_US != first[0] // DAY_US
            or step > limit
        ):
            yield _span(first, prev, count, gap)
            first, count, gap = row, 1, 0
        else:
            count += 1
            gap = max(gap, step)
        prev = row
    yield _span(first, prev, count, gap)


Row = tuple[int, int, str | None, int, int, int]  # t, rc, fp, file, start, end


def _span(first: Row, last: Row, count: int, gap: int) -> Span:
    return Span(first[0], last[0], first[1], first[2], count, gap, first[3], first[4], last[5])


def _lines(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(start, end, record) of each record line, as `history.read_records` reads them."""
    fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    with fh:
        pos = 0
        for raw in fh:
            start, pos = pos, pos + len(raw)
            if not raw.endswith(b"\n"):
                break  # a torn last line
            record = _record(raw)
            if record is not None:
                yield start, pos, record


def _record(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class SummaryStore:
    """Reads, makes and writes month summaries of the check history of pairs."""

    def __init__(self, history: HistoryStore) -> None:
        self.history = history

    def load(self, month: str, paths: Sequence[Path]) -> MonthSummary | None:
        """The summary of these files if there is one and it is still theirs; else None
        (missing, unreadable, garbled, or made from files that have changed since)."""
        try:
            data = summary_path(paths, month).read_bytes()
        except OSError:
            return None
        try:
            summary = MonthSummary.decode(data)
        except (ValueError, KeyError, TypeError, RecursionError) as err:
            log.warning("history summary %s ignored: %s", summary_path(paths, month), err)
            return None
        if summary.month != month or summary.files != file_keys(paths):
            return None
        return summary

    def make(self, month: str, paths: Sequence[Path], *, save: bool = True) -> MonthSummary | None:
        """Summarise these files and (with `save`) write the summary beside them when we
        may: None when a file cannot be read or changed while it was read."""
        keys = file_keys(paths)
        if keys is None:
            return None
        try:
            summary = summarise(month, paths, keys)
        except (OSError, EOFError, zlib.error) as err:
            log.debug("cannot summarise %s: %s", paths[0], err)
            return None
        if file_keys(paths) != keys:
            return None  # appended to (or replaced) while read
        if save:
            self.save(summary, paths)
        return summary

    def save(self, summary: MonthSummary, paths: Sequence[Path]) -> bool:
        path = summary_path(paths, summary.month)
        try:
            self.history.writer.replace(path, summary.encode())
        except (DiskWriteError, OSError) as err:
            log.debug("history summary %s not written: %s", path, err)
            return False
        return True

    def writable(self, paths: Sequence[Path]) -> bool:
        return os.access(paths[0].parent, os.W_OK)

    def refresh(self, host: str, check: str, before: str) -> int:
        """Make the missing or stale summaries of the pair's check months before `before`
        (YYYY-MM); how many were written."""
        written = 0
        for month, paths in self.history.months(host, check, "check"):
            if month < before and self.load(month, paths) is None:
                summary = self.make(month, paths, save=False)
                if summary is not None and self.save(summary, paths):
                    written += 1
        return written

    def refresh_all(self, before: str) -> int:
        """`refresh` for every pair with check history (`history archive` runs this)."""
        return sum(self.refresh(host, check, before) for host, check in self.history.pairs())

    def span_records(self, paths: Sequence[Path], span: Span) -> list[dict[str, Any]]:
        """The records of one span, read from its lines (a day at most). Raises OSError
        (and friends) when they cannot be read."""
        path = paths[span.file]
        fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        with fh:
            fh.seek(span.start)
            data = fh.read(span.end - span.start)
        records = []
        for raw in data.split(b"\n"):
            record = _record(raw)
            if record is not None:
                records.append(record)
        return records
