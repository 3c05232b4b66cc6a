"""`reschedule` on a real daemon running on the wall clock: the check runs at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from survivor.clock import floor_minute
from survivor.model.documents import CheckState
from tests.conftest import wait_until
from tests.integration.daemonproc import DaemonProcess, history_lines, read_json
from tests.integration.faultkit import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CONFIG = """\
instance:
  name: test
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  fsync: batch
  log: {target: stderr, level: debug}
hosts:
  web1: {address: 127.0.0.1}
classes:
  web: {hosts: [web1], schedule: hourly}
schedules:
  hourly: [{every: 1h}]
checks:
  alive: {module: ok, hosts: [web1], schedule: hourly}
"""


@pytest.fixture
def daemon(scratch: Path) -> Iterator[DaemonProcess]:
    (scratch / "etc" / "survivor.yaml").write_text(CONFIG)
    d = DaemonProcess(scratch / "etc" / "survivor.yaml", scratch, speed=1.0)
    yield d
    d.kill()


def test_reschedule_runs_the_check_at_once_and_keeps_its_cadence(
    scratch: Path, daemon: DaemonProcess
) -> None:
    # An hourly check that ran this minute: nothing is due for an hour.
    now = datetime.now(UTC)
    last = CheckState(
        rc=0, since=now, consecutive=1, last_start=now, last_planned=floor_minute(now)
    )
    pair_state = scratch / "state" / "host" / "web1" / "alive"
    pair_state.mkdir(parents=True)
    (pair_state / "check.json").write_text(json.dumps(last.to_dict()))
    daemon.start().wait_ready()

    asked = time.time()
    done = cli(scratch, "reschedule", "web1/alive", "-m", "see it now")
    assert done.returncode == 0, done.stderr
    # Within 2 s on a quiet machine; 15 s leaves room for a loaded one. Before the fix the
    # run waited for the pair's slot in the next minute: 30 s or more.
    wait_until(lambda: history_lines(scratch / "history" / "host" / "web1" / "alive"), 15, "run")
    record = history_lines(scratch / "history" / "host" / "web1" / "alive")[0]
    assert record["code"] == "OK"
    assert datetime.fromisoformat(str(record["t"])).timestamp() >= asked - 1
    state = read_json(pair_state / "check.json")
    assert state is not None
    assert state["consecutive"] == 2 and not state["reschedule"]
    # The extra run leaves the schedule alone: the next regular run is an hour after the last.
    assert state["last_planned"] == last.to_dict()["last_planned"]
    assert "rescheduled by" in daemon.log() and "runs now" in daemon.log()
