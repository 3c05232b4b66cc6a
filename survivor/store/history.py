"""HistoryStore: append-only JSON-lines records per entity and month; never prunes.

    history/host/<host>/<check>/check-YYYY-MM.jsonl  alert-  fix-  command-
    history/calllist/<name>-YYYY-MM.jsonl
    history/daemon/events-YYYY-MM.jsonl

A record is one JSON line appended with one `write()` (fsio.FileWriter.append).
`t` is the actual start in UTC and names the month. Readers skip a torn last
line and report (not raise on) unparsable lines. Old months may be compressed
in place (`archive`), and are still read. The only deletion is `prune`, an
explicit operator command that the CLI records in the daemon events history.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.clock import parse_iso, utc_iso
from survivor.model.documents import encode
from survivor.model.names import is_safe_name
from survivor.store.fsio import FileWriter
from survivor.store.layout import HistoryLayout, pair_file_name

log = logging.getLogger(__name__)

RECORD_VERSION = 1
BACKWARD_BLOCK = 65536  # bytes read at a time from the end of a month file
KINDS = ("check", "alert", "fix", "command")
_MONTH_FILE = re.compile(
    r"\A(?P<stem>[A-Za-z0-9._-]+)-(?P<month>\d{4}-\d{2})\.jsonl(?P<gz>\.gz)?\Z"
)


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record, one line: the same JSON as every state document."""
    return encode(record)


def month_of(t: datetime) -> str:
    return month_of_stamp(utc_iso(t))


def month_of_stamp(stamp: str) -> str:
    """`2026-11` of a record's `t` (`utc_iso`)."""
    return stamp[:7]


