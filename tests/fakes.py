"""Test doubles: a clock the test drives, a runner that returns canned results, work items."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from signal import SIGKILL
from typing import Any, ClassVar

from survivor.clock import SystemClock
from survivor.errors import ModuleError
from survivor.model.work import WorkItem, WorkKind
from survivor.proc.session import ProcessOutcome


class FakeClock:
    """Settable time. `sleep_until` jumps ahead instead of sleeping (unless stopped)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set(self, when: datetime) -> None:
        with self._lock:
            self._mono += (when - self._now).total_seconds()
            self._now = when

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        with self._lock:
            if deadline > self._mono:
                self._now += timedelta(seconds=deadline - self._mono)
                self._mono = deadline
        return stop.is_set()

    def wait_seconds(self, epoch: float, now: float | None = None) -> float:
        return max(0.0, epoch - (self.time() if now is None else now))

    def after_real(self, seconds: float) -> float:
        return self.monotonic() + seconds


class SteppedClock(SystemClock):
    """The real clock, whose wall clock a test can step: monotonic time and waits stay real
    (what libfaketime does to a whole process, for threads in this one)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self._pending = 0.0

    def step(self, seconds: float) -> None:
        self.offset += seconds

    def step_after_next_read(self, seconds: float) -> None:
        """Step the wall clock right after the next `time()` has read it: whoever read it
        has a reading from before the step and reads the clock again after it."""
        self._pending = seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def time(self) -> float:
        t = time.time() + self.offset
        if self._pending:
            self.offset += self._pending
            self._pending = 0.0
        return t

    def wait_seconds(self, epoch: float, now: float | None = None) -> float:
        return max(0.0, epoch - (self.time() if now is None else now))


def work_item(n: int, key: str | None = None, delay: float = 0.0) -> WorkItem:
    """Check item `i<n>` for host `h<n>`, planned `delay` seconds from now (real time)."""
    return WorkItem(
        id=f"i{n}",
        kind=WorkKind.CHECK,
        check="ping",
        hosts=(f"h{n}",),
        planned=time.time() + delay,
        key=key or f"check:ping@h{n}",
    )


# --------------------------------------------------------------------------- modules

Reply = Callable[["ModuleCall"], ProcessOutcome]


def outcome(
    stdout: str | bytes = b"",
    exit_status: int | None = 0,
    *,
    stderr: str | bytes = b"",
    signal: int | None = None,
    timed_out: bool = False,
    pid: int = 0,
) -> ProcessOutcome:
    """A finished run as `survivor.proc.session` reports it."""
    out = stdout.encode() if isinstance(stdout, str) else stdout
    err = stderr.encode() if isinstance(stderr, str) else stderr
    return ProcessOutcome(out, err, exit_status, signal, timed_out, False, 5, pid)


def check_lines(rcs: Mapping[str, int], default: int = 0, comment: str = "canned") -> Reply:
    """A Survivor-protocol check module: one result line per host it was asked about."""

    def reply(call: ModuleCall) -> ProcessOutcome:
        hosts = [h["name"] for h in (call.doc or {}).get("hosts", [])]
        lines = [
            json.dumps({"host": h, "rc": rcs.get(h, default), "comment": f"{comment} {h}"})
            for h in hosts
        ]
        return outcome("\n".join(lines) + "\n")

    return reply


@dataclass(frozen=True, slots=True)
class ModuleCall:
    """One run the FakeRunner was asked for, with the JSON document it got on stdin."""

    kind: str
    name: str
    argv: tuple[str, ...]
    doc: dict[str, Any] | None  # None when stdin was empty (plugins, `-v`)
    timeout: float


class FakeRun:
    """What `FakeRunner.start` returns: `wait()` gives the canned outcome (for `drive`)."""

    def __init__(self, runner: FakeRunner, pid: int, result: ProcessOutcome) -> None:
        self.runner = runner
        self.pid = pid
        self.result = result

    def wait(self) -> ProcessOutcome:
        self.runner._ended(self.pid)
        return self.result


class FakeRunner:
    """Stands in for `survivor.proc.runner.ModuleRunner`: canned outcomes per kind/name, and
    a record of every call. By default checks say OK for every host, fixes repair, format
    modules print "subject\\nbody" and transmit modules deliver."""

    ROOT = Path("/fake-mod")
    DEFAULTS: ClassVar[dict[str, Reply]] = {
        "check": check_lines({}),
        "fix": lambda call: outcome('{"rc": 0, "comment": "fixed"}\n'),
        "format": lambda call: outcome("subject\nbody"),
        "transmit": lambda call: outcome(),
    }

    def __init__(self) -> None:
        self.calls: list[ModuleCall] = []
        self.killed: list[int] = []
        self.missing: set[tuple[str, str]] = set()  # resolve() raises ModuleError for these
        self._replies: dict[tuple[str, str], Reply] = {}
        self._running: set[int] = set()
        self._pids = itertools.count(4000)

    def on(self, kind: str, name: str, reply: Reply | ProcessOutcome) -> None:
        """From now on, a run of `kind/name` gives `reply` (an outcome, or made per call)."""
        self._replies[(kind, name)] = reply if callable(reply) else (lambda call: reply)

    def calls_to(self, kind: str, name: str | None = None) -> list[ModuleCall]:
        return [c for c in self.calls if c.kind == kind and name in (None, c.name)]

    def resolve(self, kind: str, name: str) -> Path:
        if (kind, name) in self.missing:
            raise ModuleError(f"{kind} module {name!r} not found")
        return self.ROOT / kind / name

    def resolve_plugin(self, plugin: str) -> Path:
        return self.resolve("check", Path(plugin).name)

    def start(
        self,
        argv: Sequence[str],
        stdin: bytes,
        timeout: float,
        *,
        on_start: Callable[[int], None] | None = None,
        **_: Any,  # cap, env: nothing to cap or pass on
    ) -> FakeRun:
        if not argv:
            raise ModuleError("nothing to run: empty argv")
        path = Path(argv[0])
        call = ModuleCall(
            path.parent.name, path.name, tuple(argv), json.loads(stdin) if stdin else None, timeout
        )
        self.calls.append(call)
        pid = next(self._pids)
        self._running.add(pid)
        if on_start is not None:
            on_start(pid)
        reply = self._replies.get((call.kind, call.name), self.DEFAULTS[call.kind])
        return FakeRun(self, pid, replace(reply(call), pid=pid))

    def run(self, argv: Sequence[str], stdin: bytes, timeout: float, **kw: Any) -> ProcessOutcome:
        return self.start(argv, stdin, timeout, **kw).wait()

    def _ended(self, pid: int) -> None:
        self._running.discard(pid)

    def running(self) -> list[int]:
        """Pids of runs started and not yet waited for."""
        return sorted(self._running)

    def kill_group(self, pid: int, sig: int = SIGKILL) -> bool:
        """Records the kill; True, as the real one, only for a run in progress."""
        self.killed.append(pid)
        return pid in self._running
