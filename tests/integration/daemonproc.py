"""A real survivor daemon process for integration tests, driven by signals and files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Every daemon started and not yet killed: tests/conftest.py kills what a test left
# running (a failed assertion before its `finally`, a forgotten kill), so no daemon
# outlives its test and eats the machine of the tests after it.
_LIVE: set[DaemonProcess] = set()


def kill_leftovers() -> list[int]:
    """SIGKILL the process group of every daemon still running; returns their pids."""
    killed = []
    for d in list(_LIVE):
        if d.proc is not None and d.proc.poll() is None:
            killed.append(d.proc.pid)
        d.kill()
    return killed


class DaemonProcess:
    """`survivor run` in its own session, with a test-owned NOTIFY_SOCKET.

    The clock runs 60x faster (SURVIVOR_TEST_CLOCK_SPEED), so a scheduling
    minute passes every real second; the origin is fixed per test so that a
    restarted daemon continues the same timeline.
    """

    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        speed: float = 60.0,
        origin: float | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.speed = speed
        self.origin = origin if origin is not None else time.time()
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock_path = workdir / f"notify-{os.getpid()}-{id(self)}.sock"
        self.sock: socket.socket | None = None
        self.log_path = workdir / "daemon.log"
        self.messages: list[str] = []

    def start(self, *args: str) -> DaemonProcess:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            self.sock_path.unlink()
        self.sock.bind(str(self.sock_path))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "NOTIFY_SOCKET": str(self.sock_path),
            "SURVIVOR_TEST_CLOCK_SPEED": str(self.speed),
            "SURVIVOR_TEST_CLOCK_ORIGIN": str(self.origin),
            "LANG": "C.UTF-8",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "survivor", "--config", str(self.config), "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            cwd=self.workdir,
        )
        _LIVE.add(self)
        log.close()
        return self

    def notifications(self, timeout: float) -> list[str]:
        """Messages received from the daemon within `timeout` seconds (at least one wait)."""
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except TimeoutError:
            return []
        fields = data.split("\n")
        self.messages.extend(fields)
        return fields

    def wait_for_notify(self, field: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited {self.proc.returncode} before {field}:\n" + self.log()
                )
            if field in self.notifications(0.2):
                return
        raise AssertionError(f"no {field} within {timeout}s:\n{self.log()}")

    def wait_ready(self, timeout: float = 20.0) -> DaemonProcess:
        self.wait_for_notify("READY=1", timeout)
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (the daemon and any module it runs)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        _LIVE.discard(self)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def history_lines(path: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for f in sorted(path.glob("check-*.jsonl")):
        for raw in f.read_bytes().split(b"\n"):
            if raw:
                lines.append(json.loads(raw))
    return lines
