"""Starting children from a thread with a descriptor table of its own (issue 20).

posix_spawn's clone copies the caller's descriptor table into the child, and
exec then closes every close-on-exec descriptor of that copy, one by one.
The daemon holds three descriptors per check in flight (two pipes and a
pidfd): at 20,000 two-second checks about 2,000, and each child spent 2.07
ms of CPU where it spends 1.36 ms when started from here
(docs/benchmarks.md, "Children from a thread with its own descriptor table").

`Spawner` is one thread that unshares its descriptor table
(unshare(CLONE_FILES)) and closes everything in it but stdin, stdout, stderr
and its end of a socket pair, so its table stays a handful long. For each
request it makes the run's pipes in that table, spawns the child there
(survivor.proc.spawn), and hands the daemon's ends of the pipes back through
the socket (SCM_RIGHTS), where they arrive in the process's table,
close-on-exec. The child is the process's child like any other: reaped by
waitpid, watched by a pidfd.

Rules for the thread, because its table is not the process's:

* It never logs and never opens a file: a log handler's descriptor number
  means nothing in its table. Errors go back to the caller as errno values.
* The cyclic collector is off while it works: a finalizer run there (of a
  file object that another thread dropped) would close a number in the
  wrong table, and leak the right one.

Where unshare is refused, or the thread stops answering (it never should),
`spawn` returns None and the caller spawns in its own thread as before.
"""

from __future__ import annotations

import array
import ctypes
import gc
import logging
import os
import queue
import socket
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from survivor.proc.spawn import spawn as posix_spawn

log = logging.getLogger(__name__)

_CLONE_FILES = 0x400  # <linux/sched.h>
_REPLY = struct.Struct("iii")  # request number, pid, errno (0: started)
ANSWER_S = 30.0  # a request not answered in this long: the spawner is given up on. A
# spawn takes a millisecond, but its exec may wait on a slow disk (a plugin on NFS), and
# a check loop that spawns itself waits the same for its vfork child.


@dataclass(frozen=True, slots=True)
class Started:
    """A child started by the spawner, and the caller's ends of its pipes."""

    pid: int
    stdin_fd: int | None
    stdout_fd: int
    stderr_fd: int


@dataclass(frozen=True, slots=True)
class _Request:
    number: int
    path: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    with_stdin: bool


class Spawner:
    """The thread; `spawn` may be called from any thread (one request at a time)."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a fork has no such thread: see `shared`
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ours.settimeout(ANSWER_S)
        self._lock = threading.Lock()
        self._numbers = 0
        self._ready = threading.Event()
        self.working = False
        self.why_not = ""
        self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
        self._thread.start()
        self._ready.wait(ANSWER_S)
        self._theirs.close()  # the thread keeps its own copy, in its own table
        if not self.working:
            self._ours.close()

    def spawn(
        self, path: str, argv: Sequence[str], env: Mapping[str, str], *, with_stdin: bool
    ) -> Started | None:
        """Start `path` as survivor.proc.spawn does, its stdin a pipe or /dev/null and stdout
        and stderr pipes; None when the spawner does not work (spawn in the caller's thread).
        Raises OSError as posix_spawn does (ENOENT, EACCES, ...)."""
        with self._lock:
            if self.working and not self._thread.is_alive():
                self._give_up("its thread is gone")
            if not self.working:
                return None
            self._numbers += 1
            number = self._numbers
            self._requests.put(_Request(number, path, tuple(argv), env, with_stdin))
            try:
                data, ancillary, _flags, _addr = self._ours.recvmsg(
                    _REPLY.size, socket.CMSG_SPACE(3 * 4), socket.MSG_CMSG_CLOEXEC
                )
            except OSError as err:  # TimeoutError too: it no longer answers
                self._give_up(f"no answer: {err}")
                return None
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        answered, pid, errno = _REPLY.unpack(data)
        if answered != number or len(fds) != (3 if with_stdin else 2) * (errno == 0):
            for fd in fds:
                os.close(fd)
            self._give_up(f"answer {answered} to request {number} with {len(fds)} descriptors")
            return None
        if errno != 0:
            raise OSError(errno, os.strerror(errno), path)
        if with_stdin:
            return Started(pid, fds[0], fds[1], fds[2])
        return Started(pid, None, fds[0], fds[1])

    def _give_up(self, why: str) -> None:
        """For good: what is still on its way (a late answer's descriptors) is dropped with
        the socket, and the thread ends at its next request."""
        self.working = False
        self.why_not = why
        self._ours.close()
        self._requests.put(None)
        log.error("spawner: %s; checks are started by the check loops themselves", why)

    # ---------------------------------------------------------------- the thread

    def _serve(self) -> None:
        try:
            # A socket object of this thread's own for the same number, in its own table
            # (the caller closes the other one in the process's table).
            own = socket.socket(fileno=self._own_table())
        except OSError as err:
            self.why_not = f"unshare(CLONE_FILES): {os.strerror(err.errno or 0)}"
            self._ready.set()
            return
        self.working = True
        self._ready.set()
        while True:
            request = self._requests.get()
            if request is None:
                return
            was_collecting = gc.isenabled()
            gc.disable()
            try:
                self._answer(own, request)
            finally:
                if was_collecting:
                    gc.enable()

    def _own_table(self) -> int:
        """Unshare this thread's descriptor table and empty it but 0-2 and our socket end."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_FILES) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        keep = self._theirs.fileno()
        for name in os.listdir("/proc/thread-self/fd"):
            fd = int(name)
            if fd > 2 and fd != keep:
                try:
                    os.close(fd)
                except OSError:
                    pass  # the listing's own descriptor, closed already
        for fd in range(3):  # a daemon started with one closed: a pipe must not take it
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one
        return keep

    def _answer(self, own: socket.socket, request: _Request) -> None:
        made: list[int] = []
        pid, errno, ours = 0, 0, []
        try:
            stdin_r = None
            if request.with_stdin:
                stdin_r, stdin_w = os.pipe()
                made += [stdin_r, stdin_w]
                ours.append(stdin_w)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            made += [out_r, out_w, err_r, err_w]
            ours += [out_r, err_r]
            pid = posix_spawn(
                request.path, request.argv, request.env, stdin=stdin_r, stdout=out_w, stderr=err_w
            )
        except OSError as err:
            errno = err.errno or 5  # EIO when the error has no number
        except BaseException:  # never silent and never here: the caller gives up on us
            errno = 5
        rights = [] if errno else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", ours))]
        try:
            own.sendmsg([_REPLY.pack(request.number, pid, errno)], rights)
        finally:
            for fd in made:
                os.close(fd)


_shared: Spawner | None = None
_shared_lock = threading.Lock()


def shared() -> Spawner:
    """The process's spawner, started on first use (and again in a forked child)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.pid != os.getpid():
            _shared = Spawner()
            if not _shared.working:
                log.info("spawner: not used (%s)", _shared.why_not)
        return _shared
