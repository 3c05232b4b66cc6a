"""survivor.daemon.notify: the sd_notify datagrams systemd (and start-stop-daemon) read."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from survivor.daemon import notify

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket the test owns, named by NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_fields_go_out_as_one_datagram(listener: socket.socket) -> None:
    assert notify.sd_notify("READY=1", "STATUS=running generation 1") is True
    assert received(listener) == ["READY=1", "STATUS=running generation 1"]


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"survivor-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.sd_notify("STOPPING=1") is True
        assert received(sock) == ["STOPPING=1"]


@pytest.mark.parametrize("value", [None, "", "vsock:2:1234", "relative/path"])
def test_no_socket_or_unsupported_address_is_a_quiet_no_op(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify.sd_notify("READY=1") is False


def test_a_vanished_socket_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """start-stop-daemon --notify-await removes its socket once READY=1 arrived."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.sd_notify("RELOADING=1") is False
    assert "gone.sock" in caplog.text


def test_reloading_carries_the_monotonic_clock(listener: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notify.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = received(listener)
    assert fields[0] == "RELOADING=1"
    [usec] = [int(f.removeprefix("MONOTONIC_USEC=")) for f in fields[1:]]
    assert before <= usec <= after


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 15.0),  # ping at half the watchdog period
        ("1000000", "self", 0.5),
        ("1000000", "1", None),  # meant for another process (WATCHDOG_PID)
        ("soon", None, None),
        ("", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert notify.watchdog_interval() == expected
