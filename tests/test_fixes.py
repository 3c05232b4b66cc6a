"""Running fixes: real fixture modules, the fix locks, and the fix history."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from survivor.alerts.fixes import (
    NO_FIX_COMMENT,
    FixLocks,
    FixOutcome,
    FixRunner,
    lock_name,
    pid_alive,
)
from survivor.clock import utc_iso
from survivor.config import load_config
from survivor.model.codes import ReturnCode
from survivor.model.config import Config, FsyncPolicy, LockScope
from survivor.model.documents import FixLock
from survivor.proc.modules import runner_for
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from tests.conftest import wait_until
from tests.fakes import FakeClock

CONFIG = """\
instance:
  name: t
  state_dir: state
  history_dir: history
  module_dir: {mod}
hosts:
  web1: {{}}
  web2: {{}}
classes:
  web: {{hosts: [web1, web2], schedule: every-5m}}
schedules:
  every-5m: [{{every: 5m}}]
fixes:
  restart: {{module: ok, timeout: 10s}}
  broken: {{module: fails}}
  missing: {{module: no-such-fix}}
  grumbles: {{module: grumbles}}
  gate: {{module: gate, args: {{dir: "{gate}"}}, timeout: 10s}}
  gate-host: {{module: gate, args: {{dir: "{gate}"}}, lock: host, timeout: 10s}}
  slow: {{module: gate, args: {{dir: "{gate}"}}, timeout: 1s}}
checks:
  http: {{module: ok, hosts: [web1, web2], fix: restart}}
  smtp: {{module: ok, hosts: [web1], fix: broken}}
  imap: {{module: ok, hosts: [web1], fix: missing}}
  pop3: {{module: ok, hosts: [web1], fix: grumbles}}
  ping: {{module: ok, hosts: [web1, web2]}}
  gated: {{module: ok, hosts: [web1, web2], fix: gate}}
  svc-a: {{module: ok, hosts: [web1, web2], fix: gate-host}}
  svc-b: {{module: ok, hosts: [web1, web2], fix: gate-host}}
  hangs: {{module: ok, hosts: [web1], fix: slow}}
