"""The pidfile locks the state directory and the history directory (issue 23, items 6, 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from survivor.store.pidfile import PidFile
from tests.integration.daemonproc import REPO


def test_history_dir_may_be_state_dir_itself(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "survivor.pid", also=(tmp_path,))
    pidfile.acquire()
    try:
        pidfile.write_pid()
        assert pidfile.path.read_text() == f"{os.getpid()}\n"
    finally:
        pidfile.release()
    assert not pidfile.path.exists()


def test_a_second_instance_on_the_same_history_dir_is_told_who_has_it(tmp_path: Path) -> None:
    history = tmp_path / "history"
    first = PidFile(tmp_path / "a" / "survivor.pid", also=(history,))
    first.acquire()
    try:
        first.write_pid()
        assert (history / "survivor.pid").read_text() == f"{os.getpid()}\n{tmp_path / 'a'}\n"
        probe = (
            "import sys; from pathlib import Path\n"
            "from survivor.store.pidfile import PidFile, AlreadyRunningError\n"
            "p = PidFile(Path(sys.argv[1]), also=(Path(sys.argv[2]),))\n"
            "try:\n p.acquire()\nexcept AlreadyRunningError as e:\n print(e); sys.exit(1)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path / "b" / "survivor.pid"), str(history)],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO)},
            timeout=30,
        )
        assert done.returncode == 1, done.stderr
        assert f"pid {os.getpid()}, state_dir {tmp_path / 'a'}" in done.stdout
        assert "history directory" in done.stdout
    finally:
        first.release()
    assert not (history / "survivor.pid").exists()