def _known(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown history kind {kind!r}")
    return kind


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a record: kept on disk, reported to whoever reads."""

    path: Path
    lineno: int
    text: str


class HistoryStore:
    def __init__(self, history_dir: Path, writer: FileWriter) -> None:
        self.root = history_dir
        self.writer = writer
        self.layout = HistoryLayout(history_dir)

    # ---------------------------------------------------------------- paths

    def pair_dir(self, host: str, check: str) -> Path:
        """HOST/CHECK under host/, both names checked to be safe path parts."""
        return self.layout.pair_dir(host, check)

    def pair_file(self, host: str, check: str, kind: str, t: datetime) -> Path:
        return self.layout.pair_file(host, check, _known(kind), month_of(t))

    # ---------------------------------------------------------------- writing

    def append(
        self, host: str, check: str, kind: str, t: datetime, record: Mapping[str, Any]
    ) -> None:
        """Append a record about check@host; `t` (UTC) becomes the record's `t`."""
        stamp = utc_iso(t)
        doc = {"v": RECORD_VERSION, "t": stamp, **record}
        name = pair_file_name(_known(kind), month_of_stamp(stamp))
        self.writer.append_in(self.layout.pair_dir.text(host, check), name, encode_record(doc))

    def append_calllist(self, name: str, t: datetime, record: Mapping[str, Any]) -> None:
        doc = {"v": RECORD_VERSION, "t": utc_iso(t), **record}
        self.writer.append(self.layout.calllist_file(name, month_of(t)), encode_record(doc))

    def append_event(self, t: datetime, event: str, **fields: Any) -> None:
        """A daemon event: start, stop, reload ok/failed, disk errors, history prune."""
        doc = {"v": RECORD_VERSION, "t": utc_iso(t), "event": event, **fields}
        self.writer.append(self.layout.events_file(month_of(t)), encode_record(doc))

    # ---------------------------------------------------------------- reading

    def files(self, directory: Path, stem: str) -> list[Path]:
        """Month files of one stream, oldest first (plain and archived)."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        found: list[tuple[str, bool, Path]] = []
        for name in names:
            m = _MONTH_FILE.match(name)
            if m and m["stem"] == stem:
                found.append((m["month"], not m["gz"], directory / name))
        paths = [p for _, _, p in sorted(found)]  # an archived month before its plain file
        return [p for i, p in enumerate(paths) if not _archived_in_next(p, paths[i + 1 :])]

    def months(self, host: str, check: str, kind: str) -> list[tuple[str, list[Path]]]:
        """The pair's month files of one kind grouped by month, oldest first: an archive
        and the plain file of records that came after it are one month."""
        grouped: dict[str, list[Path]] = {}
        for path in self.files(self.pair_dir(host, check), kind):
            m = _MONTH_FILE.match(path.name)
            assert m is not None
            grouped.setdefault(m["month"], []).append(path)
        return list(grouped.items())

    def pairs(self) -> list[tuple[str, str]]:
        """Every (host, check) with a history directory."""
        found: list[tuple[str, str]] = []
        hosts = self.layout.hosts
        for host in sorted(_subdirs(hosts)):
            found.extend((host, check) for check in sorted(_subdirs(hosts / host)))
        return found

    def read_files(
        self, paths: list[Path], *, since: datetime | None = None, bad: list[BadLine] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of these month files (from `months`), as `read` reads them."""
        for path in paths:
            for record in read_records(path, bad):
                if since is None or at_or_after(record, since):
                    yield record

    def read(
        self,
        host: str,
        check: str,
        kind: str = "check",
        *,
        since: datetime | None = None,
        bad: list[BadLine] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records of check@host of one kind, oldest first."""
        return self._read_stream(self.pair_dir(host, check), kind, since, bad)

    def read_latest(
        self,
        host: str,
        check: str,
        kind: str,
        limit: int,
        *,
        since: datetime | None = None,
        keep: Callable[[dict[str, Any]], bool] = lambda r: True,
        bad: list[BadLine] | None = None,
    ) -> list[dict[str, Any]]:
        """The last `limit` records of check@host of one kind that `keep` wants, oldest
        first, read from the newest month backwards: as cheap for a year as for a day."""
        found: list[dict[str, Any]] = []
        since_month = None if since is None else month_of(since)
        for path in reversed(self.files(self.pair_dir(host, check), kind)):
            m = _MONTH_FILE.match(path.name)
            assert m is not None
            if since_month is not None and m["month"] < since_month:
                break
            for record in read_records_backwards(path, bad):
                if since is not None and not at_or_after(record, since):
                    return found[::-1]  # the records are in time order: none older is wanted
                if keep(record):
                    found.append(record)
                    if len(found) >= limit:
                        return found[::-1]
        return found[::-1]

    def read_events(
        self, *, since: datetime | None = None, bad: list[BadLine] | None = None
    ) -> Iterator[dict[str, Any]]:
        return self._read_stream(self.layout.daemon, "events", since, bad)

    def read_calllist(
        self, name: str, *, since: datetime | None = None, bad: list[BadLine] | None = None
    ) -> Iterator[dict[str, Any]]:
        return self._read_stream(self.layout.calllists, name, since, bad)

    def _read_stream(
        self, directory: Path, stem: str, since: datetime | None, bad: list[BadLine] | None
    ) -> Iterator[dict[str, Any]]:
        since_month = None if since is None else month_of(since)
        for path in self.files(directory, stem):
            m = _MONTH_FILE.match(path.name)
            assert m is not None
            if since_month is not None and m["month"] < since_month:
                continue
            for record in read_records(path, bad):
                if since is None or at_or_after(record, since):
                    yield record

    # ---------------------------------------------------------------- archive / prune

    def month_files(self) -> Iterator[Path]:
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                if _MONTH_FILE.match(name):
                    yield Path(dirpath) / name

    def months_before(self, before: str, *, events: bool = True) -> list[Path]:
        """Month files (plain and archived) of months strictly before `before` (YYYY-MM).

        `events=False` leaves out the daemon events history, which prune never deletes:
        it is where each prune is recorded.
        """
        found = []
        for path in self.month_files():
            m = _MONTH_FILE.match(path.name)
            assert m is not None
            if m["month"] < before and (events or not path.is_relative_to(self.layout.daemon)):
                found.append(path)
        return sorted(found)

    def archive(self, before: str) -> list[Path]:
        """Compress month files older than `before` (YYYY-MM) in place, as `.jsonl.gz`.

        The gzip file is complete and synced before the plain file goes, so a
        crash leaves one or both, never neither; while both exist, readers
        read the plain file alone when it holds the archive's records (see
        `_archived_in_next`). The plain file is then renamed aside, and what
        was appended to it meanwhile (a check that started in the old month
        and finished in the new) is added to the archive before the aside file
        is removed: no record is lost. A record appended after the rename makes
        a new plain file beside the archive; readers read both, and the next
        archive folds it in.
        """
        done: list[Path] = []
        for path in self.months_before(before):
            if not path.name.endswith(".gz"):
                done.append(self._archive_one(path))
        return done

    def _archive_one(self, path: Path) -> Path:
        target = path.with_name(path.name + ".gz")
        read = path.read_bytes()
        data = read
        if target.exists():
            old = gzip.decompress(target.read_bytes())
            if not read.startswith(old):
                data = old + read
        self._write_archive(target, data)
        aside = path.with_name(f".{path.name}.archiving")
        os.replace(path, aside)
        late = aside.read_bytes()[len(read) :]
        if late:
            self._write_archive(target, data + late)
        aside.unlink()
        return target

    def _write_archive(self, target: Path, data: bytes) -> None:
        self.writer.replace(target, gzip.compress(data))
        if gzip.decompress(target.read_bytes()) != data:
            raise OSError(f"{target}: archive does not read back as written; plain file kept")

    def prune(self, before: str, *, user: str, t: datetime) -> list[Path]:
        """Delete month files older than `before`: ONLY for the explicit operator command.

        The daemon events history is kept, and gets one record of what was
        deleted, by whom: also when a deletion fails half-way (then it lists
        what was deleted before the error, which is raised).
        """
        removed: list[Path] = []
        try:
            for path in self.months_before(before, events=False):
                path.unlink()
                removed.append(path)
                m = _MONTH_FILE.match(path.name)
                assert m is not None
                # the month's summary (store.summary), derived data that goes with it
                summary = path.with_name(f".{m['stem']}-{m['month']}.summary.json")
                summary.unlink(missing_ok=True)
        finally:
            if removed:
                files = [str(p.relative_to(self.root)) for p in removed]
                self.append_event(t, "prune", user=user, before=before, files=files)
        return removed


def _subdirs(directory: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(directory) if is_safe_name(e.name) and e.is_dir()]
    except OSError:
        return []


def _archived_in_next(path: Path, later: list[Path]) -> bool:
    """Whether the archive `path` is wholly in the plain file of its month that follows it.

    Both exist for a moment while `archive` works (or after a crash there):
    then the plain file starts with the archive's bytes, and reading both
    would show those records twice. A plain file with other content holds
    records that came after archiving: then both are read.
    """
    if not path.name.endswith(".gz") or not later or later[0].name + ".gz" != path.name:
        return False
    try:
        archived = gzip.decompress(path.read_bytes())
        with later[0].open("rb") as fh:
            return fh.read(len(archived)) == archived
    except (OSError, EOFError):
        return False


def read_records(path: Path, bad: list[BadLine] | None = None) -> Iterator[dict[str, Any]]:
    """Records of one month file, oldest first, read a line at a time (a year of one pair
    is half a million records); a torn last line is skipped silently, other bad lines
    reported."""
    try:
        fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    except OSError as err:
        _unreadable(path, err, bad)
        return
    with fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break  # the torn last line of an interrupted write
                record = _record(raw, path, lineno, bad)
                if record is not None:
                    yield record
        except (OSError, EOFError) as err:
            _unreadable(path, err, bad)


def read_records_backwards(
    path: Path, bad: list[BadLine] | None = None
) -> Iterator[dict[str, Any]]:
    """Records of one month file, newest first, reading blocks from the end: `--limit 10`
    reads a few kilobytes, not the month. (An archived month is read whole: gzip cannot
    be read backwards, and archives are old months.) Bad lines are reported with line 0."""
    if path.name.endswith(".gz"):
        yield from reversed(list(read_records(path, bad)))
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    except OSError as err:
        _unreadable(path, err, bad)
        return
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        carry = b""  # the end of a line whose start is in the block before
        torn_skipped = False
        while pos > 0:
            step = min(BACKWARD_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + carry).split(b"\n")
            carry = lines.pop(0) if pos > 0 else b""
            if not torn_skipped and lines:
                lines.pop()  # after the file's last newline: nothing, or a torn record
                torn_skipped = True
            for raw in reversed(lines):
                record = _record(raw, path, 0, bad)
                if record is not None:
                    yield record


def _record(
    raw: bytes, path: Path, lineno: int, bad: list[BadLine] | None
) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        if bad is not None:
            bad.append(BadLine(path, lineno, raw.rstrip(b"\n")[:200].decode(errors="replace")))
        return None
    return record


def _unreadable(path: Path, err: BaseException, bad: list[BadLine] | None) -> None:
    log.error("cannot read history file %s: %s", path, err)
    if bad is not None:
        bad.append(BadLine(path, 0, f"unreadable: {err}"))


def at_or_after(record: Mapping[str, Any], since: datetime) -> bool:
    """Whether the record's `t` is at or after `since` (what `read(since=...)` keeps)."""
    t = record.get("t")
    try:
        return isinstance(t, str) and parse_iso(t) >= since
    except ValueError:
        return False
