"""The allocator tuning applies on glibc and yields to the operator's MALLOC_ARENA_MAX."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from tests.integration.daemonproc import REPO

PROBE = "from survivor.daemon.malloc import limit_arenas; print(limit_arenas())"


def probe(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_arenas_are_limited_on_glibc() -> None:
    assert probe({}) == "True"


def test_the_operators_setting_wins() -> None:
    assert probe({"MALLOC_ARENA_MAX": "8"}) == "False"
