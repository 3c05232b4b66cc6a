"""The flock'd pidfile: one daemon per state directory, and who it is.

The kernel, not a pid's liveness, decides who owns the file: `acquire()`
takes an exclusive flock (before daemonizing; the lock survives the forks),
a second daemon fails there with a clear message, and a stale file left by
`kill -9` is simply locked again and overwritten. `read_pid()` is how the
commands find the running daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from survivor.errors import SurvivorError
from survivor.store.fsio import ensure_dir, open_refusing_symlink


class AlreadyRunningError(SurvivorError):
    pass


class PidFile:
    """An flock'd pidfile: the kernel, not a pid's liveness, decides who owns it.

    `acquire()` before daemonizing (the lock survives the forks); `write_pid()`
    once the final pid is known; `release()` at exit. A stale file left by
    `kill -9` is simply locked again and overwritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        ensure_dir(self.path.parent)
        while True:
            # A symlink planted as the pidfile is moved aside: truncating it would truncate
            # whatever it points to.
            fd = open_refusing_symlink(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise AlreadyRunningError(
                    f"another survivor daemon (pid {other or '?'}) already uses this state "
                    f"directory ({self.path} is locked); stop it first or use another state_dir"
                ) from None
            # If the file was unlinked between open and flock, our lock guards nothing: retry.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)

    def write_pid(self, pid: int | None = None) -> None:
        assert self.fd is not None, "acquire() first"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid or os.getpid()}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> PidFile:
        self.write_pid()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
