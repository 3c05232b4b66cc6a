"""Run one module or plugin: the only place survivor starts child processes.

`ModuleRunner.start` spawns a child (survivor.proc.session) and returns the
run as a `Running` handle, so that the check pool's loop (survivor.work.loop)
can drive many runs from one poll set; `run` is `start(...).wait()`, one run
on the calling thread with its own poll. Modules are found by
survivor.proc.resolve; they run from an argv list (never a shell), in their
own session, with a clean environment (`PATH`, `LANG`, `SURVIVOR_*`).

Timing uses `time.monotonic()` directly: the runner is an exception to "only
clock.py reads time", because child processes live in real seconds even when
the daemon runs on a fake or scaled clock.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from survivor.errors import ModuleError
from survivor.model.config import ModuleLimits
from survivor.proc.limits import child_rlimits, find_prlimit, prlimit_argv
from survivor.proc.resolve import ModuleFinder
from survivor.proc.session import (
    Child,
    Orphans,
    Poller,
    ProcessOutcome,
    Session,
    cwd_is_root,
    reap,
    seal_fds,
    signal_group,
    spawn_child,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SEAL_INTERVAL = 1.0  # seconds between seal_fds() calls of a runner (and cwd checks)


def run_time() -> float:
    """The time runs are timed in (real monotonic seconds, whatever the daemon's clock)."""
    return time.monotonic()


class ModuleRunner:
    """Finds modules and plugins and runs them; safe to share between worker threads."""

    def __init__(
        self,
        module_dirs: Sequence[Path],
        plugin_dirs: Sequence[Path],
        *,
        output_cap: int = 65536,
        kill_grace: float = 2.0,
        extra_env: Mapping[str, str] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.finder = ModuleFinder(module_dirs, plugin_dirs)
        self.output_cap = output_cap
        self.kill_grace = kill_grace
        self.on_start = on_start
        # Nothing of the daemon's environment leaks into modules but its LANG.
        self._base_env = {"PATH": DEFAULT_PATH, "LANG": os.environ.get("LANG") or "C.UTF-8"}
        self._base_env.update(extra_env or {})
        self._running: set[int] = set()
        self._running_lock = threading.Lock()
        self._sealed_until = 0.0  # monotonic time of the next seal_fds()
        self._in_root = False  # the cwd is "/", checked with each seal_fds()
        self.orphans = Orphans()  # killed children stuck in the kernel, reaped later
        self.prlimit = find_prlimit()  # starts modules with limits; None: fork them

    # ----------------------------------------------------------------------- finding

    def resolve(self, kind: str, name: str) -> Path:
        """The executable for `name` of `kind` (survivor.proc.resolve)."""
        return self.finder.resolve(kind, name)

    def resolve_plugin(self, plugin: str) -> Path:
        """A `plugin:` value: a name looked up like a check module, or an absolute path."""
        return self.finder.resolve_plugin(plugin)

    # ----------------------------------------------------------------------- running

    def run(
        self,
        argv: Sequence[str],
        stdin: bytes,
        timeout: float,
        *,
        cap: int | None = None,
        env: Mapping[str, str] | None = None,
        on_start: Callable[[int], None] | None = None,
        limits: ModuleLimits | None = None,
    ) -> ProcessOutcome:
        """Run `argv` (no shell) with `stdin`, in its own session, and collect what it printed.

        At `timeout` seconds the process group gets SIGTERM, and SIGKILL
        `kill_grace` seconds later. `env` adds variables (SURVIVOR_* by
        convention) to the clean environment. `on_start(pid)` is called, after
        the runner's own `on_start`, as soon as the child exists (a work item
        records its pid). `limits` (a check's `limits:`) are set in the child
        before it execs (survivor.proc.limits). Raises ModuleError when the
        executable cannot be started.
        """
        return self.start(
            argv, stdin, timeout, cap=cap, env=env, on_start=on_start, limits=limits
        ).wait()

    def start(
        self,
        argv: Sequence[str],
        stdin: bytes,
        timeout: float,
        *,
        cap: int | None = None,
        env: Mapping[str, str] | None = None,
        on_start: Callable[[int], None] | None = None,
        limits: ModuleLimits | None = None,
    ) -> Running:
        """Start what `run` runs and return at once; `Running.wait()` or a loop finishes it."""
        if not argv:
            raise ModuleError("nothing to run: empty argv")
        child_env = dict(self._base_env)
        if env:
            child_env.update(env)
        started = time.monotonic()  # real seconds: see the module docstring
        if started >= self._sealed_until:  # about once a second
            seal_fds()
            self.orphans.reap()
            self._in_root = cwd_is_root()
            self._sealed_until = started + SEAL_INTERVAL
        rlimits = child_rlimits(limits) if limits is not None else ()
        command = list(argv)
        if rlimits and self.prlimit is not None:  # the cheap way (survivor.proc.limits)
            command, rlimits = prlimit_argv(self.prlimit, rlimits, argv), ()
        try:
            child = spawn_child(
                command,
                child_env,
                with_stdin=bool(stdin),
                in_root=self._in_root,
                rlimits=rlimits,
            )
        except OSError as exc:
            if limits is not None and exc.errno == errno.ENOMEM:
                raise ModuleError(
                    f"cannot run {argv[0]} within its limits ({limits.describe()}):"
                    f" {exc.strerror or exc}"
                ) from exc
            raise ModuleError(
                f"cannot run {argv[0]}: {exc.strerror or exc}; check that it exists, is"
                " executable and starts with a valid #! line"
            ) from exc
        except subprocess.SubprocessError as exc:  # setrlimit refused in the child
            assert limits is not None
            raise ModuleError(
                f"cannot run {argv[0]}: its limits ({limits.describe()}) could not be set"
            ) from exc
        with self._running_lock:
            self._running.add(child.pid)
        running = Running(self, child)
        try:
            for callback in (self.on_start, on_start):
                if callback is not None:
                    callback(child.pid)
            running.session = Session(
                child,
                stdin,
                started=started,
                timeout=timeout,
                grace=self.kill_grace,
                cap=self.output_cap if cap is None else cap,
                orphans=self.orphans,
            )
        except BaseException:
            running.abort()
            raise
        return running

    def _ended(self, pid: int) -> None:
        with self._running_lock:
            self._running.discard(pid)

    def running(self) -> list[int]:
        """Pids (= process group ids) of the runs in progress on any thread."""
        with self._running_lock:
            return sorted(self._running)

    def kill_group(self, pid: int, sig: int = signal.SIGKILL) -> bool:
        """Signal the process group of the run whose child is `pid` (cancel, overdue at stop).

        Only runs in progress are signalled, so a stale pid from a finished
        run never hits an unrelated process. That `run` returns normally with
        `signal` set. True when the signal was sent.
        """
        with self._running_lock:
            if pid not in self._running:
                return False
        return signal_group(pid, sig)


class Running:
    """A started run. `wait()` finishes it on this thread with its own poll; a loop that
    runs many at once instead `attach()`es each to its poll set, passes each its events
    (`handle`), asks `advance()` whether it is over and then `finish()`es it."""

    def __init__(self, runner: ModuleRunner, child: Child) -> None:
        self.runner = runner
        self.child = child
        self.session: Session

    def wait(self) -> ProcessOutcome:
        poller = select.poll()  # no fd to create and close, unlike epoll
        try:
            self.attach(poller)
            while not self.advance():
                events = poller.poll(math.ceil(self.wait_s() * 1000))
                self.handle(events)
        except BaseException:
            self.abort()
            raise
        return self.finish()

    def attach(self, poller: Poller) -> None:
        """Watch this run's descriptors with `poller` and write the first of its stdin."""
        self.session.start_io(poller)

    def handle(self, events: Sequence[tuple[int, int]]) -> None:
        """Act on `poll()` events for this run's descriptors."""
        self.session.handle(events)

    def advance(self) -> bool:
        """Enforce the deadlines; True when the run is over and `finish()` may be called."""
        return self.session.advance(time.monotonic())

    def wait_s(self) -> float:
        """Seconds until `advance()` has something to do if no event comes first."""
        return self.session.wait_s(time.monotonic())

    def wake_at(self) -> float:
        """When `advance()` next has something to do if no event comes first, in
        `run_time()` seconds."""
        return self.session.wake_at(time.monotonic())

    def finish(self) -> ProcessOutcome:
        """Stop watching, close our descriptors and say what the run produced."""
        try:
            return self.session.outcome()
        finally:
            self._close()

    def abort(self) -> None:
        """Give up on the run (the caller is dying): kill its group, reap, close."""
        signal_group(self.child.pid, signal.SIGKILL)
        reap(self.child, self.runner.orphans)
        self._close()

    def _close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
        if self.child.stdout_fd >= 0:
            self.child.close()
        self.runner._ended(self.child.pid)
