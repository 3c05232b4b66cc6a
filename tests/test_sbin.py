"""sbin/ss and sbin/sc: Survivor's names, and Survivor's `ss -c FILE`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture
def echo_survivor(tmp_path: Path) -> dict[str, str]:
    """A `survivor` on PATH that prints its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "survivor"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-c", "/etc/x.yaml", "--daemon"], ["--config", "/etc/x.yaml", "run", "--daemon"]),
        (["--grace", "3", "--config=/e/y.yaml"], ["--config", "/e/y.yaml", "run", "--grace", "3"]),
        (["--daemon"], ["run", "--daemon"]),
    ],
)
def test_ss_takes_survivors_config_option(
    echo_survivor: dict[str, str], args: list[str], expected: list[str]
) -> None:
    out = subprocess.run(
        ["sh", str(REPO / "sbin" / "ss"), *args], env=echo_survivor, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.splitlines() == expected
