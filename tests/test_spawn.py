"""survivor.proc.spawn: posix_spawn through ctypes ("libc") and the os.posix_spawn fallback."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from survivor.proc import spawn as spawn_module
from survivor.proc.spawn import spawn


@pytest.fixture(params=["libc", "os"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "os":
        monkeypatch.setattr(spawn_module, "_libc", None)
    elif spawn_module.available() != "libc":
        pytest.skip("this C library has no usable posix_spawn for ctypes")
    yield request.param


def run(argv: list[str], env: dict[str, str] | None = None, stdin: int | None = None) -> str:
    """Spawn `argv`, wait for it, and return what it printed on stdout (stderr must be empty)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = spawn(argv[0], argv, env or {}, stdin=stdin, stdout=out_w, stderr=err_w)
    finally:
        os.close(out_w)
        os.close(err_w)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        printed, complained = out.read(), err.read()
    _, status = os.waitpid(pid, 0)
    assert complained == b""
    assert os.waitstatus_to_exitcode(status) == 0
    return printed.decode()


def test_the_child_gets_exactly_the_environment_given(kind: str) -> None:
    printed = run(["/usr/bin/env"], {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "X": "a b"})
    assert sorted(printed.splitlines()) == ["LANG=C.UTF-8", "PATH=/usr/bin:/bin", "X=a b"]


def test_stdin_is_the_given_pipe_or_dev_null(kind: str) -> None:
    assert run(["/bin/readlink", "/proc/self/fd/0"]) == "/dev/null\n"
    in_r, in_w = os.pipe()
    os.write(in_w, b"hello\n")
    os.close(in_w)
    try:
        assert run(["/bin/cat"], stdin=in_r) == "hello\n"
    finally:
        os.close(in_r)


def test_the_child_leads_a_new_session(kind: str) -> None:
    # /proc/self/stat: "pid (comm) state ppid pgrp session ..."; comm is "cat" here.
    fields = run(["/bin/cat", "/proc/self/stat"]).split()
    pid, pgrp, session = fields[0], fields[4], fields[5]
    assert pgrp == pid and session == pid


def test_no_signal_is_blocked_and_sigpipe_is_not_ignored(kind: str) -> None:
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # as in every Python process
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        status = run(["/bin/cat", "/proc/self/status"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    masks = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Sig"))
    assert int(masks["SigBlk"], 16) == 0
    assert int(masks["SigIgn"], 16) & (1 << (signal.SIGPIPE - 1)) == 0


def test_a_missing_executable_raises_enoent(kind: str) -> None:
    out_r, out_w = os.pipe()
    try:
        with pytest.raises(OSError) as caught:
            spawn(
                "/nonexistent/mod", ["/nonexistent/mod"], {}, stdin=None, stdout=out_w, stderr=out_w
            )
        assert caught.value.errno == errno.ENOENT
    finally:
        os.close(out_r)
        os.close(out_w)


@pytest.mark.parametrize(
    ("path", "argv", "env"),
    [
        ("/bin/echo", ["/bin/echo", "a\0b"], {}),
        ("/bin/echo", ["/bin/echo"], {"X": "a\0b"}),
        ("/bin/echo\0x", ["/bin/echo"], {}),
    ],
)
def test_a_nul_inside_a_string_is_refused_not_cut_short(
    kind: str, path: str, argv: list[str], env: dict[str, str]
) -> None:
    out_r, out_w = os.pipe()
    try:
        with pytest.raises(ValueError, match="null"):
            spawn(path, argv, env, stdin=None, stdout=out_w, stderr=out_w)
    finally:
        os.close(out_r)
        os.close(out_w)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the ctypes path is for glibc")
def test_glibc_gets_the_ctypes_path() -> None:
    assert spawn_module.available() == "libc"


WAIT_FOR_A_CHILD = """
import os, sys, threading, time
from survivor.proc import spawn

fifo, kind = sys.argv[1], sys.argv[2]
if kind == "os":
    spawn._libc = None
os.devnull = fifo  # the child's stdin: its open() blocks, before exec, until a writer comes


def children():
    me = str(os.getpid())
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if f.read().rpartition(")")[2].split()[1] == me:
                    yield int(name)
        except (OSError, IndexError):
            pass


def let_it_start():
    while not list(children()):  # Python: runs only if the spawning thread let go of the GIL
        time.sleep(0.01)
    os.close(os.open(fifo, os.O_WRONLY))


threading.Thread(target=let_it_start, daemon=True).start()
out_r, out_w = os.pipe()
pid = spawn.spawn("/bin/true", ["/bin/true"], {}, stdin=None, stdout=out_w, stderr=out_w)
os.waitpid(pid, 0)
print("spawned")
"""


@pytest.mark.skipif(spawn_module.available() != "libc", reason="needs the ctypes path")
def test_other_threads_run_python_while_the_child_starts(tmp_path: Path) -> None:
    """The point of the module: spawn() does not hold the GIL while the vfork parent sleeps.

    The child's stdin is a FIFO, so its open() blocks before exec and the
    parent stays inside posix_spawn until another thread, in Python, sees
    the child and opens the FIFO's other end. With the GIL held (the "os"
    path) that thread never runs again and the script hangs: the test then
    fails on the timeout.
    """
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = subprocess.Popen(
        [sys.executable, "-c", WAIT_FOR_A_CHILD, str(fifo), "libc"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # on a hang, the child stuck before exec goes too
    )
    try:
        out, err = script.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)
        script.wait()
    assert out == "spawned\n", err
