"""overview.json: the daemon's summary of every pair, so that a view reads one file, not 40,000.

At 20,000 pairs reading every `check.json` (and listing every pair directory
for its ack and inhibit) took `status` about 2 s; the daemon already holds
every check.json it wrote, so it keeps those bytes and writes them out
together every few seconds::

    {"version": 1, "pid": P, "updated": "...Z",
     "checks": [["HOST", "CHECK", {...check.json as written...}], ...],
     "silencers": [["HOST", "CHECK", {"ack": {...} | null, "inhibit": {...} | null,
                                      "errors": ["...why a document is unreadable"]}], ...]}

The files stay the truth. Each entry of `checks` is the exact document the
daemon last wrote to (or, at start, read from) that pair's check.json; the
views use overview.json only while the daemon that wrote it holds the pidfile
and it is at most a heartbeat old, and read the files otherwise. ack.json and
inhibit.json are written by operators' commands too: those leave a mark in
`changed/` (`HOST@CHECK.ID.json`), the views read a marked pair from its own
files, and the daemon drops a mark only after it wrote an overview that
includes what the mark announced. Hand-made changes to ack or inhibit files
(no command, so no mark) are picked up by a full rescan every RESCAN_S.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from survivor.errors import StateError
from survivor.model.config import FsyncPolicy
from survivor.model.documents import encode
from survivor.model.names import is_safe_name
from survivor.store.fsio import DiskWriteError, FileWriter, ensure_dir, read_document
from survivor.store.layout import StateLayout

log = logging.getLogger(__name__)

VERSION = 1
SILENCERS = ("ack", "inhibit")
MARKS_MODE = 0o2770  # like requests/: the operators of the daemon's group write marks
RESCAN_S = 600.0  # ack/inhibit files changed by hand show within this


class OverviewKeeper:
    """The daemon's copy of what overview.json lists; thread-safe (check loops write)."""

    def __init__(self, layout: StateLayout) -> None:
        self.layout = layout
        self._checks: dict[tuple[str, str], bytes] = {}
        self._silencers: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        self._changes = 0
        self._written = -1
        # A summary that can be rebuilt any time: atomic, but not worth an fsync.
        self._writer = FileWriter(FsyncPolicy.NEVER)

    # ---------------------------------------------------------------- what is kept

    def put_check(self, host: str, check: str, data: bytes) -> None:
        """`data`: check.json's bytes, as written (one line of JSON)."""
        entry = b'["%s","%s",%s]' % (host.encode(), check.encode(), data.rstrip(b"\n"))
        with self._lock:
            self._checks[(host, check)] = entry
            self._changes += 1

    def drop(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Forget pairs whose state was pruned ((host, check) pairs)."""
        with self._lock:
            for key in pairs:
                self._checks.pop(key, None)
                self._silencers.pop(key, None)
            self._changes += 1

    def refresh_silencers(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the ack and inhibit documents of these (host, check) pairs again."""
        for host, check in pairs:
            if not (is_safe_name(host) and is_safe_name(check)):
                continue
            docs: dict[str, Any] = {name: None for name in SILENCERS}
            errors: list[str] = []
            for name in SILENCERS:
                path = self.layout.pair_doc(host, check, name)
                try:
                    docs[name] = read_document(path)
                except StateError as err:
                    errors.append(str(err))
            entry = None
            if errors or any(doc is not None for doc in docs.values()):
                body = encode({**docs, "errors": errors}).rstrip(b"\n")
                entry = b'["%s","%s",%s]' % (host.encode(), check.encode(), body)
            with self._lock:
                if entry is None:
                    self._silencers.pop((host, check), None)
                else:
                    self._silencers[(host, check)] = entry
                self._changes += 1

    def rescan_silencers(self) -> int:
        """Every pair's ack and inhibit documents from disk (at start, then every RESCAN_S)."""
        found: list[tuple[str, str]] = []
        try:
            host_entries = list(os.scandir(self.layout.hosts))
        except OSError:
            host_entries = []
        for h in host_entries:
            if not is_safe_name(h.name) or not h.is_dir(follow_symlinks=False):
                continue
            try:
                check_entries = list(os.scandir(h.path))
            except OSError:
                continue
            for c in check_entries:
                if not is_safe_name(c.name):
                    continue
                try:
                    names = os.listdir(c.path)
                except OSError:
                    continue
                if any(f"{name}.json" in names for name in SILENCERS):
                    found.append((h.name, c.name))
        with self._lock:
            self._silencers.clear()
        self.refresh_silencers(found)
        return len(found)

    # ---------------------------------------------------------------- overview.json

    def write(self, pid: int, updated: str, *, force: bool = False) -> bool:
        """Write overview.json if anything changed since the last one (or `force`).

        The marks in `changed/` are taken first and removed only after the
        overview that includes their pairs' documents is in place."""
        marks = read_marks(self.layout)
        if marks:
            self.refresh_silencers({(host, check) for host, check, _ in marks})
        with self._lock:
            if not force and not marks and self._changes == self._written:
                return False
            changes = self._changes
            checks = list(self._checks.values())
            silencers = list(self._silencers.values())
        stamp = (VERSION, pid, updated.encode())
        head = b'{"version":%d,"pid":%d,"updated":"%s","checks":[' % stamp
        data = b"".join(
            (head, b",".join(checks), b'],"silencers":[', b",".join(silencers), b"]}\n")
        )
        self._writer.replace(self.layout.overview, data)
        self._written = changes
        for _host, _check, path in marks:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                log.warning("overview: cannot remove the mark %s: %s", path, err.strerror or err)
        return True


# --------------------------------------------------------------------------- marks


def mark_changed(layout: StateLayout, writer: FileWriter, host: str, check: str) -> None:
    """Say that host/check's ack or inhibit changed, so that views read that pair's files
    until the daemon's next overview.json has it. A mark that cannot be written is logged:
    the change itself is made, and the views see it at the daemon's next rescan."""
    path = layout.changed_mark(host, check, uuid.uuid4().hex)
    try:
        if not os.path.isdir(layout.changed):
            st = os.stat(layout.root)
            ensure_dir(layout.changed, MARKS_MODE, (st.st_uid, st.st_gid))
        writer.replace(path, encode({"version": 1, "host": host, "check": check}))
    except (OSError, DiskWriteError) as err:
        log.warning(
            "cannot leave the mark %s (%s): `status` may show the change of %s/%s only "
            "after the daemon's next rescan of ack and inhibit files",
            path,
            err,
            host,
            check,
        )


def read_marks(layout: StateLayout) -> list[tuple[str, str, Path]]:
    """(host, check, path) of every mark in `changed/`; OSError if it cannot be listed
    (a missing directory is no marks)."""
    try:
        names = os.listdir(layout.changed)
    except FileNotFoundError:
        return []
    marks: list[tuple[str, str, Path]] = []
    for name in names:
        if name.startswith(".") or not name.endswith(".json"):
            continue
        pair, _, _mark_id = name[:-5].rpartition(".")
        host, at, check = pair.partition("@")
        if at and is_safe_name(host) and is_safe_name(check):
            marks.append((host, check, layout.changed / name))
    return marks
