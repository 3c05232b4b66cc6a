"""The check workers' gate: work inside, waits for children and fsync outside."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from survivor import fsio
from survivor.fsio import FileWriter
from survivor.gate import Gate
from survivor.model import FsyncPolicy
from survivor.runner import ModuleRunner


def test_released_lets_another_thread_in_and_takes_the_gate_back() -> None:
    gate = Gate()
    inside = threading.Event()
    order: list[str] = []

    def other() -> None:
        inside.wait(10)
        with gate:
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with gate:
        with gate.released():
            inside.set()
            thread.join(10)  # the other thread got the gate while this one waited
        order.append("back")
        assert gate._lock.locked()
    assert order == ["other", "back"]
    assert not gate._lock.locked()


def test_released_outside_the_gate_does_nothing() -> None:
    gate = Gate()
    with gate.released():
        assert not gate._lock.locked()
    with gate:
        pass
    assert not gate._lock.locked()


def test_runner_waits_for_its_child_outside_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    gate = Gate()
    runner = ModuleRunner([], [], waiting=gate.released)
    worker = threading.Thread(target=lambda: _run_gated(gate, runner))
    worker.start()
    deadline = time.monotonic() + 10
    while not runner.running():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.01)
    assert gate._lock.acquire(timeout=10), "the gate stayed held while the child ran"
    try:
        assert runner.running()  # still running: the worker let go only to wait
    finally:
        gate._lock.release()
        runner.kill_all()
        worker.join(10)
    assert not worker.is_alive()


def _run_gated(gate: Gate, runner: ModuleRunner) -> None:
    with gate:
        runner.run(["/bin/sleep", "30"], b"", 30)


def test_inline_fsyncs_happen_outside_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    held_during_fsync: list[bool] = []
    real_fsync = os.fsync

    def watching_fsync(fd: int) -> None:
        held_during_fsync.append(gate._lock.locked())
        real_fsync(fd)

    monkeypatch.setattr(fsio.os, "fsync", watching_fsync)
    writer = FileWriter(FsyncPolicy.ALWAYS, waiting=gate.released)
    with gate:
        writer.replace(tmp_path / "new" / "check.json", b"{}\n")
        writer.append(tmp_path / "new" / "check.jsonl", b"{}\n")
    assert held_during_fsync and not any(held_during_fsync)
