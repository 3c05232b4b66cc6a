"""Running a fix: the check's fix module, under a fix lock, recorded in the fix history.

Used by the daemon's alert worker (a plan's `fix: true` try) and by the
operator's `survivor fix`. Both go through `FixRunner.run`, so a hand-run fix
and an automatic one exclude each other through the same lock files.

Fix locks (Survivor §2.5, §4.4): one file per lock under `state/fixlocks/`,
named for the fix's scope:

    CHECK@HOST.json   the default: one fix at a time per check@host
    _@HOST.json       `lock: host`: one fix at a time per host
    CHECK@_.json      `lock: check`: one fix at a time per check, across hosts

(`_` cannot start a configured name, so these never collide.) A lock file
holds who took it and until when. A lock whose `expires` has passed, or whose
process is gone, is stale and taken over, so a crashed daemon or CLI never
blocks fixes for longer than `lock_expire`.

Survivor created lock files with O_EXCL. Here every survivor process inspects
and creates lock files only while holding the flock on `fixlocks/.lock`, so
"is it free? then take it" is one atomic step for all of them, including the
stale-lock takeover that O_EXCL alone cannot make atomic; the file itself is
written through `fsio` (atomic replace), so a reader never sees an empty lock.
A token in each lock lets the holder release only its own lock, never one
that was taken over after it expired.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from survivor.clock import Clock
from survivor.errors import ModuleError, StateError
from survivor.model.codes import ReturnCode, code_name
from survivor.model.config import Config, FixDef, LockScope
from survivor.model.documents import FixLock, encode
from survivor.model.names import check_name
from survivor.proc.runner import ModuleRunner
from survivor.protocol.modules import fix_request, parse_fix_output
from survivor.store.fsio import DiskWriteError, read_document
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore

log = logging.getLogger(__name__)

NO_FIX_COMMENT = "No fix defined for this check"


# --------------------------------------------------------------------------- locks


def lock_name(scope: LockScope, check: str, host: str) -> str:
    """The lock file's name (without `.json`) for a fix of `check` on `host` with `scope`."""
    check_name(check, "check name")
    check_name(host, "host name")
    if scope is LockScope.HOST:
        return f"_@{host}"
    if scope is LockScope.CHECK:
        return f"{check}@_"
    return f"{check}@{host}"


class FixLockBusy(Exception):
    """The lock is held by someone else (not an error: the fix is simply not run now)."""

    def __init__(self, holder: FixLock) -> None:
        self.holder = holder
        super().__init__(f"fix lock held by {holder.describe()}")


