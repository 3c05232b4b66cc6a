"""StateStore: the typed state documents under `state_dir`, read and written through `fsio`.

Layout (DESIGN.md §5)::

    state/daemon.json  queue.json
    state/host/<host>/<check>/check.json  alert.json  ack.json  inhibit.json  escalate.json
    state/calllist/<name>.json
    state/requests/<id>.json

Every document is JSON with a "version" field. The daemon is the only writer of
check.json; the CLI writes ack/inhibit/escalate under the entity lock and drops
requests for the daemon. A corrupt or unknown-version file met by the daemon is
moved aside as `<name>.corrupt-<time>` and logged; readers in the CLI only report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from survivor.calllist import CallListState
from survivor.clock import parse_iso, utc_iso
from survivor.errors import StateError
from survivor.fsio import EntityLocks, FileWriter, PairPaths, safe_path
from survivor.model import CheckResult, PerfDatum, ReturnCode, code_name, is_safe_name

log = logging.getLogger(__name__)

STATE_VERSION = 1


def encode(doc: Mapping[str, Any]) -> bytes:
    """One line of JSON: the C encoder (indent would force the slow Python one); `jq .` reads it."""
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _iso_or_none(t: datetime | None) -> str | None:
    return None if t is None else utc_iso(t)


def _parse_or_none(text: object) -> datetime | None:
    return parse_iso(text) if isinstance(text, str) and text else None


@dataclass(frozen=True, slots=True)
class CheckState:
    """check.json: the current status of one check@host."""

    VERSION: ClassVar[int] = 1
    rc: int = int(ReturnCode.NOTYET)
    since: datetime | None = None  # first result with this code
    consecutive: int = 0  # results in a row with this code
    last_start: datetime | None = None  # actual start of the last run
    last_planned: datetime | None = None  # the minute the last run was planned for
    duration_ms: int = 0
    scalar: float | None = None
    comment: str = ""
    perfdata: tuple[PerfDatum, ...] = ()
    next_due: datetime | None = None
    fingerprint: str = ""
    generation: int = 0
    reschedule: bool = False  # an operator asked for a run at the next tick

    @property
    def code(self) -> str:
        return code_name(self.rc)

    def advance(
        self,
        result: CheckResult,
        *,
        start: datetime,
        planned: datetime,
        fingerprint: str,
        generation: int,
    ) -> CheckState:
        """The state after `result`: consecutive counting and `since` per Survivor."""
        same = result.rc == self.rc and self.last_start is not None
        return CheckState(
            rc=result.rc,
            since=self.since if same and self.since is not None else start,
            consecutive=self.consecutive + 1 if same else 1,
            last_start=start,
            last_planned=planned,
            duration_ms=result.duration_ms,
            scalar=result.scalar,
            comment=result.comment,
            perfdata=result.perfdata,
            next_due=None,
            fingerprint=fingerprint,
            generation=generation,
            reschedule=False,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "rc": self.rc,
            "code": self.code,
            "since": _iso_or_none(self.since),
            "consecutive": self.consecutive,
            "last_start": _iso_or_none(self.last_start),
            "last_planned": _iso_or_none(self.last_planned),
            "duration_ms": self.duration_ms,
            "scalar": self.scalar,
            "comment": self.comment,
            "perfdata": [p.to_dict() for p in self.perfdata],
            "next_due": _iso_or_none(self.next_due),
            "fingerprint": self.fingerprint,
            "generation": self.generation,
            "reschedule": self.reschedule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        if d.get("version") != cls.VERSION:
            raise StateError(f"check state version {d.get('version')!r} (this survivor reads 1)")
        try:
            return cls(
                rc=int(d["rc"]),
                since=_parse_or_none(d.get("since")),
                consecutive=int(d.get("consecutive", 0)),
                last_start=_parse_or_none(d.get("last_start")),
                last_planned=_parse_or_none(d.get("last_planned")),
                duration_ms=int(d.get("duration_ms", 0)),
                scalar=None if d.get("scalar") is None else float(d["scalar"]),
                comment=str(d.get("comment", "")),
                perfdata=tuple(PerfDatum.from_dict(p) for p in d.get("perfdata") or ()),
                next_due=_parse_or_none(d.get("next_due")),
                fingerprint=str(d.get("fingerprint", "")),
                generation=int(d.get("generation", 0)),
                reschedule=bool(d.get("reschedule", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"check state: {err!r}") from err


@dataclass(frozen=True, slots=True)
class Request:
    """An operator request the daemon applies within seconds (reschedule, cancel, ...)."""

    VERSION: ClassVar[int] = 1
    id: str
    action: str  # reschedule | cancel
    user: str
    at: datetime
    host: str | None = None
    check: str | None = None
    target: str | None = None  # a queue item id for cancel
    comment: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "id": self.id,
            "action": self.action,
            "user": self.user,
            "at": utc_iso(self.at),
            "host": self.host,
            "check": self.check,
            "target": self.target,
            "comment": self.comment,
            **dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        if d.get("version") != cls.VERSION:
            raise StateError(f"request version {d.get('version')!r}")
        known = {"version", "id", "action", "user", "at", "host", "check", "target", "comment"}
        return cls(
            id=str(d["id"]),
            action=str(d["action"]),
            user=str(d.get("user", "?")),
            at=parse_iso(str(d["at"])),
            host=d.get("host"),
            check=d.get("check"),
            target=d.get("target"),
            comment=str(d.get("comment", "")),
            extra={k: v for k, v in d.items() if k not in known},
        )


def read_document(path: Path) -> dict[str, Any] | None:
    """A state document, None if absent. Raises StateError if it is not a JSON object."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError as err:
        raise StateError(f"{path} is a directory") from err
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise StateError(f"{path}: not JSON ({err})") from err
    if not isinstance(doc, dict):
        raise StateError(f"{path}: not a JSON object")
    return doc


