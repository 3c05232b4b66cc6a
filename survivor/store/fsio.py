"""The one writer: atomic replace, one-record append, entity locks, safe paths, the pidfile.

Every byte survivor puts on disk goes through here, so the rules live in one
place (STYLE.md habits 5-8):

* a state file is replaced atomically: temp file in the same directory, mode
  0644, fsync per policy, `os.replace`, directory fsync; the temp is unlinked
  on any error, so a reader sees the old file or the new one, never a torn one;
* a history record is one complete line written with one `os.write` on an
  `O_APPEND` descriptor; a short write (disk full) is truncated back and raised;
* writers lock a separate, stable `.lock` file with `fcntl.flock` plus a
  `threading.Lock`; readers never lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from survivor.errors import StateError, SurvivorError
from survivor.model.config import FsyncPolicy

log = logging.getLogger(__name__)

FILE_MODE = 0o644
DIR_MODE = 0o755


class DiskWriteError(SurvivorError):
    """A write failed (disk full, read-only, I/O error); nothing torn was left behind."""

    def __init__(self, path: Path, err: OSError) -> None:
        self.path = path
        self.errno = err.errno
        super().__init__(f"cannot write {path}: {err.strerror or err}")


def ensure_dir(path: Path, mode: int = DIR_MODE, owner: tuple[int, int] | None = None) -> None:
    """Create `path` and its missing parents with exactly `mode`, whatever the umask.

    A root operator with umask 077 must not leave directories the daemon (its
    own user) cannot read. With `owner` (uid, gid) a directory created here is
    also given to that owner (used when root creates one for the daemon).
    """
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise NotADirectoryError(
                errno.ENOTDIR, "exists and is not a directory", str(path)
            ) from None
        return
    except FileNotFoundError:
        if path.parent == path:
            raise
        ensure_dir(path.parent, DIR_MODE, owner)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            return
    os.chmod(path, mode)  # mkdir's mode went through the umask (and never sets the setgid bit)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)


def open_refusing_symlink(path: str | Path, flags: int) -> int:
    """`os.open` with O_NOFOLLOW; a symlink planted at `path` is moved aside, logged, and a
    real file made in its place (so no record is lost and nothing is written through it)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)
    except OSError as err:
        if err.errno != errno.ELOOP or not os.path.islink(path):
            raise
    move_symlink_aside(Path(path))
    return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)


def move_symlink_aside(path: Path) -> Path:
    """Rename a planted symlink to `<name>.symlink-refused` (never followed, never deleted)."""
    try:
        points_to = os.readlink(path)
    except OSError:
        points_to = "?"
    target = path.with_name(f"{path.name}.symlink-refused")
    os.rename(path, target)
    log.error(
        "refused a symlink at %s (to %s): moved aside as %s; a real one is used instead",
        path,
        points_to,
        target.name,
    )
    return target


