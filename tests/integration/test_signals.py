"""The real daemon and the signals logrotate and stray tools send (USR1, USR2, ALRM), and TERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.daemonproc import DaemonProcess
from tests.integration.test_daemon import BASE, count_results

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHECKS = "  alive: {module: ok, hosts: [web1, web2]}\n"


def write_config(tree: Path) -> Path:
    text = BASE.format(checks=CHECKS).replace(
        "  log: {target: stderr, level: debug}\n",
        "  log: {target: ../log/survivor.log, level: info}\n"
        "  prometheus_textfile: ../metrics/survivor.prom\n",
    )
    assert "survivor.log" in text
    path = tree / "etc" / "survivor.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def daemon(scratch: Path) -> Iterator[DaemonProcess]:
    d = DaemonProcess(write_config(scratch), scratch)
    yield d
    d.kill()


def text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_usr1_reopens_the_logs_and_stray_signals_are_logged_not_fatal(
    scratch: Path, daemon: DaemonProcess
) -> None:
    log, results = scratch / "log" / "survivor.log", scratch / "results.jsonl"
    daemon.start().wait_ready()
    wait_until(lambda: count_results(scratch, "web1", "alive", 1), 20, "a first result")
    wait_until(lambda: results.exists(), 10, "results_log")
    log.rename(log.with_name("survivor.log.1"))  # logrotate's create mode
    results.rename(scratch / "results.jsonl.1")

    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1: reopened" in text(log), 10, "the reopen line in a new log")
    assert str(log) in text(log) and str(results) in text(log)
    wait_until(lambda: results.exists(), 10, "a new results_log after SIGUSR1")

    for sig in (signal.SIGUSR2, signal.SIGALRM):
        daemon.signal(sig)
        wait_until(lambda s=sig: f"signal {s.name}: ignored" in text(log), 10, f"{sig.name} line")
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
    count = len(text(results).splitlines())
    wait_until(lambda: len(text(results).splitlines()) > count, 20, "checks still running")

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert not (scratch / "state" / "survivor.pid").exists()


def test_the_textfile_says_down_after_sigterm(scratch: Path, daemon: DaemonProcess) -> None:
    prom = scratch / "metrics" / "survivor.prom"
    daemon.start().wait_ready()
    wait_until(lambda: up(prom) == ["1"], 20, "the textfile saying up")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert up(prom) == ["0"]


def up(prom: Path) -> list[str]:
    lines = text(prom).splitlines()
    return [line.split()[1] for line in lines if line.startswith("survivor_daemon_up ")]
