"""One child process and its pipes: spawning it, its I/O and deadlines, reaping it.

A module is untrusted in the ways that matter to a daemon: it may hang,
ignore SIGTERM, never read its stdin, print 100 MB, leave a grandchild
holding its stdout, or die by a signal. A `Session` survives all of these
without a helper thread: it writes stdin, drains stdout and stderr and
notices the child's exit (through a pidfd) from whatever poll set it is
attached to, and its deadlines are enforced between wake-ups.

Decisions:

* Output past the cap is read and thrown away, not a reason to kill: a fix or
  transmit module that talks too much must still finish what it started, and
  the timeout already bounds how long it can talk. Memory stays bounded.
* After the direct child exits, descendants still holding the pipes get
  LINGER seconds, then their process group is killed and the pipes closed. A
  descendant that left the group with setsid() is out of reach and only loses
  its pipes.
* A child that does not die after SIGKILL (stuck in the kernel, D state) is
  given up on after REAP_PATIENCE seconds and left in its runner's `Orphans`,
  reaped later.
* A check with `limits:` gets them set before its first instruction: started
  through prlimit(1), or where that is missing forked by Popen with
  `rlimits` set in a `preexec_fn` (survivor.proc.limits says why).

Timing uses `time.monotonic()` directly: child processes live in real seconds
even when the daemon runs on a fake or scaled clock.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from survivor.proc import spawner
from survivor.proc.limits import RLimit, set_in_child
from survivor.proc.spawn import spawn

log = logging.getLogger(__name__)

STDERR_CAP = 16 * 1024  # bytes of stderr kept for the log
LINGER = 0.5  # seconds to wait for EOF from descendants once the child has exited
REAP_PATIENCE = 5.0  # seconds to wait for a SIGKILLed child (D state) before giving up
_POLL_INTERVAL = 0.02  # seconds between exit checks where pidfds are not available
_READ_SIZE = 65536
SPAWNER_FROM = 128  # runs in flight from which children start on the spawner thread: above
# the 80-odd a quarter-second tick starts at once at 20,000 one-minute services (the two
# loops would wait on the one spawner for a gain that small tables do not give)
_live: set[int] = set()  # id() of each Session not closed yet (add and discard are atomic)


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


class Poller(Protocol):
    """Where a run's descriptors are watched: its own `select.poll()`, or a loop's."""

    def register(self, fd: int, eventmask: int = ..., /) -> None: ...

    def unregister(self, fd: int, /) -> None: ...


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A setuid descendant we may not signal; the pipes are closed regardless.
        log.warning("module process group %d: not permitted to send signal %d", pgid, sig)
        return False
    return True


class Child:
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


def spawn_child(
    argv: list[str],
    env: dict[str, str],
    *,
    with_stdin: bool,
    in_root: bool,
    rlimits: Sequence[RLimit] = (),
) -> Child:
    """Start `argv` in a new session with cwd "/", stdin a pipe (or /dev/null), stdout/err pipes.

    posix_spawn (vfork and exec in glibc, called through survivor.proc.spawn so
    that other threads run meanwhile) costs the daemon about 30 % less CPU
    than `subprocess.Popen` (133 vs 185 µs for /bin/true, with the poll
    loop), but it cannot change directory: it is used when the daemon's cwd
    already is "/" (the daemon moves there at start, and `in_root` says so)
    and `argv[0]` is a path; otherwise Popen does the same job. `rlimits` are
    set in the child before it execs, which posix_spawn cannot do: Popen then
    too (the fallback where prlimit(1) is missing: survivor.proc.limits).

    With SPAWNER_FROM runs or more in flight, their descriptors make every
    spawn dearer for the child; the posix_spawn then happens on the spawner
    thread, whose descriptor table is its own and nearly empty
    (survivor.proc.spawner).
    """
    posix = in_root and "/" in argv[0] and not rlimits  # else Popen
    if posix and len(_live) >= SPAWNER_FROM:
        started = spawner.shared().spawn(argv[0], argv, env, with_stdin=with_stdin)
        if started is not None:
            return Child(started.pid, started.stdin_fd, started.stdout_fd, started.stderr_fd)
    stdin_r, stdin_w = os.pipe() if with_stdin else (None, None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ours = [fd for fd in (stdin_w, out_r, err_r) if fd is not None]
    theirs = [fd for fd in (stdin_r, out_w, err_w) if fd is not None]
    try:
        if posix and min(theirs) > 2:
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
                preexec_fn=partial(set_in_child, rlimits) if rlimits else None,
            )
            pid = popen.pid
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return Child(pid, stdin_w, out_r, err_r, popen)


def cwd_is_root() -> bool:
    try:
        return os.getcwd() == "/"
    except OSError:  # the cwd was deleted
        return False


def seal_fds() -> int:
    """Mark every descriptor above 2 close-on-exec; returns how many were looked at one by
    one (0 when the kernel did it in one call).

    Python opens every file close-on-exec, but descriptors inherited at
    start and some opened by C code (watchdog's inotify descriptor) are
    not, and `posix_spawn` has no close-all. The runner calls this before
    its first run and then at most every SEAL_INTERVAL seconds, so a
    descriptor opened inheritable by a library reaches modules for at most
    that long. Linux 5.11 and glibc 2.34 do it in one system call,
    `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`; the fallback lists
    /proc/self/fd, two system calls per descriptor (with 2,000 checks in
    flight that was 4,000 calls a second, docs/benchmarks.md).
    """
    if _close_range_cloexec(3):
        return 0
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


_CLOSE_RANGE_CLOEXEC = 1 << 2  # <linux/close_range.h>
_ALL_FDS = 0xFFFFFFFF  # ~0U: up to the highest descriptor


def _load_close_range() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).close_range
    except (OSError, AttributeError):  # glibc before 2.34, or not glibc
        return None
    fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_close_range = _load_close_range()


def _close_range_cloexec(first: int) -> bool:
    """Set close-on-exec on every descriptor from `first` up; False where the kernel or the
    C library cannot (ENOSYS before Linux 5.9, EINVAL for the flag before 5.11)."""
    if _close_range is None:
        return False
    return bool(_close_range(first, _ALL_FDS, _CLOSE_RANGE_CLOEXEC) == 0)


class Orphans:
    """Children killed but not yet reaped (stuck in D state): given up on, reaped later."""

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()

    def abandon(self, pid: int) -> None:
        log.error("module pid %d did not die after SIGKILL; leaving it to be reaped later", pid)
        with self._lock:
            self._pids.add(pid)

    def reap(self) -> None:
        """Reap those that have died since."""
        with self._lock:
            pids = list(self._pids)
        for pid in pids:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                with self._lock:
                    self._pids.discard(pid)


def reap(child: Child, orphans: Orphans) -> None:
    """Wait for a killed child, at most REAP_PATIENCE seconds; then leave it to `orphans`."""
    deadline = time.monotonic() + REAP_PATIENCE
    while child.poll() is None:
        if time.monotonic() >= deadline:
            orphans.abandon(child.pid)
            return
        time.sleep(_POLL_INTERVAL)


class Session:
    """The state of one run's I/O and deadlines; driven by `Running`, on one thread at a time."""

    def __init__(
        self,
        child: Child,
        stdin: bytes,
        *,
        started: float,
        timeout: float,
        grace: float,
        cap: int,
        orphans: Orphans,
    ) -> None:
        self.child = child
        self.orphans = orphans
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
        _live.add(id(self))

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
                self.orphans.abandon(self.child.pid)
                return True
            return False
        if not self.reads:
            return True
        if now >= self.exited_at + LINGER:
            # Descendants still hold the pipes after the child exited: end them.
            signal_group(self.child.pid, signal.SIGKILL)
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
        _live.discard(id(self))

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
            signal_group(self.child.pid, signal.SIGTERM)
        if self.term_at is not None and self.kill_at is None and now >= self.term_at + self.grace:
            self.kill_at = now
            signal_group(self.child.pid, signal.SIGKILL)

    def wait_s(self, now: float) -> float:
        return max(0.0, self.wake_at(now) - now)

    def wake_at(self, now: float) -> float:
        """When `advance()` next has something to do if no event comes first (monotonic)."""
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
        return wake

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
