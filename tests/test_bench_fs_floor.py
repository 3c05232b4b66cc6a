"""bench/fs_floor.py writes what DESIGN §5 writes per result and reports a rate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("writers", [1, 2])
def test_fs_floor_writes_a_state_file_and_history_lines_per_pair(
    tmp_path: Path, writers: int
) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fs_floor.py"), str(tmp_path), "20", str(writers)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert re.fullmatch(
        rf"60 results by {writers} writer\(s\): \d+ µs CPU per result in the writers;"
        r" \d+ results/s; machine \d+ % busy \(all \d+ cores\)\n",
        out,
    )
    for n in range(20):  # every pair, whichever writer had it
        pair = f"h{n // 10:06d}/s{n % 10:03d}"
        state = tmp_path / "state" / "host" / pair
        assert json.loads((state / "check.json").read_bytes())["version"] == 1
        assert not list(state.glob(".*.tmp"))  # every temp file was renamed into place
        history = tmp_path / "history" / "host" / pair / "check.jsonl"
        assert len(history.read_bytes().splitlines()) == 4  # the first write and three rounds
