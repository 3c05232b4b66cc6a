"""PlacedRunner compares a worker's module hash with ours: once per COMPARE_S, not per result."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from survivor.checks.placed import COMPARE_S, PlacedRunner
from survivor.model.config import CheckKind
from tests.fakes import FakeClock


class Notes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def note_module(self, worker: str, module: str, theirs: str, ours: str) -> None:
        self.calls.append(("differs", worker, module, theirs))

    def module_matches(self, worker: str, module: str) -> None:
        self.calls.append(("matches", worker, module))


def placed(tmp_path: Path) -> tuple[PlacedRunner, Notes, FakeClock, Path]:
    module = tmp_path / "disk"
    module.write_text("#!/bin/sh\necho ok\n")
    runner: Any = SimpleNamespace(runner=SimpleNamespace(resolve=lambda kind, name: module))
    notes, clock = Notes(), FakeClock()
    dispatcher: Any = notes
    return PlacedRunner(dispatcher, runner, clock, lambda *_: ""), notes, clock, module


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CHECK: Any = SimpleNamespace(kind=CheckKind.MODULE, module="disk", plugin=None)


def test_a_worker_s_module_is_compared_once_per_interval_and_a_new_hash_at_once(
    tmp_path: Path,
) -> None:
    runner, notes, _clock, module = placed(tmp_path)
    ours = sha(module)
    for _ in range(100):  # a result a second from one worker: one comparison
        runner._compare_module(CHECK, "w1", ours)
    assert notes.calls == [("matches", "w1", "disk")]
    runner._compare_module(CHECK, "w1", "f" * 64)  # the worker's module changed: at once
    runner._compare_module(CHECK, "w2", ours)  # another worker: its own
    assert notes.calls[1:] == [("differs", "w1", "disk", "f" * 64), ("matches", "w2", "disk")]


def test_a_change_of_the_scheduler_s_module_is_noticed_within_the_interval(
    tmp_path: Path,
) -> None:
    runner, notes, clock, module = placed(tmp_path)
    theirs = sha(module)
    runner._compare_module(CHECK, "w1", theirs)
    module.write_text("#!/bin/sh\necho changed here\n")
    runner._compare_module(CHECK, "w1", theirs)
    assert notes.calls == [("matches", "w1", "disk")]  # not yet: compared a moment ago
    clock.advance(COMPARE_S)
    runner._compare_module(CHECK, "w1", theirs)
    assert notes.calls[-1] == ("differs", "w1", "disk", theirs)
