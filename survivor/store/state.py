"""StateStore: the typed state documents under `state_dir`, read and written through `fsio`.

Layout (DESIGN.md §5)::

    state/daemon.json  queue.json
    state/host/<host>/<check>/check.json  alert.json  ack.json  inhibit.json  escalate.json
    state/calllist/<name>.json
    state/requests/<id>.json
    state/downtime/<id>.json

Every document is JSON with a "version" field. The daemon is the only writer of
check.json; the CLI writes ack/inhibit/escalate under the entity lock and drops
requests for the daemon. A corrupt or unknown-version file met by the daemon is
moved aside as `<name>.corrupt-<time>` and logged; readers in the CLI only report.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.errors import StateError
from survivor.model.documents import (
    CallListState,
    CheckState,
    ConfigSnapshot,
    Downtime,
    Request,
    encode,
    encode_with_list,
)
from survivor.model.names import is_safe_name
from survivor.store.fsio import (
    DiskWriteError,
    EntityLocks,
    FileWriter,
    ensure_dir,
    read_document,
)
from survivor.store.layout import StateLayout
from survivor.store.overview import SILENCERS, OverviewKeeper, mark_changed

log = logging.getLogger(__name__)

REQUESTS_MODE = 0o2770


class StateStore:
    """The daemon's and the CLI's access to `state_dir`."""

    def __init__(self, state_dir: Path, writer: FileWriter, locks: EntityLocks | None = None):
        self.root = state_dir
        self.writer = writer
        self.locks = locks or EntityLocks()
        self.layout = StateLayout(state_dir)
        # The daemon's: what overview.json lists (None in the CLI, which leaves marks instead).
        self.overview: OverviewKeeper | None = None

    def keep_overview(self) -> OverviewKeeper:
        """From now on keep every check.json written (and read by load_checks) for
        overview.json; the daemon calls this before it loads the checks."""
        if self.overview is None:
            self.overview = OverviewKeeper(self.layout)
        return self.overview

    # ---------------------------------------------------------------- paths

    def pair_dir(self, host: str, check: str) -> Path:
        """HOST/CHECK under host/, both names checked to be safe path parts."""
        return self.layout.pair_dir(host, check)

    def read_calllist(self, name: str) -> CallListState | None:
        """A call list's state for readers (StateError if it is bad; nothing is moved)."""
        doc = read_document(self.layout.calllist(name))
        return None if doc is None else CallListState.from_dict(doc)

    def load_calllist(self, name: str, now: datetime) -> CallListState | None:
        """A call list's state for the daemon: a bad file is moved aside and the list starts
        fresh, so one corrupt file cannot stop every alert through that list."""
        path = self.layout.calllist(name)
        doc = self.load_document(path, now)
        if doc is None:
            return None
        try:
            return CallListState.from_dict(doc)
        except StateError as err:
            self.move_aside(path, str(err), now)
            return None

    def write_calllist(self, name: str, state: CallListState) -> None:
        self.writer.replace(self.layout.calllist(name), encode(state.to_dict()))

    # ---------------------------------------------------------------- corrupt files

    def move_aside(self, path: Path, why: str, now: datetime) -> Path:
        """Keep a bad file for the operator, out of the way of the daemon."""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        try:
            os.replace(path, target)
        except OSError as err:
            log.error("cannot move corrupt %s aside: %s", path, err)
            return path
        log.error("state file %s is unusable (%s); moved aside to %s", path, why, target.name)
        return target

    def load_document(self, path: Path, now: datetime) -> dict[str, Any] | None:
        """Read a document for the daemon: a bad one is moved aside and treated as absent."""
        try:
            return read_document(path)
        except StateError as err:
            self.move_aside(path, str(err), now)
            return None

    def sweep_temps(self, now: datetime, min_age: float = 300.0) -> int:
        """Remove temp files a crashed writer left (`.NAME.PID.TID.tmp`); at daemon start only.

        Only those older than `min_age` seconds: a CLI command may be writing one right now.
        """
        removed = 0
        mine = f".{os.getpid()}."
        cutoff = now.timestamp() - min_age
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp") and mine not in name:
                    path = os.path.join(dirpath, name)
                    try:
                        if os.lstat(path).st_mtime < cutoff:
                            os.unlink(path)
                            removed += 1
                    except OSError:
                        pass
        if removed:
            log.warning("state: removed %d temp files left by an interrupted write", removed)
        return removed

    # ---------------------------------------------------------------- check.json

    def read_check(self, host: str, check: str) -> CheckState | None:
        doc = read_document(self.pair_dir(host, check) / "check.json")
        return None if doc is None else CheckState.from_dict(doc)

    def load_checks(self, now: datetime) -> dict[tuple[str, str], CheckState]:
        """Every check.json on disk, keyed (check, host); bad files moved aside."""
        states: dict[tuple[str, str], CheckState] = {}
        for host, check, path in self._pair_files("check.json"):
            doc = self.load_document(path, now)
            if doc is None:
                continue
            try:
                states[(check, host)] = CheckState.from_dict(doc)
            except StateError as err:
                self.move_aside(path, str(err), now)
            else:
                if self.overview is not None:
                    self.overview.put_check(host, check, encode(doc))
        return states

    def write_check(self, host: str, check: str, state: CheckState) -> None:
        data = encode(state.to_dict())
        self.writer.replace_in(self.layout.pair_dir.text(host, check), "check.json", data)
        if self.overview is not None:
            self.overview.put_check(host, check, data)

    def load_pair_docs(self, name: str, now: datetime) -> dict[tuple[str, str], dict[str, Any]]:
        """Every `<name>.json` of every pair, keyed (check, host); bad ones moved aside."""
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for host, check, path in self._pair_files(f"{name}.json"):
            doc = self.load_document(path, now)
            if doc is not None:
                docs[(check, host)] = doc
        return docs

    def _pair_files(self, name: str) -> Iterator[tuple[str, str, Path]]:
        hosts = self.layout.hosts
        try:
            host_entries = list(os.scandir(hosts))
        except FileNotFoundError:
            return
        for h in host_entries:
            if not h.is_dir() or not is_safe_name(h.name):
                continue
            for c in os.scandir(h.path):
                if c.is_dir() and is_safe_name(c.name):
                    path = Path(c.path) / name
                    if path.exists():
                        yield h.name, c.name, path

    # ---------------------------------------------------------------- other pair documents

    def read_pair_doc(self, host: str, check: str, name: str) -> dict[str, Any] | None:
        """ack.json, inhibit.json, escalate.json or alert.json of one pair (None if absent)."""
        return read_document(self.pair_dir(host, check) / f"{name}.json")

    def write_pair_doc(self, host: str, check: str, name: str, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.pair_dir(host, check) / f"{name}.json", encode(doc))
        if name in SILENCERS:
            self._silencer_changed(host, check)

    def remove_pair_doc(self, host: str, check: str, name: str) -> None:
        self.writer.remove(self.pair_dir(host, check) / f"{name}.json")
        if name in SILENCERS:
            self._silencer_changed(host, check)

    def _silencer_changed(self, host: str, check: str) -> None:
        """overview.json lists acks and inhibitions: the daemon reads the pair again, a
        command leaves a mark for the views and the daemon (store/overview.py)."""
        if self.overview is not None:
            self.overview.refresh_silencers([(host, check)])
        else:
            mark_changed(self.layout, self.writer, host, check)

    # ---------------------------------------------------------------- daemon-wide documents

    def write_daemon(self, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.layout.daemon, encode(doc))

    def write_workers(self, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.layout.workers, encode(doc))

    def write_running_config(self, snapshot: ConfigSnapshot) -> None:
        self.writer.replace(self.layout.running_config, encode(snapshot.to_dict()))

    def read_running_config(self) -> ConfigSnapshot | None:
        """The config the daemon runs; None when absent (StateError when unreadable)."""
        doc = read_document(self.layout.running_config)
        return None if doc is None else ConfigSnapshot.from_dict(doc)

    def write_queue(self, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.layout.queue, encode(doc))

    def write_queue_text(self, doc: Mapping[str, Any], items_text: str) -> None:
        """queue.json with its `items` already JSON text (documents.RowTexts)."""
        self.writer.replace(self.layout.queue, encode_with_list(doc, "items", items_text))

    # ---------------------------------------------------------------- requests

    def prepare_requests(self) -> None:
        """Create `requests/` (the daemon at start, the CLI before its first request).

        Mode 2770: the daemon's user and the members of its group (the operators
        who may act: group `survivor` in the shipped unit) write requests there;
        setgid so each request keeps that group. When root creates it, it is
        given to the owner of `state_dir` (the daemon's user), so a root
        operator's umask cannot lock the daemon out.
        """
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            ensure_dir(self.root)
            st = os.stat(self.root)
        ensure_dir(self.layout.requests, REQUESTS_MODE, (st.st_uid, st.st_gid))
        ensure_dir(self.layout.changed, REQUESTS_MODE, (st.st_uid, st.st_gid))  # overview marks

    def check_requests_dir(self) -> str | None:
        """Why the daemon cannot read and empty `requests/`, or None when it can."""
        path = self.layout.requests
        if os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return None
        try:
            st = os.stat(path)
        except OSError as err:
            return f"{path}: {err.strerror or err}"
        return (
            f"{path} (uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}) is not readable "
            f"and writable by the daemon (uid {os.geteuid()}): operator requests cannot be "
            f"applied; chown it to the daemon's user and chmod {REQUESTS_MODE:04o}"
        )

    def submit_request(self, request: Request) -> Path:
        path = self.layout.request(request.id)
        if not os.path.isdir(self.layout.requests):
            try:
                self.prepare_requests()
            except OSError as err:
                raise DiskWriteError(self.layout.requests, err) from err
        self.writer.replace(path, encode(request.to_dict()))
        return path

    def take_requests(self, now: datetime) -> list[Request]:
        """Requests waiting for the daemon, oldest first; each is removed once read."""
        try:
            entries = sorted(e.name for e in os.scandir(self.layout.requests))
        except FileNotFoundError:
            return []
        taken: list[Request] = []
        for name in entries:
            if name.startswith(".") or not name.endswith(".json"):
                continue
            path = self.layout.requests / name
            doc = self.load_document(path, now)
            if doc is not None:
                try:
                    taken.append(Request.from_dict(doc))
                except (StateError, KeyError, ValueError) as err:
                    self.move_aside(path, f"bad request: {err}", now)
                    continue
            path.unlink(missing_ok=True)
        return taken

    # ---------------------------------------------------------------- downtimes

    def write_downtime(self, downtime: Downtime) -> None:
        self.writer.replace(self.layout.downtime(downtime.id), encode(downtime.to_dict()))

    def remove_downtime(self, downtime_id: str) -> None:
        self.writer.remove(self.layout.downtime(downtime_id))

    def read_downtimes(self) -> tuple[list[Downtime], list[str]]:
        return read_downtimes(self.layout)

    # ---------------------------------------------------------------- pruning

    def prune(self, keep: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Remove the state of check@host pairs not in `keep` (never history)."""
        removed: list[tuple[str, str]] = []
        hosts = self.layout.hosts
        try:
            host_entries = list(os.scandir(hosts))
        except FileNotFoundError:
            return removed
        keep_hosts = {h for _, h in keep}
        for h in host_entries:
            if not h.is_dir():
                continue
            if h.name not in keep_hosts:
                removed.extend((c.name, h.name) for c in os.scandir(h.path) if c.is_dir())
                shutil.rmtree(h.path, ignore_errors=True)
                continue
            for c in os.scandir(h.path):
                if c.is_dir() and (c.name, h.name) not in keep:
                    shutil.rmtree(c.path, ignore_errors=True)
                    self.locks.forget(Path(c.path))
                    removed.append((c.name, h.name))
        if self.overview is not None:
            self.overview.drop((host, check) for check, host in removed)
        return removed


def read_downtimes(layout: StateLayout) -> tuple[list[Downtime], list[str]]:
    """Every downtime by start, and a problem for each unreadable file (left in place)."""
    try:
        names = sorted(e.name for e in os.scandir(layout.downtimes))
    except FileNotFoundError:
        return [], []
    found: list[Downtime] = []
    problems: list[str] = []
    for name in names:
        if name.startswith(".") or not name.endswith(".json"):
            continue
        path = layout.downtimes / name
        try:
            doc = read_document(path)
            if doc is not None:
                found.append(Downtime.from_dict(doc))
        except (StateError, KeyError, ValueError, TypeError) as err:
            problems.append(f"{path}: {err}")
    found.sort(key=lambda d: (d.start, d.id))
    return found, problems
