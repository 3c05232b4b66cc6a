"""A worker runs a request with the scheduler's own code (checks.execute.CheckRunner)."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from survivor.model.config import Host
from survivor.proc.runner import ModuleRunner
from survivor.protocol.remote import WorkRequest
from survivor.remote.worker import run_request
from tests.conftest import FIXTURES

WEB1 = Host("web1", "192.0.2.10")


@pytest.fixture
def runner(tmp_path: Path) -> ModuleRunner:
    check = tmp_path / "mod" / "check"
    check.mkdir(parents=True)
    for name in ("dies-by-signal", "ok"):
        shutil.copy2(FIXTURES / "mod" / "check" / name, check / name)
    (check / "says-why-on-stderr").write_text("#!/bin/sh\necho 'cannot reach it' >&2\nexit 2\n")
    (check / "says-why-on-stderr").chmod(0o755)
    return ModuleRunner([tmp_path / "mod"], [], kill_grace=0.2)


def request(**kw: object) -> WorkRequest:
    return WorkRequest(
        work_id="w", check="c", hosts=(WEB1,), timeout=5, fingerprint="f",
        deadline=datetime(2099, 1, 1, tzinfo=UTC), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_module_killed_by_a_signal_says_so(runner: ModuleRunner) -> None:
    [result], path = run_request(runner, request(module="dies-by-signal"), 65536)
    assert result.code == "MISCONFIG"
    assert result.comment == "no result from module (module killed by SIGSEGV)"
    assert path is not None and path.name == "dies-by-signal"


def test_a_silent_plugin_gets_its_stderr_as_the_comment(runner: ModuleRunner) -> None:
    [result], _ = run_request(runner, request(plugin="says-why-on-stderr"), 65536)
    assert (result.code, result.comment) == ("PROBLEM", "cannot reach it")


def test_a_module_missing_on_the_worker_is_misconfig_and_nothing_is_hashed(
    runner: ModuleRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [result], path = run_request(runner, request(module="absent"), 65536)
    assert result.code == "MISCONFIG" and "absent" in result.comment and path is None
