"""Shared fixtures: a scratch survivor tree (config, modules, state, history)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=150)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def load_bench_script(name: str) -> ModuleType:
    """Import bench/NAME.py, which is a script and not part of a package."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_until(
    cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> object:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A tree with mod/ (the shipped modules plus the test fixtures), etc/, state/, history/."""
    root = tmp_path / "tree"
    mod = root / "mod"
    for kind in ("check", "fix", "format", "transmit"):
        (mod / kind).mkdir(parents=True)
        for source in (REPO / "mod" / kind, FIXTURES / "mod" / kind):
            if source.is_dir():
                for f in source.iterdir():
                    if f.is_file() and not f.name.startswith("."):
                        shutil.copy2(f, mod / kind / f.name)
    (root / "etc").mkdir()
    return root


@pytest.fixture
def example_tree(tmp_path: Path) -> Path:
    """A scratch copy of state-example/ (etc/, state/, history/) that a test may change."""
    root = tmp_path / "example"
    shutil.copytree(REPO / "state-example", root)
    return root


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    """Kill any daemon a test started and left running (tests/integration/daemonproc.py),
    so that a failed test cannot leave one eating the machine for the rest of the run."""
    yield
    daemonproc = sys.modules.get("tests.integration.daemonproc")
    if daemonproc is not None:
        daemonproc.kill_leftovers()
