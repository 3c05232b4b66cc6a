"""The flock'd pidfile: one daemon per state directory and per history directory, and who it is.

The kernel, not a pid's liveness, decides who owns the files: `acquire()`
takes an exclusive flock (before daemonizing; the locks survive the forks),
a second daemon fails there with a clear message, and a stale file left by
`kill -9` is simply locked again and overwritten. `read_pid()` is how the
commands find the running daemon.

Each directory (`state_dir`, and `history_dir`, which two instances must not
share either: both would append to the never-pruned history) is locked twice:

* the directory itself (an `O_RDONLY` descriptor can be flock'd), which works
  on a full or read-only filesystem too, so exclusion never depends on
  being able to write;
* its pid file (`state_dir/survivor.pid`, `history_dir/survivor.pid`), which
  says who holds it; the state one is flock'd and held open (it is what
  `survivor stop`/`reload` read), the history one is written and closed (an
  open descriptor for writing would make `mount -o remount,ro` of the history
  filesystem fail with EBUSY). When it cannot
  be opened or written (read-only or full disk) the daemon still starts,
  holding the directory lock, and says so: `problems` lists why, the daemon
  logs it and reports it as a disk error in its health (DESIGN §6: a full or
  read-only disk does not stop checks).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path

from survivor.errors import SurvivorError
from survivor.store.fsio import ensure_dir, open_refusing_symlink

log = logging.getLogger(__name__)

# A pidfile that cannot be written for these reasons does not stop the daemon.
DISK_ERRORS = frozenset((errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO))


class AlreadyRunningError(SurvivorError):
    pass


class PidFile:
    """The flock'd pidfile of `state_dir` (and of each directory in `also`).

    `acquire()` before daemonizing (the locks survive the forks); `write_pid()`
    once the final pid is known; `release()` at exit. A stale file left by
    `kill -9` is simply locked again and overwritten.
    """

    def __init__(self, path: Path, also: tuple[Path, ...] = ()) -> None:
        self.path = path
        self.fd: int | None = None
        own = _same_dir_key(path.parent)
        # history_dir may be state_dir itself (one lock then): a second flock of the same
        # directory from this process would refuse us.
        self.others = tuple(d / path.name for d in also if _same_dir_key(d) != own)
        self._dir_fds: list[int] = []
        self.problems: list[tuple[Path, OSError]] = []  # pid files that could not be written
        self._written: set[Path] = set()  # pid files of `also` written (removed at release)

    def descriptors(self) -> list[int]:
        """Every descriptor that holds a lock (for python-daemon's files_preserve)."""
        return [*self._dir_fds, *([] if self.fd is None else [self.fd])]

    def acquire(self) -> None:
        try:
            for path in (self.path, *self.others):
                self._acquire(path)
        except BaseException:
            self._close_all()
            raise

    def _acquire(self, path: Path) -> None:
        directory = path.parent
        with contextlib.suppress(OSError):  # a read-only disk: it must exist already
            ensure_dir(directory)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise self._taken(path) from None
        self._dir_fds.append(dir_fd)
        if path != self.path:
            # Written by write_pid() and closed: a descriptor open for writing would keep
            # `mount -o remount,ro` from working on the history filesystem (EBUSY).
            return
        while True:
            try:
                # A symlink planted as the pidfile is moved aside: truncating it would
                # truncate whatever it points to.
                fd = open_refusing_symlink(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            except OSError as err:
                if err.errno not in DISK_ERRORS:
                    raise
                self._cannot_write(path, err)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._taken(path) from None
            # If the file was unlinked between open and flock, our lock guards nothing: retry.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)

    def _taken(self, path: Path) -> AlreadyRunningError:
        who = _holder(path)
        if path == self.path:
            return AlreadyRunningError(
                f"another survivor daemon ({who}) already uses this state "
                f"directory ({self.path} is locked); stop it first or use another state_dir"
            )
        return AlreadyRunningError(
            f"another survivor daemon ({who}) already writes the history directory "
            f"{path.parent} ({path} is locked); two instances must not share history_dir: "
            "give this one its own"
        )

    def _cannot_write(self, path: Path, err: OSError) -> None:
        self.problems.append((path, err))
        log.error(
            "pidfile: cannot write %s (%s); running anyway: the directory is locked, so no "
            "second daemon can start on it, but `survivor reload` and `stop` cannot find "
            "this daemon (pid %d) until the file can be written: signal it directly",
            path,
            err.strerror or err,
            os.getpid(),
        )

    def write_pid(self, pid: int | None = None) -> None:
        """Write who holds the locks; a full or read-only disk is reported, not raised."""
        assert self._dir_fds, "acquire() first"
        pid = pid or os.getpid()
        try:
            if self.fd is not None:
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, f"{pid}\n".encode(), 0)
                os.fsync(self.fd)
        except OSError as err:
            if err.errno not in DISK_ERRORS:
                raise
            self._cannot_write(self.path, err)
        for path in self.others:  # who holds the directory: its pid and state_dir
            try:
                fd = open_refusing_symlink(
                    path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                )
                try:
                    os.write(fd, f"{pid}\n{self.path.parent}\n".encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as err:
                if err.errno not in DISK_ERRORS:
                    raise
                self._cannot_write(path, err)
                continue
            self._written.add(path)

    def release(self) -> None:
        if not self._dir_fds:
            return
        for path in [*([] if self.fd is None else [self.path]), *self._written]:
            with contextlib.suppress(OSError):
                path.unlink()
        self._written.clear()
        self._close_all()

    def _close_all(self) -> None:
        for fd in self.descriptors():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dir_fds.clear()
        self.fd = None

    def __enter__(self) -> PidFile:
        self.write_pid()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_dir_key(directory: Path) -> str:
    return os.path.realpath(directory)


def _holder(path: Path) -> str:
    """Who holds a pid file, from its text: "pid N" (and the state directory), or "pid ?"."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "pid ?"
    try:
        lines = os.pread(fd, 4096, 0).decode(errors="replace").split("\n")
    finally:
        os.close(fd)
    pid = lines[0].strip() or "?"
    state = lines[1].strip() if len(lines) > 1 else ""
    return f"pid {pid}, state_dir {state}" if state else f"pid {pid}"


def read_pid(path: Path) -> int | None:
    """The pid in a pidfile if a process still holds its lock, else None (stale or absent)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: stale
    finally:
        os.close(fd)
