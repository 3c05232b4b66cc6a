"""bench/fs_floor.py writes what DESIGN §5 writes per result and reports a rate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_fs_floor_writes_a_state_file_and_history_lines_per_pair(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fs_floor.py"), str(tmp_path), "20"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert re.fullmatch(
        r"60 results: \d+ µs wall, \d+ µs CPU per result; \d+ results/s on one core\n", out
    )
    pair = tmp_path / "state" / "host" / "h000001" / "s009"
    assert json.loads((pair / "check.json").read_bytes())["version"] == 1
    assert not list(pair.glob(".*.tmp"))  # every temp file was renamed into place
    history = tmp_path / "history" / "host" / "h000001" / "s009" / "check.jsonl"
    assert len(history.read_bytes().splitlines()) == 4  # the first write and three rounds
