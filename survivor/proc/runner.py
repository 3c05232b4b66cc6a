"""Run one module or plugin: the only place survivor starts child processes.

A module is untrusted in the ways that matter to a daemon: it may hang,
ignore SIGTERM, never read its stdin, print 100 MB, leave a grandchild
holding its stdout, or die by a signal. `ModuleRunner.run` survives all of
these on one thread, with no helper thread per run: one `poll(2)` loop
writes stdin, drains stdout and stderr and notices the child's exit (through
a pidfd), and the deadlines are checked between wake-ups. `start` returns
the run as a `Running` handle instead, so that the check pool's loop
(survivor.looppool) can drive many runs from one poll set; `run` is
`start(...).wait()`.

Decisions:

* Output past the cap is read and thrown away, not a reason to kill: a fix or
  transmit module that talks too much must still finish what it started, and
  the timeout already bounds how long it can talk. Memory stays bounded.
* After the direct child exits, descendants still holding the pipes get
  LINGER seconds, then their process group is killed and the pipes closed. A
  descendant that left the group with setsid() is out of reach and only loses
  its pipes.
* Symlinks in module_dir must stay inside it; plugin dirs may link anywhere
  (distributions fill /usr/lib/nagios/plugins with links, and the directory is
  as trusted as the package manager). In both, the file run must be a regular,
  executable, not world-writable file in a directory that is not
  world-writable, and a name is a single safe path component.

Timing uses `time.monotonic()` directly: the runner is the one exception to
"only clock.py reads time", because child processes live in real seconds even
when the daemon runs on a fake or scaled clock.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from survivor.errors import ModuleError
from survivor.model.names import NAME_PATTERN, is_safe_name
from survivor.proc.spawn import spawn

log = logging.getLogger(__name__)

KINDS = ("check", "fix", "format", "transmit")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDERR_CAP = 16 * 1024  # bytes of stderr kept for the log
LINGER = 0.5  # seconds to wait for EOF from descendants once the child has exited
REAP_PATIENCE = 5.0  # seconds to wait for a SIGKILLed child (D state) before giving up
_POLL_INTERVAL = 0.02  # seconds between exit checks where pidfds are not available
_READ_SIZE = 65536
SEAL_INTERVAL = 1.0  # seconds between seal_fds() calls of a runner (and cwd checks)
RESOLVE_TTL = 1.0  # seconds a module lookup is reused


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """What one run of an executable produced and how it ended."""

    stdout: bytes  # at most `cap` bytes
    stderr: bytes  # at most STDERR_CAP bytes
    exit_status: int | None  # None when it died by a signal or could not be reaped
    signal: int | None  # the signal that ended it
    timed_out: bool  # we signalled the group because the timeout passed
    truncated: bool  # stdout exceeded the cap; the rest was discarded
    duration_ms: int  # from spawn to the child's exit
    pid: int  # also the process group id

    @property
    def signal_name(self) -> str | None:
        """`SIGSEGV` rather than 11, for comments and logs."""
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


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
        # Absolute (modules run with cwd "/") but not resolved: a symlinked module dir may be
        # switched to a new release while the daemon runs.
        self.module_dirs = tuple(Path(d).absolute() for d in module_dirs)
        self.plugin_dirs = tuple(Path(d).absolute() for d in plugin_dirs)
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
        self._resolved: dict[tuple[str, ...], tuple[float, Path]] = {}  # key -> (until, path)

    # ----------------------------------------------------------------------- finding

    def resolve(self, kind: str, name: str) -> Path:
        """The executable for `name` of `kind`, looked up at most once a second.

        module_dir/<kind>/<name> in each module dir in order, then (for
        checks) <plugin_dir>/<name>. The first file found is the one: if it
        is unsafe to run, ModuleError says why rather than falling through.
        A found path is reused for RESOLVE_TTL seconds (a lookup is five
        stat-type calls, each a GIL hand-off between busy workers): a file
        replaced at that path runs at once, while a new, removed or newly
        unsafe module is noticed within the second. Failures are not reused.
        """
        return self._cached(("module", kind, name), lambda: self._lookup(kind, name))

    def _cached(self, key: tuple[str, ...], lookup: Callable[[], Path]) -> Path:
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        path = lookup()
        self._resolved[key] = (now + RESOLVE_TTL, path)
        return path

    def _lookup(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise ModuleError(f"unknown module kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not is_safe_name(name):
            raise ModuleError(
                f"{kind} module name {name!r} is not allowed: names must match"
                f" {NAME_PATTERN} and contain no '..'"
            )
        looked: list[str] = []
        for base in self.module_dirs:
            candidate = base / kind / name
            if self._vet(kind, candidate, confine_to=base):
                return candidate
            looked.append(str(candidate))
        if kind == "check":
            for base in self.plugin_dirs:
                candidate = base / name
                if self._vet(kind, candidate, confine_to=None):
                    return candidate
                looked.append(str(candidate))
        if not looked:
            raise ModuleError(f"{kind} module {name!r} not found: no module dirs are configured")
        raise ModuleError(
            f"{kind} module {name!r} not found; looked for {', '.join(looked)};"
            " install an executable file (mode 755) at one of these paths"
        )

    def resolve_plugin(self, plugin: str) -> Path:
        """A `plugin:` value: a name looked up like a check module, or an absolute path."""
        if not plugin.startswith("/"):
            return self.resolve("check", plugin)
        return self._cached(("plugin", plugin), lambda: self._vet_plugin_path(plugin))

    def _vet_plugin_path(self, plugin: str) -> Path:
        path = Path(plugin)
        if ".." in path.parts:
            raise ModuleError(f"plugin path {plugin!r} must not contain '..'")
        if not self._vet("check", path, confine_to=None):
            raise ModuleError(f"plugin {plugin} not found; install it or fix the path")
        return path

    @staticmethod
    def _vet(kind: str, path: Path, *, confine_to: Path | None) -> bool:
        """False when absent; True when safe to run; ModuleError when present but unsafe."""
        try:
            st = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                raise ModuleError(
                    f"{kind} module {path} is a symlink to {str(path.readlink())!r}, which does not"
                    " exist; fix or remove the link"
                ) from None
            return False
        except OSError as exc:
            raise ModuleError(f"{kind} module {path} cannot be examined: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ModuleError(
                f"{kind} module {path} is not a regular file; put an executable file there"
            )
        if st.st_mode & stat.S_IWOTH:
            raise ModuleError(
                f"{kind} module {path} is world-writable, so anyone could change what survivor"
                f" runs; run: chmod o-w {path}"
            )
        if not os.access(path, os.X_OK):
            raise ModuleError(f"{kind} module {path} is not executable; run: chmod 755 {path}")
        parent = path.parent
        if parent.stat().st_mode & stat.S_IWOTH:
            raise ModuleError(
                f"{kind} module {path} is in the world-writable directory {parent}, where anyone"
                f" could replace it; run: chmod o-w {parent}"
            )
        if confine_to is not None:
            real = os.path.realpath(path)
            root = os.path.realpath(confine_to)
            if not real.startswith(root.rstrip(os.sep) + os.sep):
                raise ModuleError(
                    f"{kind} module {path} resolves to {real}, outside the module dir {root};"
                    f" copy the file into {parent} instead of linking to it"
                )
        return True

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
    ) -> ProcessOutcome:
        """Run `argv` (no shell) with `stdin`, in its own session, and collect what it printed.

        At `timeout` seconds the process group gets SIGTERM, and SIGKILL
        `kill_grace` seconds later. `env` adds variables (SURVIVOR_* by
        convention) to the clean environment. `on_start(pid)` is called, after
        the runner's own `on_start`, as soon as the child exists (a work item
        records its pid). Raises ModuleError when the executable cannot be
        started.
        """
        return self.start(argv, stdin, timeout, cap=cap, env=env, on_start=on_start).wait()

    def start(
        self,
        argv: Sequence[str],
        stdin: bytes,
        timeout: float,
        *,
        cap: int | None = None,
        env: Mapping[str, str] | None = None,
        on_start: Callable[[int], None] | None = None,
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
            _reap_orphans()
            self._in_root = _cwd_is_root()
            self._sealed_until = started + SEAL_INTERVAL
        try:
            child = _spawn(list(argv), child_env, with_stdin=bool(stdin), in_root=self._in_root)
        except OSError as exc:
            raise ModuleError(
                f"cannot run {argv[0]}: {exc.strerror or exc}; check that it exists, is"
                " executable and starts with a valid #! line"
            ) from exc
        with self._running_lock:
            self._running.add(child.pid)
        running = Running(self, child)
        try:
            for callback in (self.on_start, on_start):
                if callback is not None:
                    callback(child.pid)
            running.session = _Session(
                child,
                stdin,
                started=started,
                timeout=timeout,
                grace=self.kill_grace,
                cap=self.output_cap if cap is None else cap,
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
        return _signal_group(pid, sig)

    def kill_all(self, sig: int = signal.SIGKILL) -> int:
        """Signal the process group of every run in progress; returns how many were signalled."""
        return sum(self.kill_group(pid, sig) for pid in self.running())


class Poller(Protocol):
    """Where a run's descriptors are watched: its own `select.poll()`, or a loop's."""

    def register(self, fd: int, eventmask: int = ..., /) -> None: ...

    def unregister(self, fd: int, /) -> None: ...


class Running:
    """A started run. `wait()` finishes it on this thread with its own poll; a loop that
    runs many at once instead `attach()`es each to its poll set, passes each its events
    (`handle`), asks `advance()` whether it is over and then `finish()`es it."""

    def __init__(self, runner: ModuleRunner, child: _Child) -> None:
        self.runner = runner
        self.child = child
        self.session: _Session

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

    def finish(self) -> ProcessOutcome:
        """Stop watching, close our descriptors and say what the run produced."""
        try:
            return self.session.outcome()
        finally:
            self._close()

    def abort(self) -> None:
        """Give up on the run (the caller is dying): kill its group, reap, close."""
        _signal_group(self.child.pid, signal.SIGKILL)
        _reap(self.child)
        self._close()

    def _close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
        if self.child.stdout_fd >= 0:
            self.child.close()
        self.runner._ended(self.child.pid)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A setuid descendant we may not signal; the pipes are closed regardless.
        log.warning("module process group %d: not permitted to send signal %d", pgid, sig)
        return False
    return True


class _Child:
    """A started child: its pid (also its process group id) and our ends of its pipes."""

    def __init__(
        self,
        pid: int,
        stdin_fd: int | None,
        stdout_fd: int,
        stderr_fd: int,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pid = pid
        self.stdin_fd = stdin_fd  # None: the child reads /dev/null
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.popen = popen  # set on the fallback path, which reaps through Popen
        self.returncode: int | None = None  # as Popen's: -N when signal N ended it

    def poll(self) -> int | None:
        """The exit code once the child has exited and been reaped, else None."""
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            self.returncode = self.popen.poll()
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped behind our back; nothing more to learn
            self.returncode = -signal.SIGKILL
            return self.returncode
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def close(self) -> None:
        self.close_stdin()
        for fd in (self.stdout_fd, self.stderr_fd):
            os.close(fd)
        self.stdout_fd = self.stderr_fd = -1


def _spawn(argv: list[str], env: dict[str, str], *, with_stdin: bool, in_root: bool) -> _Child:
    """Start `argv` in a new session with cwd "/", stdin a pipe (or /dev/null), stdout/err pipes.

    posix_spawn (vfork and exec in glibc, called through survivor.spawn so
    that other threads run meanwhile) costs the daemon about 30 % less CPU
    than `subprocess.Popen` (133 vs 185 µs for /bin/true, with the poll
    loop), but it cannot change directory: it is used when the daemon's cwd
    already is "/" (the daemon moves there at start, and `in_root` says so)
    and `argv[0]` is a path; otherwise Popen does the same job.
    """
    stdin_r, stdin_w = os.pipe() if with_stdin else (None, None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ours = [fd for fd in (stdin_w, out_r, err_r) if fd is not None]
    theirs = [fd for fd in (stdin_r, out_w, err_w) if fd is not None]
    try:
        if in_root and "/" in argv[0] and min(theirs) > 2:
            pid = spawn(argv[0], argv, env, stdin=stdin_r, stdout=out_w, stderr=err_w)
            popen = None
        else:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if stdin_r is None else stdin_r,
                stdout=out_w,
                stderr=err_w,
                close_fds=True,
                start_new_session=True,
                cwd="/",
                env=env,
            )
            pid = popen.pid
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return _Child(pid, stdin_w, out_r, err_r, popen)


def _cwd_is_root() -> bool:
    try:
        return os.getcwd() == "/"
    except OSError:  # the cwd was deleted
        return False


def seal_fds() -> int:
    """Mark every descriptor above 2 close-on-exec; returns how many were not.

    Python opens every file close-on-exec, but descriptors inherited at
    start and some opened by C code (watchdog's inotify descriptor) are
    not, and `posix_spawn` has no close-all. The runner calls this before
    its first run and then at most every SEAL_INTERVAL seconds, so a
    descriptor opened inheritable by a library reaches modules for at most
    that long.
    """
    sealed = 0
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    for fd in fds:
        if fd <= 2:
            continue
        try:
            if os.get_inheritable(fd):
                os.set_inheritable(fd, False)
                sealed += 1
        except OSError:  # the listing's own descriptor, or closed meanwhile
            continue
    return sealed


_orphans: set[int] = set()  # children killed but not yet reaped (stuck in D state)


def _reap(child: _Child) -> None:
    deadline = time.monotonic() + REAP_PATIENCE
    while child.poll() is None:
        if time.monotonic() >= deadline:
            _abandon(child.pid)
            return
        time.sleep(_POLL_INTERVAL)


def _abandon(pid: int) -> None:
    """Give up waiting for a SIGKILLed child stuck in the kernel (D state); reaped later."""
    log.error("module pid %d did not die after SIGKILL; leaving it to be reaped later", pid)
    _orphans.add(pid)


def _reap_orphans() -> None:
    """Reap children that were stuck in the kernel when their run gave up on them."""
    for pid in list(_orphans):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _orphans.discard(pid)


class _Session:
    """The state of one run's I/O and deadlines; driven by `Running`, on one thread at a time."""

    def __init__(
        self,
        child: _Child,
        stdin: bytes,
        *,
        started: float,
        timeout: float,
        grace: float,
        cap: int,
    ) -> None:
        self.child = child
        self.started = started
        self.deadline = started + max(0.0, timeout)
        self.grace = grace
        self.cap = cap
        self.out = bytearray()
        self.err = bytearray()
        self.truncated = False
        self.timed_out = False
        self.term_at: float | None = None  # when SIGTERM went to the group
        self.kill_at: float | None = None  # when SIGKILL went to the group
        self.exited_at: float | None = None
        self.poller: Poller | None = None
        self.polled: set[int] = set()
        self.stdout_fd = child.stdout_fd
        self.stderr_fd = child.stderr_fd
        self.stdin_fd = child.stdin_fd
        self.reads = {self.stdout_fd, self.stderr_fd}
        self.pending = memoryview(stdin)
        self.pidfd = _open_pidfd(child.pid)

    def start_io(self, poller: Poller) -> None:
        self.poller = poller
        if self.stdin_fd is not None:
            os.set_blocking(self.stdin_fd, False)
            self._write_stdin()  # small documents go in one write, before any poll
            if self.pending:
                self._watch(self.stdin_fd, select.POLLOUT)
        for fd in self.reads:
            self._watch(fd, select.POLLIN)
        if self.pidfd is not None:
            self._watch(self.pidfd, select.POLLIN)

    def advance(self, now: float) -> bool:
        """Deadlines due at `now`; True when the run is over."""
        if self.exited_at is None:
            self._enforce_timeout(now)
            if self.kill_at is not None and now >= self.kill_at + REAP_PATIENCE:
                _abandon(self.child.pid)
                return True
            return False
        if not self.reads:
            return True
        if now >= self.exited_at + LINGER:
            # Descendants still hold the pipes after the child exited: end them.
            _signal_group(self.child.pid, signal.SIGKILL)
            return True
        return False

    def handle(self, events: Sequence[tuple[int, int]]) -> None:
        exit_signalled = self.pidfd is None  # without a pidfd: look after every wake-up
        for fd, _mask in events:
            if fd == self.stdout_fd or fd == self.stderr_fd:
                self._read(fd)
            elif fd == self.stdin_fd:
                self._write_stdin()
            elif fd == self.pidfd:
                exit_signalled = True
        # waitpid() only when the pidfd says the child exited: no system call on the
        # wake-ups that only bring output.
        if self.exited_at is None and exit_signalled and self.child.poll() is not None:
            self.exited_at = time.monotonic()
            if self.pidfd is not None:
                self._unwatch(self.pidfd)

    def outcome(self) -> ProcessOutcome:
        if self.exited_at is None:  # only when it could not be killed
            self.exited_at = time.monotonic()
        returncode = self.child.returncode
        return ProcessOutcome(
            stdout=bytes(self.out),
            stderr=bytes(self.err),
            exit_status=returncode if returncode is not None and returncode >= 0 else None,
            signal=-returncode if returncode is not None and returncode < 0 else None,
            timed_out=self.timed_out,
            truncated=self.truncated,
            duration_ms=round((self.exited_at - self.started) * 1000),
            pid=self.child.pid,
        )

    def close(self) -> None:
        """Stop watching every descriptor (before any is closed: a shared poll set must not
        keep a number the kernel may hand out again), then close the pidfd."""
        for fd in list(self.polled):
            self._unwatch(fd)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def _watch(self, fd: int, events: int) -> None:
        assert self.poller is not None
        self.poller.register(fd, events)
        self.polled.add(fd)

    def _unwatch(self, fd: int) -> None:
        assert self.poller is not None
        self.poller.unregister(fd)
        self.polled.discard(fd)

    def _enforce_timeout(self, now: float) -> None:
        if self.term_at is None and now >= self.deadline:
            self.timed_out = True
            self.term_at = now
            _signal_group(self.child.pid, signal.SIGTERM)
        if self.term_at is not None and self.kill_at is None and now >= self.term_at + self.grace:
            self.kill_at = now
            _signal_group(self.child.pid, signal.SIGKILL)

    def wait_s(self, now: float) -> float:
        if self.exited_at is not None:
            wake = self.exited_at + LINGER
        elif self.term_at is None:
            wake = self.deadline
        elif self.kill_at is None:
            wake = self.term_at + self.grace
        else:
            wake = self.kill_at + REAP_PATIENCE
        if self.pidfd is None and self.exited_at is None:
            wake = min(wake, now + _POLL_INTERVAL)
        return max(0.0, wake - now)

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            self._unwatch(fd)
            self.reads.discard(fd)
            return
        if fd == self.stdout_fd:
            room = self.cap - len(self.out)
            if len(chunk) > room:
                self.truncated = True
                chunk = chunk[: max(0, room)]
            self.out += chunk
        else:
            room = STDERR_CAP - len(self.err)
            if room > 0:
                self.err += chunk[:room]

    def _write_stdin(self) -> None:
        assert self.stdin_fd is not None
        try:
            while self.pending:
                written = os.write(self.stdin_fd, self.pending)
                self.pending = self.pending[written:]
        except BlockingIOError:
            return  # the pipe is full; poll says when there is room
        except (BrokenPipeError, ConnectionResetError):
            self.pending = memoryview(b"")  # the module does not want (the rest of) its input
        if self.stdin_fd in self.polled:
            self._unwatch(self.stdin_fd)
        self.child.close_stdin()  # EOF ends the document
        self.stdin_fd = None


def _open_pidfd(pid: int) -> int | None:
    """A descriptor that polls readable when `pid` exits, where the kernel offers one."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