def refuse_symlinked_pairs(hosts: Path) -> int:
    """Move aside symlinks planted as `hosts/<host>` or `hosts/<host>/<check>` (at start):
    through one, the daemon would write state or history outside its directory."""
    moved = 0
    try:
        host_entries = list(os.scandir(hosts))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for h in host_entries:
        if h.name.endswith(".symlink-refused"):
            continue
        if h.is_symlink():
            move_symlink_aside(Path(h.path))
            moved += 1
            continue
        if not h.is_dir(follow_symlinks=False):
            continue
        for c in os.scandir(h.path):
            if c.is_symlink() and not c.name.endswith(".symlink-refused"):
                move_symlink_aside(Path(c.path))
                moved += 1
    return moved


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter:
    """Writes state files and history lines under one fsync policy.

    With `batch`, writes are not fsynced inline; `flush()` (called by the
    daemon's flusher at least once a second) fsyncs every file and directory
    written since, so a power failure loses at most about a second and never
    leaves a torn file.
    """

    def __init__(self, policy: FsyncPolicy = FsyncPolicy.BATCH) -> None:
        self.policy = policy
        self._dirty_files: set[str] = set()  # strings: see replace_in
        self._dirty_dirs: set[str] = set()
        self._dirty_lock = threading.Lock()
        # directory -> st_dev, for one syncfs per filesystem. Keyed by the string: a Path
        # kept per pair directory cost ~12 MB at 20,000 pairs.
        self._devices: dict[str, int] = {}
        umask = os.umask(0o022)
        os.umask(umask)
        self._chmod = bool(umask & FILE_MODE)  # only when the umask would take bits off 0644
        self._preallocate = True

    # ---------------------------------------------------------------- state files

    def replace(self, path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
        """Atomically replace `path` with `data`; create its directory if needed.

        `mode` other than 0644 is for files that others must not read (the web's
        password file, 0600)."""
        self.replace_in(str(path.parent), path.name, data, mode=mode)

    def replace_in(self, directory: str, name: str, data: bytes, *, mode: int = FILE_MODE) -> None:
        """`replace` of `directory/name`, for the hot path: one result's check.json. Paths
        stay strings here: pathlib's parsing was 5-8 % of a check loop's CPU."""
        try:
            self._replace(directory, name, data, mode)
        except FileNotFoundError:
            try:
                ensure_dir(Path(directory))
                self._replace(directory, name, data, mode)
            except OSError as err:
                raise DiskWriteError(Path(directory, name), err) from err
        except OSError as err:
            raise DiskWriteError(Path(directory, name), err) from err

    def _replace(self, directory: str, name: str, data: bytes, mode: int) -> None:
        # A temp name unique to this process and thread (cheaper than mkstemp's random
        # names); O_NOFOLLOW so a planted symlink cannot redirect the write.
        tmp_name = f"{directory}/.{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp_name, _TMP_FLAGS, mode)
        try:
            try:
                if self._chmod or mode != FILE_MODE:
                    # a tight umask: the CLI and other tools must read it; and O_TRUNC on a
                    # leftover temp file keeps that file's mode, so a private one is set here
                    os.fchmod(fd, mode)
                if self._preallocate and data:
                    # Blocks allocated now are not "delayed": ext4 then need not start
                    # writeback of the temp file inside rename() (auto_da_alloc).
                    try:
                        os.posix_fallocate(fd, 0, len(data))
                    except OSError as err:
                        if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                            raise  # ENOSPC and friends: a failed write like any other
                        self._preallocate = False  # not supported here: plain writes
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.policy is FsyncPolicy.ALWAYS:
                    os.fsync(fd)
            finally:
                os.close(fd)
            path = f"{directory}/{name}"
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        if self.policy is FsyncPolicy.ALWAYS:
            fsync_dir(directory)
        elif self.policy is FsyncPolicy.BATCH:
            with self._dirty_lock:
                if _syncfs is None:
                    self._dirty_files.add(path)
                self._dirty_dirs.add(directory)

    def remove(self, path: Path) -> None:
        """Remove a state file (never used on history)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # ---------------------------------------------------------------- history lines

    def append(self, path: Path, line: bytes) -> None:
        """Append one complete record (`line` ends in a newline) with a single write."""
        self.append_in(str(path.parent), path.name, line)

    def append_in(self, directory: str, name: str, line: bytes) -> None:
        """`append` to `directory/name`, for the hot path (strings: see `replace_in`)."""
        if not line.endswith(b"\n"):
            raise ValueError("a history record must end with a newline")
        path = f"{directory}/{name}"
        try:
            fd = open_refusing_symlink(path, _APPEND_FLAGS)
        except FileNotFoundError:
            try:
                ensure_dir(Path(directory))
                fd = open_refusing_symlink(path, _APPEND_FLAGS)
            except OSError as err:
                raise DiskWriteError(Path(path), err) from err
            self._mark_dir(directory)
        except OSError as err:
            raise DiskWriteError(Path(path), err) from err
        if self._chmod:  # a tight umask (root's 077): others must read history too
            with contextlib.suppress(OSError):  # not our file: its owner set its mode
                os.fchmod(fd, FILE_MODE)
        try:
            write_record(fd, line, path)
            if self.policy is FsyncPolicy.ALWAYS:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.policy is FsyncPolicy.BATCH:
            with self._dirty_lock:
                if _syncfs is None:
                    self._dirty_files.add(path)
                self._dirty_dirs.add(directory)

    def _mark_dir(self, path: str) -> None:
        if self.policy is FsyncPolicy.ALWAYS:
            fsync_dir(path)
        elif self.policy is FsyncPolicy.BATCH:
            with self._dirty_lock:
                self._dirty_dirs.add(path)

    # ---------------------------------------------------------------- group commit

    def flush(self) -> int:
        """Make everything written since the last flush durable; returns how many syncs.

        With syncfs(2) one call per filesystem commits every file and rename
        written there (far cheaper than an fsync per file at a thousand checks
        a second); without it, each file and directory is fsynced.
        """
        with self._dirty_lock:
            files, self._dirty_files = self._dirty_files, set()
            dirs, self._dirty_dirs = self._dirty_dirs, set()
        if _syncfs is not None:
            by_device: dict[int, str] = {}
            for path in dirs:
                dev = self._devices.get(path)
                if dev is None:
                    try:
                        dev = self._devices[path] = os.stat(path).st_dev
                    except FileNotFoundError:
                        continue
                by_device.setdefault(dev, path)
            for path in by_device.values():
                _sync_filesystem(path)
            return len(by_device)
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for path in dirs:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(path)
        return len(files) + len(dirs)


_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def _sync_filesystem(path: str) -> None:
    assert _syncfs is not None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise DiskWriteError(Path(path), OSError(err, os.strerror(err)))
    finally:
        os.close(fd)


def _truncate_back(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)


def write_record(fd: int, line: bytes, path: str | Path) -> None:
    """One record with one `os.write` on an O_APPEND descriptor; a short write (disk full) is
    truncated back and raised as DiskWriteError, so no torn line stays behind."""
    try:
        n = os.write(fd, line)
    except OSError as err:
        raise DiskWriteError(Path(path), err) from err  # nothing was written
    if n != len(line):
        # Take the torn tail back off (the size says where it ends), then report.
        with contextlib.suppress(OSError):
            _truncate_back(fd, os.fstat(fd).st_size - n)
        raise DiskWriteError(Path(path), OSError(errno.ENOSPC, "short write (disk full?)"))


class Appender:
    """An append-only file that many threads write to (`results_log`): one descriptor, kept.

    Each record is one `write_record` under a lock, so a short write can be
    truncated back before anyone else appends. The descriptor is reopened when
    the file was rotated away (logrotate's create mode), checked at most every
    ROTATION_CHECK_S seconds of `monotonic`, and at `reopen()` (SIGUSR1).
    There is one descriptor whatever the number of threads that write.
    """

    ROTATION_CHECK_S = 1.0

    def __init__(self, path: Path, monotonic: Callable[[], float]) -> None:
        self.path = path
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._inode = -1
        self._checked = 0.0

    def write(self, line: bytes) -> None:
        if not line.endswith(b"\n"):
            raise ValueError("a record must end with a newline")
        with self._lock:
            try:
                fd = self._descriptor()
            except OSError as err:
                raise DiskWriteError(self.path, err) from err
            write_record(fd, line, self.path)

    def _descriptor(self) -> int:
        now = self.monotonic()
        if self._fd is not None and now - self._checked >= self.ROTATION_CHECK_S:
            self._checked = now
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = -1
            if inode != self._inode:
                self._close()
        if self._fd is None:
            try:
                fd = open_refusing_symlink(self.path, _APPEND_FLAGS)
            except FileNotFoundError:
                ensure_dir(self.path.parent)
                fd = open_refusing_symlink(self.path, _APPEND_FLAGS)
            self._fd, self._inode, self._checked = fd, os.fstat(fd).st_ino, now
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reopen(self) -> None:
        """Open the file anew at the next write (after logrotate moved it away)."""
        with self._lock:
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()


# ---------------------------------------------------------------- locks


class EntityLocks:
    """`flock` on `<dir>/.lock` plus an in-process lock: threads and processes exclude each other.

    `fcntl.lockf` would not do: its locks do not exclude threads of one process
    and vanish when any descriptor of the file is closed.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._thread_locks: dict[Path, threading.Lock] = {}

    def _thread_lock(self, lock_path: Path) -> threading.Lock:
        with self._guard:
            lock = self._thread_locks.get(lock_path)
            if lock is None:
                lock = self._thread_locks[lock_path] = threading.Lock()
            return lock

    @contextlib.contextmanager
    def hold(self, directory: Path) -> Iterator[None]:
        """Hold the lock of the entity whose files live in `directory`."""
        lock_path = directory / ".lock"
        with self._thread_lock(lock_path):
            try:
                try:
                    fd = open_refusing_symlink(lock_path, _LOCK_FLAGS)
                except FileNotFoundError:
                    ensure_dir(directory)
                    fd = open_refusing_symlink(lock_path, _LOCK_FLAGS)
            except OSError as err:
                raise DiskWriteError(lock_path, err) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def forget(self, directory: Path) -> None:
        """Drop the in-process lock of a pruned entity."""
        with self._guard:
            self._thread_locks.pop(directory / ".lock", None)


# ---------------------------------------------------------------- reading


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # state documents are kilobytes; more is not ours
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def read_document(path: Path) -> dict[str, Any] | None:
    """A state document, None if absent. Raises StateError if it is not a JSON object.

    Only a regular file is read: O_NONBLOCK so a FIFO planted under the name
    cannot hang the reader, O_NOFOLLOW so a planted symlink is refused, the
    size bounded, and every decoding failure (a document nested too deep for
    the parser, bad UTF-8) is a StateError, so the daemon moves it aside.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise StateError(f"{path} is a symlink (refused)") from err
        if err.errno == errno.EISDIR:
            raise StateError(f"{path} is a directory") from err
        raise StateError(f"{path}: cannot read ({err.strerror or err})") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise StateError(f"{path} is {kind}")
        if st.st_size > MAX_DOCUMENT_BYTES:
            raise StateError(f"{path}: {st.st_size} bytes, more than {MAX_DOCUMENT_BYTES}")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_DOCUMENT_BYTES:
                raise StateError(f"{path}: more than {MAX_DOCUMENT_BYTES} bytes")
            chunks.append(chunk)
    except OSError as err:
        raise StateError(f"{path}: cannot read ({err.strerror or err})") from err
    finally:
        os.close(fd)
    try:
        doc = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as err:
        raise StateError(f"{path}: not JSON ({type(err).__name__}: {err})") from err
    if not isinstance(doc, dict):
        raise StateError(f"{path}: not a JSON object")
    return doc
