"""`survivor status --watch` as a real process: redraws, fits a terminal, ends cleanly on Ctrl-C."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.cli.conftest import ENTRY
from tests.conftest import REPO
from tests.viewstate import Tree

pytestmark = pytest.mark.timeout(30)
CLEAR = b"\x1b[H\x1b[2J"
HEADER = b"survivor viewtest:"


def spawn(tree: Tree, stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "--config",
            str(tree.config),
            "status",
            "--watch",
            "--interval",
            "0.2",
        ],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def read_until(fd: int, want: bytes, count: int, timeout: float = 15.0) -> bytes:
    """Read `fd` until `want` has appeared `count` times (or fail at the deadline)."""
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(want) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"saw {data.count(want)} of {count} {want!r} in {data[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty reports EIO once the child has closed it
                chunk = b""
            if not chunk:
                raise AssertionError(f"output ended early: {data[-500:]!r}")
            data += chunk
    return data


def interrupt(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    code = proc.wait(10)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert code == 0, f"exit {code}; stderr: {err[-2000:]!r}"  # CI saw exit 1 once
    assert "Traceback" not in err and "Aborted" not in err, err
    return err


def test_plain_repeated_output_when_not_a_tty(tree: Tree) -> None:
    proc = spawn(tree, subprocess.PIPE)
    try:
        assert proc.stdout is not None
        data = read_until(proc.stdout.fileno(), HEADER, 3)
        assert CLEAR not in data
        first = data.split(HEADER)[1]
        assert b"web1  http  PROBLEM" in first and b"daemon: NOT RUNNING" in first
        assert first.index(b"PROBLEM") < first.index(b"  OK  ")
        interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tty_clears_and_fits_the_terminal(tree: Tree) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 9, 70, 0, 0))
    proc = spawn(tree, slave)
    os.close(slave)
    try:
        data = read_until(master, CLEAR, 3)
        frame = data.split(CLEAR)[1]
        lines = frame.decode().replace("\r", "").splitlines()
        assert 1 < len(lines) <= 9
        assert all(len(line) <= 70 for line in lines), lines
        assert lines[0].startswith("survivor viewtest:")
        assert any("more (a taller terminal shows them)" in line for line in lines)
        interrupt(proc)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_state_changes_show_up_in_the_next_frame(tree: Tree) -> None:
    proc = spawn(tree, subprocess.PIPE)
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        read_until(fd, HEADER, 1)
        check = tree.state / "host" / "web1" / "http" / "check.json"
        doc = json.loads(check.read_bytes())
        doc.update(rc=5, code="TIMEDOUT")
        tree.store.writer.replace(check, json.dumps(doc).encode())
        data = read_until(fd, b"TIMEDOUT", 1)
        assert b"web1  http  TIMEDOUT" in data
        interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
