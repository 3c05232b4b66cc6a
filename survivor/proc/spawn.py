"""posix_spawn(3) that lets the daemon's other threads run while the child starts.

`os.posix_spawn` holds the GIL for the whole call, and glibc's posix_spawn
is a vfork: the parent sleeps until the child has exec'd. For /bin/true
that is 0.35-0.5 ms of wall time against 0.04 ms of the parent's CPU, and
at a thousand checks a second it was half of the check loop's time, with
every other thread of the daemon locked out (docs/benchmarks.md). The same
libc call made through ctypes releases the GIL, so a second check loop
runs its Python while the first waits for its child.

`spawn` does what runner._spawn asked of `os.posix_spawn`: stdin, stdout
and stderr set up by dup2 (or stdin from /dev/null), a new session, no
signal blocked, and SIGPIPE and SIGXFSZ back to their default action. It
falls back to `os.posix_spawn` where the C library lacks a function or the
glibc session flag (`available()` says which one is in use).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# glibc's <spawn.h> flags; POSIX_SPAWN_SETSID is glibc's own (2.26 and later).
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# Room for glibc's posix_spawn_file_actions_t (80 bytes on x86-64), posix_spawnattr_t
# (336) and sigset_t (128), with a margin for other architectures.
_ACTIONS_SIZE = 512
_ATTR_SIZE = 1024
_SIGSET_SIZE = 256

RESTORED_SIGNALS = tuple(
    sig for sig in (getattr(signal, name, None) for name in ("SIGPIPE", "SIGXFSZ")) if sig
)


class _Libc:
    """The C library's spawn functions, typed for ctypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        vp, ci = ctypes.c_void_p, ctypes.c_int
        self.spawn = _typed(
            libc.posix_spawn,
            [ctypes.POINTER(ci), ctypes.c_char_p, vp, vp, vp, vp],
        )
        self.actions_init = _typed(libc.posix_spawn_file_actions_init, [vp])
        self.actions_destroy = _typed(libc.posix_spawn_file_actions_destroy, [vp])
        self.add_dup2 = _typed(libc.posix_spawn_file_actions_adddup2, [vp, ci, ci])
        self.add_open = _typed(
            libc.posix_spawn_file_actions_addopen, [vp, ci, ctypes.c_char_p, ci, ctypes.c_uint]
        )
        attr_init = _typed(libc.posix_spawnattr_init, [vp])
        set_flags = _typed(libc.posix_spawnattr_setflags, [vp, ctypes.c_short])
        set_sigmask = _typed(libc.posix_spawnattr_setsigmask, [vp, vp])
        set_sigdefault = _typed(libc.posix_spawnattr_setsigdefault, [vp, vp])
        sigemptyset = _typed(libc.sigemptyset, [vp])
        sigaddset = _typed(libc.sigaddset, [vp, ci])
        no_signals = ctypes.create_string_buffer(_SIGSET_SIZE)
        restored = ctypes.create_string_buffer(_SIGSET_SIZE)
        sigemptyset(no_signals)
        sigemptyset(restored)
        for sig in RESTORED_SIGNALS:
            sigaddset(restored, int(sig))
        # The same attributes for every spawn, made once (posix_spawn only reads them, so
        # threads may share them). The session flag is the one glibc may not know: EINVAL.
        self.attr = ctypes.create_string_buffer(_ATTR_SIZE)
        _check(attr_init(self.attr))
        if set_flags(self.attr, _SETSIGDEF | _SETSIGMASK | _SETSID) != 0:
            raise OSError("posix_spawnattr_setflags refuses POSIX_SPAWN_SETSID")
        _check(set_sigmask(self.attr, no_signals))
        _check(set_sigdefault(self.attr, restored))


def _typed(fn: Any, argtypes: list[Any]) -> Any:
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def _load() -> _Libc | None:
    try:
        return _Libc()
    except (OSError, AttributeError):  # no such library or function: os.posix_spawn
        return None


def available() -> str:
    """Which posix_spawn `spawn` calls: "libc" (GIL released) or "os" (GIL held)."""
    return "os" if _libc is None else "libc"


def spawn(
    path: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    stdin: int | None,
    stdout: int,
    stderr: int,
) -> int:
    """Start `path` with `argv` and exactly `env` in a new session; returns its pid.

    `stdin` None means /dev/null. The descriptors are the child's 0, 1 and
    2 (dup2'd, so they need not be inheritable); nothing else is passed on
    but descriptors not marked close-on-exec. Raises OSError as
    `os.posix_spawn` does (ENOENT, EACCES, ENOEXEC, ...).
    """
    if _libc is None:
        return os.posix_spawn(
            path,
            list(argv),
            dict(env),
            file_actions=list(_os_actions(stdin, stdout, stderr)),
            setsid=True,
            setsigmask=(),
            setsigdef=RESTORED_SIGNALS,
        )
    c_path = _c_string(path)
    c_argv = _string_array([_c_string(a) for a in argv])
    c_env = _string_array([_c_string(f"{k}={v}") for k, v in env.items()])
    actions = ctypes.create_string_buffer(_ACTIONS_SIZE)
    _check(_libc.actions_init(actions))
    try:
        if stdin is None:
            _check(_libc.add_open(actions, 0, os.fsencode(os.devnull), os.O_RDONLY, 0))
        else:
            _check(_libc.add_dup2(actions, stdin, 0))
        _check(_libc.add_dup2(actions, stdout, 1))
        _check(_libc.add_dup2(actions, stderr, 2))
        pid = ctypes.c_int(0)
        err = _libc.spawn(ctypes.byref(pid), c_path, actions, _libc.attr, c_argv, c_env)
        if err != 0:
            raise OSError(err, os.strerror(err), path)
        return pid.value
    finally:
        _libc.actions_destroy(actions)


def _os_actions(stdin: int | None, stdout: int, stderr: int) -> Iterable[tuple[Any, ...]]:
    if stdin is None:
        yield (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
    else:
        yield (os.POSIX_SPAWN_DUP2, stdin, 0)
    yield (os.POSIX_SPAWN_DUP2, stdout, 1)
    yield (os.POSIX_SPAWN_DUP2, stderr, 2)


def _c_string(text: str) -> bytes:
    """`text` for C. A NUL inside would cut it short there: refused, as `os.posix_spawn`
    refuses it."""
    data = os.fsencode(text)
    if b"\0" in data:
        raise ValueError("embedded null byte")
    return data


def _string_array(items: list[bytes]) -> Any:
    """A NULL-terminated char *[] (the array keeps the bytes objects alive)."""
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def _check(err: int) -> None:
    if err != 0:
        raise OSError(err, os.strerror(err))


_libc = _load()  # after every function it calls is defined