def pid_alive(pid: int) -> bool:
    """True when a process with `pid` exists on this machine (signal 0 probes without killing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


class FixLocks:
    """The lock files under `state/fixlocks/`, inspected and changed only under its flock."""

    def __init__(self, state: StateStore, *, alive: Callable[[int], bool] = pid_alive) -> None:
        self.state = state
        self.dir = state.layout.fixlocks
        self.alive = alive

    def path(self, name: str) -> Path:
        return self.state.layout.fixlock(name)

    def read(self, name: str) -> FixLock | None:
        """The lock as on disk (no lock needed: files are replaced atomically)."""
        doc = read_document(self.path(name))
        return None if doc is None else FixLock.from_dict(doc)

    def acquire(self, name: str, *, fix: str, by: str, now: datetime, expire: float) -> FixLock:
        """Take the lock `name`, taking over a stale one; FixLockBusy when validly held."""
        mine = FixLock(
            name=name,
            token=uuid.uuid4().hex,
            pid=os.getpid(),
            by=by,
            fix=fix,
            at=now,
            expires=now + timedelta(seconds=expire),
        )
        path = self.path(name)
        with self.state.locks.hold(self.dir):
            try:
                holder = self.read(name)
            except StateError as err:
                log.warning("fix lock %s is unreadable (%s); taking it over", name, err)
                holder = None
            if holder is not None:
                why = holder.stale(now, self.alive)
                if why is None:
                    raise FixLockBusy(holder)
                log.warning(
                    "fix lock %s held by %s is stale (%s); taken over by %s",
                    name,
                    holder.describe(),
                    why,
                    by,
                )
            self.state.writer.replace(path, encode(mine.to_dict()))
        return mine

    def release(self, lock: FixLock) -> None:
        """Remove the lock if it is still ours."""
        with self.state.locks.hold(self.dir):
            try:
                current = self.read(lock.name)
            except StateError:
                current = None
            if current is not None and current.token != lock.token:
                log.warning(
                    "fix lock %s was taken over by %s while %s held it; leaving it",
                    lock.name,
                    current.describe(),
                    lock.by,
                )
                return
            self.state.writer.remove(self.path(lock.name))


# --------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class FixOutcome:
    """What came of one request to run a fix.

    `locked_out` means the fix did not run because another fix holds the
    lock; `rc` is then NOTYET (no result yet) and `comment` names the holder.
    """

    rc: int
    code: str
    comment: str
    duration_ms: int
    started: datetime
    locked_out: bool = False
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.rc == ReturnCode.OK and not self.locked_out


def _outcome(
    rc: int,
    comment: str,
    started: datetime,
    *,
    duration_ms: int = 0,
    locked_out: bool = False,
    fix: str | None = None,
) -> FixOutcome:
    return FixOutcome(int(rc), code_name(rc), comment, duration_ms, started, locked_out, fix)


class FixRunner:
    """Runs the fix of a check on a host: lock, module, fix history. No threads of its own."""

    def __init__(
        self,
        runner: ModuleRunner,
        state: StateStore,
        history: HistoryStore,
        clock: Clock,
        *,
        locks: FixLocks | None = None,
    ) -> None:
        self.runner = runner
        self.state = state
        self.history = history
        self.clock = clock
        self.locks = locks or FixLocks(state)

    def run(
        self,
        config: Config,
        check: str,
        host: str,
        *,
        initiated_by: str,
        on_start: Callable[[int], None] | None = None,
    ) -> FixOutcome:
        """Run the fix configured for `check` on `host`, if its lock is free.

        Never raises for what a fix module does (missing, unsafe, hanging,
        printing garbage): that becomes the outcome's code and comment, and a
        fix history record. `on_start(pid)` lets a pool record the child.
        """
        started = self.clock.now()
        checkdef = config.checks.get(check)
        hostdef = config.hosts.get(host)
        if checkdef is None or hostdef is None:
            what = f"check {check}" if checkdef is None else f"host {host}"
            return _outcome(ReturnCode.MISCONFIG, f"{what} is not configured", started)
        fixdef = config.fixes.get(checkdef.fix or "")
        if fixdef is None:
            return _outcome(ReturnCode.MISCONFIG, NO_FIX_COMMENT, started)
        name = lock_name(fixdef.lock, check, host)
        try:
            lock = self.locks.acquire(
                name, fix=fixdef.name, by=initiated_by, now=started, expire=fixdef.lock_expire
            )
        except FixLockBusy as busy:
            log.info("fix %s for %s@%s not run: %s", fixdef.name, check, host, busy)
            outcome = _outcome(
                ReturnCode.NOTYET, str(busy), started, locked_out=True, fix=fixdef.name
            )
            self._record(check, host, fixdef, initiated_by, outcome)
            return outcome
        except DiskWriteError as err:
            log.error("fix %s for %s@%s not run: %s", fixdef.name, check, host, err)
            comment = f"cannot take fix lock {name}: {err}"
            return _outcome(ReturnCode.NOTYET, comment, started, locked_out=True, fix=fixdef.name)
        try:
            outcome = self._execute(config, check, fixdef, host, started, on_start)
        finally:
            try:
                self.locks.release(lock)
            except DiskWriteError as err:  # pragma: no cover - the lock then simply expires
                log.error("cannot release fix lock %s: %s", name, err)
        self._record(check, host, fixdef, initiated_by, outcome)
        return outcome

    def _execute(
        self,
        config: Config,
        check: str,
        fixdef: FixDef,
        host: str,
        started: datetime,
        on_start: Callable[[int], None] | None,
    ) -> FixOutcome:
        try:
            path = self.runner.resolve("fix", fixdef.module)
            request = fix_request(
                fixdef.name, config.hosts[host], fixdef.args, fixdef.timeout, check
            )
            result = self.runner.run([str(path)], request, fixdef.timeout, on_start=on_start)
        except ModuleError as err:
            return _outcome(ReturnCode.MISCONFIG, str(err), started, fix=fixdef.name)
        rc, comment = parse_fix_output(
            result.stdout,
            killed=result.timed_out,
            exit_status=result.exit_status,
            stderr=result.stderr,
        )
        if result.stderr:
            log.warning(
                "fix %s for %s@%s: module stderr: %s",
                fixdef.name,
                check,
                host,
                result.stderr[:500].decode(errors="replace").strip(),
            )
        if result.timed_out and rc == ReturnCode.TIMEDOUT:
            comment = f"fix module killed after its {fixdef.timeout:g} s timeout"
        elif result.signal_name is not None and rc != ReturnCode.OK:
            comment = f"{comment} (module died by {result.signal_name})"
        return _outcome(rc, comment, started, duration_ms=result.duration_ms, fix=fixdef.name)

    def _record(self, check: str, host: str, fixdef: FixDef, by: str, outcome: FixOutcome) -> None:
        record: dict[str, Any] = {
            "rc": outcome.rc,
            "code": outcome.code,
            "comment": outcome.comment,
            "fix": fixdef.name,
            "by": by,
            "duration_ms": outcome.duration_ms,
        }
        if outcome.locked_out:
            record["locked_out"] = True
        try:
            self.history.append(host, check, "fix", outcome.started, record)
        except DiskWriteError as err:
            log.error("fix %s@%s: cannot write fix history: %s", check, host, err)