"""


class Tree:
    def __init__(self, tmp_path: Path, scratch: Path) -> None:
        self.gate = tmp_path / "gate"
        self.gate.mkdir()
        path = tmp_path / "survivor.yaml"
        path.write_text(CONFIG.format(mod=scratch / "mod", gate=self.gate))
        self.config: Config = load_config(path)
        self.clock = FakeClock()
        self.history = HistoryStore(tmp_path / "history", FileWriter(FsyncPolicy.NEVER))

    def store(self) -> StateStore:
        return StateStore(self.config.instance.state_dir, FileWriter(FsyncPolicy.NEVER))

    def fixer(self, state: StateStore | None = None, locks: FixLocks | None = None) -> FixRunner:
        state = state or self.store()
        return FixRunner(runner_for(self.config), state, self.history, self.clock, locks=locks)

    def runs(self) -> int:
        path = self.gate / "runs"
        return len(path.read_text().split()) if path.exists() else 0

    def release(self) -> None:
        (self.gate / "release").touch()

    def fix_history(self, host: str, check: str) -> list[dict[str, object]]:
        return list(self.history.read(host, check, "fix"))

    def lockfile(self, name: str) -> Path:
        return self.config.instance.state_dir / "fixlocks" / f"{name}.json"

    def plant_lock(self, name: str, *, pid: int, expires_in: float, by: str = "mallory") -> None:
        now = self.clock.now()
        lock = FixLock(
            name=name,
            token="theirs",
            pid=pid,
            by=by,
            fix="gate",
            at=now - timedelta(seconds=5),
            expires=now + timedelta(seconds=expires_in),
        )
        path = self.lockfile(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(lock.to_dict()))


@pytest.fixture
def tree(tmp_path: Path, scratch: Path) -> Tree:
    return Tree(tmp_path, scratch)


def test_a_successful_fix_is_recorded_and_its_lock_released(tree: Tree) -> None:
    outcome = tree.fixer().run(tree.config, "http", "web1", initiated_by="alice")
    assert (outcome.rc, outcome.code, outcome.comment) == (0, "OK", "fixed web1")
    assert outcome.ok and not outcome.locked_out
    assert outcome.started == tree.clock.now()
    [record] = tree.fix_history("web1", "http")
    assert record["t"] == utc_iso(tree.clock.now())
    assert {k: record[k] for k in ("rc", "code", "comment", "fix", "by")} == {
        "rc": 0,
        "code": "OK",
        "comment": "fixed web1",
        "fix": "restart",
        "by": "alice",
    }
    assert isinstance(record["duration_ms"], int)
    assert not tree.lockfile("http@web1").exists()


def test_a_failing_fix_reports_its_code_and_comment(tree: Tree) -> None:
    outcome = tree.fixer().run(tree.config, "smtp", "web1", initiated_by="survivor")
    assert (outcome.code, outcome.comment) == ("PROBLEM", "service would not start")
    assert not outcome.ok
    assert tree.fix_history("web1", "smtp")[0]["code"] == "PROBLEM"


def test_a_fix_without_a_result_shows_its_exit_status_and_stderr(tree: Tree, scratch: Path) -> None:
    module = scratch / "mod" / "fix" / "grumbles"
    module.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    module.chmod(0o755)
    outcome = tree.fixer().run(tree.config, "pop3", "web1", initiated_by="alice")
    expected = (
        'no result from fix module (it exited with status 1); stderr: "sudo: a password is'
        ' required"'
    )
    assert (outcome.code, outcome.comment) == ("MISCONFIG", expected)
    assert tree.fix_history("web1", "pop3")[0]["comment"] == expected


def test_no_fix_defined_runs_nothing_and_records_nothing(tree: Tree) -> None:
    outcome = tree.fixer().run(tree.config, "ping", "web1", initiated_by="alice")
    assert (outcome.rc, outcome.comment) == (ReturnCode.MISCONFIG, NO_FIX_COMMENT)
    assert tree.fix_history("web1", "ping") == []
    assert not (tree.config.instance.state_dir / "fixlocks").exists()


def test_a_missing_fix_module_is_misconfig_with_the_reason(tree: Tree) -> None:
    outcome = tree.fixer().run(tree.config, "imap", "web1", initiated_by="alice")
    assert outcome.code == "MISCONFIG"
    assert "no-such-fix" in outcome.comment and "not found" in outcome.comment
    assert tree.fix_history("web1", "imap")[0]["code"] == "MISCONFIG"
    assert not tree.lockfile("imap@web1").exists()


def test_a_fix_that_outlives_its_timeout_is_timedout_and_unlocks(tree: Tree) -> None:
    outcome = tree.fixer().run(tree.config, "hangs", "web1", initiated_by="alice")
    assert outcome.code == "TIMEDOUT"
    assert "1 s timeout" in outcome.comment
    assert not tree.lockfile("hangs@web1").exists()


def test_lock_names_follow_the_scope() -> None:
    assert lock_name(LockScope.CHECK_AT_HOST, "http", "web1") == "http@web1"
    assert lock_name(LockScope.HOST, "http", "web1") == "_@web1"
    assert lock_name(LockScope.CHECK, "http", "web1") == "http@_"


def test_a_held_lock_locks_the_fix_out_without_running_it(tree: Tree) -> None:
    tree.plant_lock("gated@web1", pid=os.getpid(), expires_in=60)
    outcome = tree.fixer().run(tree.config, "gated", "web1", initiated_by="alice")
    assert outcome.locked_out and not outcome.ok
    assert outcome.code == "NOTYET"
    assert outcome.comment.startswith("fix lock held by mallory")
    assert tree.runs() == 0
    assert tree.lockfile("gated@web1").exists()  # still theirs
    [record] = tree.fix_history("web1", "gated")
    assert record["locked_out"] is True and record["by"] == "alice"


def test_an_expired_lock_is_taken_over(tree: Tree) -> None:
    tree.plant_lock("http@web1", pid=os.getpid(), expires_in=-1)
    outcome = tree.fixer().run(tree.config, "http", "web1", initiated_by="alice")
    assert outcome.ok
    assert not tree.lockfile("http@web1").exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tree: Tree) -> None:
    tree.plant_lock("http@web1", pid=424242, expires_in=60)
    locks = FixLocks(tree.store(), alive=lambda pid: pid != 424242)
    outcome = tree.fixer(locks=locks).run(tree.config, "http", "web1", initiated_by="alice")
    assert outcome.ok


def test_an_unreadable_lock_file_is_taken_over(tree: Tree) -> None:
    path = tree.lockfile("http@web1")
    path.parent.mkdir(parents=True)
    path.write_text("{torn")
    assert tree.fixer().run(tree.config, "http", "web1", initiated_by="alice").ok


def test_release_leaves_a_lock_that_was_taken_over(tree: Tree) -> None:
    locks = FixLocks(tree.store())
    now = tree.clock.now()
    mine = locks.acquire("http@web1", fix="restart", by="alice", now=now, expire=1)
    later = now + timedelta(seconds=2)
    theirs = locks.acquire("http@web1", fix="restart", by="bob", now=later, expire=60)
    locks.release(mine)
    current = locks.read("http@web1")
    assert current is not None and current.token == theirs.token
    locks.release(theirs)
    assert locks.read("http@web1") is None


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)


def _in_thread(tree: Tree, check: str, host: str, results: list[FixOutcome]) -> threading.Thread:
    runner = tree.fixer()  # its own StateStore and EntityLocks: only the flock excludes

    def go() -> None:
        results.append(runner.run(tree.config, check, host, initiated_by="t"))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_a_running_fix_holds_its_lock_until_it_ends(tree: Tree) -> None:
    first: list[FixOutcome] = []
    thread = _in_thread(tree, "gated", "web1", first)
    wait_until(lambda: tree.runs() == 1, what="the gate fix to start")
    second = tree.fixer().run(tree.config, "gated", "web1", initiated_by="bob")
    assert second.locked_out
    other_host = tree.fixer()
    tree.release()
    assert other_host.run(tree.config, "gated", "web2", initiated_by="bob").ok
    thread.join(10)
    assert [o.ok for o in first] == [True]
    assert not tree.lockfile("gated@web1").exists()


def test_host_scope_excludes_other_checks_on_the_host_only(tree: Tree) -> None:
    first: list[FixOutcome] = []
    thread = _in_thread(tree, "svc-a", "web1", first)
    wait_until(lambda: tree.runs() == 1, what="the gate fix to start")
    assert tree.lockfile("_@web1").exists()
    blocked = tree.fixer().run(tree.config, "svc-b", "web1", initiated_by="bob")
    assert blocked.locked_out and "since" in blocked.comment
    elsewhere: list[FixOutcome] = []
    other = _in_thread(tree, "svc-b", "web2", elsewhere)
    wait_until(lambda: tree.runs() == 2, what="the fix on the other host to start")
    tree.release()
    thread.join(10)
    other.join(10)
    assert [o.ok for o in first + elsewhere] == [True, True]


def test_two_racing_fixes_run_exactly_once(tree: Tree) -> None:
    results: list[FixOutcome] = []
    threads = [_in_thread(tree, "gated", "web1", results) for _ in range(2)]
    # The loser is locked out at once; the winner waits at the gate until released.
    wait_until(lambda: len(results) == 1, what="one fix to be locked out")
    assert results[0].locked_out
    wait_until(lambda: tree.runs() == 1, what="the winner to start")
    tree.release()
    for t in threads:
        t.join(10)
    assert sorted(o.locked_out for o in results) == [False, True]
    assert tree.runs() == 1