class StateStore:
    """The daemon's and the CLI's access to `state_dir`."""

    def __init__(self, state_dir: Path, writer: FileWriter, locks: EntityLocks | None = None):
        self.root = state_dir
        self.writer = writer
        self.locks = locks or EntityLocks()
        self._pair_paths = PairPaths(self.root / "host")

    # ---------------------------------------------------------------- paths

    @property
    def daemon_path(self) -> Path:
        return self.root / "daemon.json"

    @property
    def queue_path(self) -> Path:
        return self.root / "queue.json"

    @property
    def pid_path(self) -> Path:
        return self.root / "survivor.pid"

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def pair_dir(self, host: str, check: str) -> Path:
        """HOST/CHECK under host/, both names checked to be safe path parts."""
        return self._pair_paths(host, check)

    def calllist_path(self, name: str) -> Path:
        return safe_path(self.root / "calllist", name).with_suffix(".json")

    @property
    def calllist_lock_dir(self) -> Path:
        """One lock for all call lists (the daemon and `calllist substitute` both take it)."""
        return self.root / "calllist"

    def read_calllist(self, name: str) -> CallListState | None:
        """A call list's state for readers (StateError if it is bad; nothing is moved)."""
        doc = read_document(self.calllist_path(name))
        return None if doc is None else CallListState.from_dict(doc)

    def load_calllist(self, name: str, now: datetime) -> CallListState | None:
        """A call list's state for the daemon: a bad file is moved aside and the list starts
        fresh, so one corrupt file cannot stop every alert through that list."""
        path = self.calllist_path(name)
        doc = self.load_document(path, now)
        if doc is None:
            return None
        try:
            return CallListState.from_dict(doc)
        except StateError as err:
            self.move_aside(path, str(err), now)
            return None

    def write_calllist(self, name: str, state: CallListState) -> None:
        self.writer.replace(self.calllist_path(name), encode(state.to_dict()))

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
        return states

    def write_check(self, host: str, check: str, state: CheckState) -> None:
        self.writer.replace(self.pair_dir(host, check) / "check.json", encode(state.to_dict()))

    def load_pair_docs(self, name: str, now: datetime) -> dict[tuple[str, str], dict[str, Any]]:
        """Every `<name>.json` of every pair, keyed (check, host); bad ones moved aside."""
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for host, check, path in self._pair_files(f"{name}.json"):
            doc = self.load_document(path, now)
            if doc is not None:
                docs[(check, host)] = doc
        return docs

    def _pair_files(self, name: str) -> Iterator[tuple[str, str, Path]]:
        hosts = self.root / "host"
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

    def remove_pair_doc(self, host: str, check: str, name: str) -> None:
        self.writer.remove(self.pair_dir(host, check) / f"{name}.json")

    # ---------------------------------------------------------------- daemon-wide documents

    def write_daemon(self, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.daemon_path, encode(doc))

    def read_daemon(self) -> dict[str, Any] | None:
        return read_document(self.daemon_path)

    def write_queue(self, doc: Mapping[str, Any]) -> None:
        self.writer.replace(self.queue_path, encode(doc))

    def read_queue(self) -> dict[str, Any] | None:
        return read_document(self.queue_path)

    # ---------------------------------------------------------------- requests

    def submit_request(self, request: Request) -> Path:
        path = safe_path(self.requests_dir, request.id).with_suffix(".json")
        self.writer.replace(path, encode(request.to_dict()))
        return path

    def take_requests(self, now: datetime) -> list[Request]:
        """Requests waiting for the daemon, oldest first; each is removed once read."""
        try:
            entries = sorted(e.name for e in os.scandir(self.requests_dir))
        except FileNotFoundError:
            return []
        taken: list[Request] = []
        for name in entries:
            if name.startswith(".") or not name.endswith(".json"):
                continue
            path = self.requests_dir / name
            doc = self.load_document(path, now)
            if doc is not None:
                try:
                    taken.append(Request.from_dict(doc))
                except (StateError, KeyError, ValueError) as err:
                    self.move_aside(path, f"bad request: {err}", now)
                    continue
            path.unlink(missing_ok=True)
        return taken

    # ---------------------------------------------------------------- pruning

    def prune(self, keep: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Remove the state of check@host pairs not in `keep` (never history)."""
        removed: list[tuple[str, str]] = []
        hosts = self.root / "host"
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
        return removed


def with_reschedule(state: CheckState | None) -> CheckState:
    """`state` marked to run at the next tick (other fields kept, as Survivor's reschedule)."""
    return replace(state or CheckState(), reschedule=True)
