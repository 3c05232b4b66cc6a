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

The current month is summarised too, as a *prefix*: when a month's last file
is plain (the current month, or late records beside an archive) the summary
covers its first `end` bytes, up to the end of a complete line, and stays
valid while that file is the same one (device, inode), at least `end` bytes
long, and the last bytes before `end` have the same digest: the daemon only
ever appends whole lines. A report reads only the bytes after `end` and
summarises them in memory (`extend`), in spans of their own, as if `end`
were the boundary between two files: no span crosses it, so a span stands
for exactly the records it summarised, and the records after it follow as
they would in a raw read. The report writes the extended summary back when
more than TAIL_BYTES were new, so a report at a month's end reads a few
hours of records rather than the month.

A month whose records are not in time order, or not all of that month, gets
a summary with no spans (`ordered` false): reports read it record by record.
"""

from __future__ import annotations

import gzip
import hashlib
import io
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

VERSION = 2  # 2: the prefix of a plain last file
SUFFIX = ".summary.json"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
DAY_US = 86_400_000_000
MIN_BREAK_US = 120_000_000  # never break below two minutes: the shortest cover a report uses
MARK_BYTES = 4096  # the bytes before a prefix's end whose digest says the file is still it
# A report writes a summary of an open month (or of more of it) when it has read more than
# this after what is summarised (~450 one-minute records): it has just parsed them, so the
# summary costs one small write; and then no report reads more than this record by record.
TAIL_BYTES = 64 * 1024

FileKey = tuple[str, int, int]  # name, size, mtime_ns
Row = tuple[int, int, str | None, int, int, int]  # t, rc, fp, file, start, end
Line = tuple[int, int, dict[str, Any]]  # start, end, record


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
class Prefix:
    """How much of a plain last file a summary covers: its first `end` bytes (up to the end
    of a line), of the file with this `dev` and `ino`, whose last MARK_BYTES before `end`
    have the digest `mark`."""

    end: int
    dev: int
    ino: int
    mark: str

    @classmethod
    def from_list(cls, row: Any) -> Prefix | None:
        if row is None:
            return None
        if not isinstance(row, list) or len(row) != 4 or not isinstance(row[3], str):
            raise ValueError("prefix is not [end, dev, ino, mark]")
        end, dev, ino, mark = row
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (end, dev, ino)):
            raise ValueError("prefix end, dev or ino is not an integer")
        if end < 0:
            raise ValueError("prefix end is negative")
        return cls(end, dev, ino, mark)


@dataclass(frozen=True, slots=True)
class MonthSummary:
    month: str  # YYYY-MM
    files: tuple[FileKey, ...]
    ordered: bool  # False: the records are not in time order (or not of this month): no spans
    spans: tuple[Span, ...]
    prefix: Prefix | None = None  # how much of the last file, when it is plain (else all)

    def encode(self) -> bytes:
        """The document, then a line with its digest."""
        p = self.prefix
        body = json.dumps(
            {
                "version": VERSION,
                "month": self.month,
                "files": [list(k) for k in self.files],
                "ordered": self.ordered,
                "spans": [s.to_list() for s in self.spans],
                "prefix": None if p is None else [p.end, p.dev, p.ino, p.mark],
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
        prefix = Prefix.from_list(doc["prefix"])
        rows = tuple(Span.from_list(s, len(keys)) for s in spans)
        if prefix is not None and any(s.end > prefix.end for s in rows if s.file == len(keys) - 1):
            raise ValueError("span beyond the prefix")
        return cls(month, tuple(keys), ordered, rows, prefix)


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


def summarise(month: str, paths: Sequence[Path]) -> MonthSummary:
    """The summary of one month's files: the last one, when plain, up to the end of its
    last complete line when it was opened (the daemon may be appending to it). Raises
    OSError (and friends) when a file cannot be read."""
    lo, hi = month_bounds(month)
    keys: list[FileKey] = []
    rows: list[Row] = []
    ordered, last, prefix = True, lo, None
    for index, path in enumerate(paths):
        plain_last = index == len(paths) - 1 and not path.name.endswith(".gz")
        fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        with fh:
            st = os.fstat(fh.fileno())
            keys.append((path.name, st.st_size, st.st_mtime_ns))
            if plain_last:
                lines, stop = _plain_lines(fh, 0, st.st_size)
                prefix = Prefix(stop, st.st_dev, st.st_ino, _mark(fh.fileno(), stop))
            else:
                lines = list(_lines(fh))
        ordered = _rows(lines, index, lo, hi, last, rows) and ordered
        last = rows[-1][0] if rows else last
    if not ordered:
        return MonthSummary(month, tuple(keys), False, (), prefix)
    return MonthSummary(month, tuple(keys), True, tuple(_spans(rows)), prefix)


def _rows(lines: list[Line], index: int, lo: int, hi: int, last: int, rows: list[Row]) -> bool:
    """Append the rows of the report's points among `lines` (of file `index`) to `rows`;
    whether they are all of the month [lo, hi) and in time order after `last`."""
    ordered = True
    for start, end, record in lines:
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
    return ordered


def extend(summary: MonthSummary, paths: Sequence[Path]) -> MonthSummary | None:
    """The summary of the files as they are now, from one of a prefix of them (`load` found
    it valid): the bytes after its prefix summarised in spans of their own. None when the
    last file is no longer the one summarised, or cannot be read. Raises nothing."""
    prefix = summary.prefix
    if prefix is None or not summary.ordered:
        return summary
    path = paths[-1]
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not _continues(fh.fileno(), st, prefix):
                return None
            if st.st_size == prefix.end:
                return summary
            lines, stop = _plain_lines(fh, prefix.end, st.st_size)
            mark = _mark(fh.fileno(), stop) if stop > prefix.end else prefix.mark
    except OSError as err:
        log.debug("cannot read %s: %s", path, err)
        return None
    files = (*summary.files[:-1], (path.name, st.st_size, st.st_mtime_ns))
    grown = Prefix(stop, prefix.dev, prefix.ino, mark)
    lo, hi = month_bounds(summary.month)
    rows: list[Row] = []
    last = summary.spans[-1].last if summary.spans else lo
    ordered = _rows(lines, len(paths) - 1, lo, hi, last, rows)
    if not ordered:
        return MonthSummary(summary.month, files, False, (), grown)
    return MonthSummary(summary.month, files, True, summary.spans + tuple(_spans(rows)), grown)


def _continues(fd: int, st: os.stat_result, prefix: Prefix) -> bool:
    """Whether the open file `fd` (stat `st`) is the one `prefix` summarised, grown or not."""
    same = (st.st_dev, st.st_ino) == (prefix.dev, prefix.ino) and st.st_size >= prefix.end
    return same and _mark(fd, prefix.end) == prefix.mark


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mark(fd: int, end: int) -> str:
    size = min(end, MARK_BYTES)
    return hashlib.blake2b(os.pread(fd, size, end - size), digest_size=16).hexdigest()


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


def _span(first: Row, last: Row, count: int, gap: int) -> Span:
    return Span(first[0], last[0], first[1], first[2], count, gap, first[3], first[4], last[5])


def _lines(fh: io.BufferedIOBase) -> Iterator[Line]:
    """(start, end, record) of each record line, as `history.read_records` reads them."""
    pos = 0
    for raw in fh:
        start, pos = pos, pos + len(raw)
        if not raw.endswith(b"\n"):
            break  # a torn last line
        record = _record(raw)
        if record is not None:
            yield start, pos, record


def _plain_lines(fh: io.BufferedIOBase, start: int, stop: int) -> tuple[list[Line], int]:
    """The record lines of a plain file between `start` (the start of a line) and `stop`,
    and the end of the last complete one: what comes after it is torn, or not yet
    written."""
    fh.seek(start)
    data = fh.read(stop - start)
    lines: list[Line] = []
    pos = 0
    while (nl := data.find(b"\n", pos)) >= 0:
        record = _record(data[pos : nl + 1])
        if record is not None:
            lines.append((start + pos, start + nl + 1, record))
        pos = nl + 1
    return lines, start + pos


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
        if summary.month != month or len(summary.files) != len(paths):
            return None
        keys = file_keys(paths)
        if keys is None or keys[:-1] != summary.files[:-1]:
            return None
        if keys[-1] == summary.files[-1]:
            return summary  # as it was
        prefix, path = summary.prefix, paths[-1]
        if prefix is None or keys[-1][0] != summary.files[-1][0] or path.name.endswith(".gz"):
            return None
        try:
            with open(path, "rb") as fh:
                if not _continues(fh.fileno(), os.fstat(fh.fileno()), prefix):
                    return None
        except OSError:
            return None
        return summary  # appended to since: `extend` reads the rest

    def make(self, month: str, paths: Sequence[Path], *, save: bool = True) -> MonthSummary | None:
        """Summarise these files and (with `save`) write the summary beside them when we
        may: None when a file cannot be read, or an archive changed while it was read."""
        try:
            summary = summarise(month, paths)
        except (OSError, EOFError, zlib.error) as err:
            log.debug("cannot summarise %s: %s", paths[0], err)
            return None
        keys = file_keys(paths)
        if keys is None or keys[:-1] != summary.files[:-1]:
            return None  # replaced while read (a plain last file is read to its size then)
        if summary.prefix is None and keys[-1] != summary.files[-1]:
            return None
        if save:
            self.save(summary, paths)
        return summary

    def current(
        self, month: str, paths: Sequence[Path], write_before: str | None
    ) -> MonthSummary | None:
        """The summary of these files as they are now, or None: the saved one, extended by
        what was appended after its prefix. With `write_before` (YYYY-MM) it is written
        when we may: made for a month before it that has none, and made or written back
        for any month when more than TAIL_BYTES of it were not summarised."""
        summary = self.load(month, paths)
        if summary is None:
            if write_before is None or not self.writable(paths):
                return None
            if month < write_before or _size(paths[-1]) > TAIL_BYTES:
                return self.make(month, paths)
            return None
        grown = extend(summary, paths)
        if (
            grown is not None
            and grown.prefix is not None
            and summary.prefix is not None
            and grown.prefix.end - summary.prefix.end > TAIL_BYTES
            and write_before is not None
            and self.writable(paths)
        ):
            self.save(grown, paths)
        return grown

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
