"""Issue 23, item 1: the wall clock stepped back and forward under a running daemon.

The daemon runs on the real clock (not the 60x test clock, which is derived from the
monotonic one) under libfaketime, whose offset is read from a file at every clock
call: writing the file steps the daemon's wall clock while its monotonic clock goes
on (FAKETIME_DONT_FAKE_MONOTONIC). A minute is a real minute here, so the test waits
for each pair to run once after each step: about a minute each.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.daemonproc import DaemonProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
HOSTS = [f"h{n:02d}" for n in range(20)]
TICK_S = 60.0  # the scheduler's tick: no step may stall a check for longer
SLACK_S = 20.0  # start-up of the runs, a loaded machine

CONFIG = """\
instance:
  name: clock
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  check_workers: 4
  default_timeout: 5s
  fsync: never
  timezone: UTC
  log: {{target: stderr, level: info}}
  results_log: ../results.jsonl
hosts:
{hosts}
classes:
  farm: {{hosts: [{names}], schedule: every-minute}}
schedules:
  every-minute: [{{every: 1m}}]
checks:
  alive: {{plugin: plugin-dummy, argv: ["0", "up"], hosts: [{names}]}}
"""


def results(tree: Path) -> list[dict[str, Any]]:
    try:
        raw = (tree / "results.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in raw.split(b"\n") if line.strip()]


def events(tree: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for f in sorted((tree / "history" / "daemon").glob("events-*.jsonl")):
        for line in f.read_text().splitlines():
            doc = json.loads(line)
            if doc["event"] == name:
                found.append(doc)
    return found


def wait_for_every_pair(d: DaemonProcess, tree: Path, seen: int, when: str) -> None:
    """Every pair records a result (after the first `seen` ones) within about a tick."""
    try:
        wait_until(
            lambda: {r["host"] for r in results(tree)[seen:]} == set(HOSTS),
            TICK_S + SLACK_S,
            f"every pair to run again {when}",
        )
    except AssertionError as err:
        ran = {r["host"] for r in results(tree)[seen:]}
        raise AssertionError(f"{err}; these did: {sorted(ran)}; log:\n{d.log()}") from None


@pytest.mark.skipif(
    not FAKETIME_LIB.exists(), reason=f"libfaketime is not installed ({FAKETIME_LIB})"
)
def test_a_wall_clock_step_back_or_forward_stalls_no_check_for_longer_than_a_tick(
    scratch: Path,
) -> None:
    hosts = "".join(f"  {h}: {{address: 127.0.0.1}}\n" for h in HOSTS)
    config = scratch / "etc" / "survivor.yaml"
    config.write_text(CONFIG.format(hosts=hosts, names=", ".join(HOSTS)))
    stamp = scratch / "faketime"
    # Start a second into a minute, so the first tick has the whole minute ahead of it.
    offset = math.ceil(TICK_S - time.time() % TICK_S) + 1
    stamp.write_text(f"{offset:+d}\n")
    d = DaemonProcess(
        config,
        scratch,
        extra_env={
            "SURVIVOR_TEST_CLOCK_SPEED": "",  # the real clock, which libfaketime steps
            "LD_PRELOAD": str(FAKETIME_LIB),
            "FAKETIME_TIMESTAMP_FILE": str(stamp),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
    )
    try:
        d.start().wait_ready()
        wait_until(lambda: len(results(scratch)) >= 3, 30, "the first results")

        # Back 5 minutes, early in a minute: most pairs are still queued for their slot.
        seen = len(results(scratch))
        offset -= 300
        stamp.write_text(f"{offset:+d}\n")
        wait_for_every_pair(d, scratch, seen, "after the step back")

        # Forward 2 hours: each pair runs once at its slot, no burst of stale runs.
        seen = len(results(scratch))
        offset += 7200
        stamp.write_text(f"{offset:+d}\n")
        wait_for_every_pair(d, scratch, seen, "after the step forward")
        after = results(scratch)[seen:]
        late = [r for r in after if r["start"] - r["planned"] > SLACK_S]
        assert late == [], f"runs started long after their planned time (a burst): {late[:3]}"
        minutes = [(r["host"], r["planned"] // 60) for r in after]
        assert len(minutes) == len(set(minutes)), "a pair ran twice for one planned minute"

        jumps = events(scratch, "clock-jump")
        assert [round(e["seconds"] / 60) for e in jumps] == [-5, 120], jumps
        log = d.log()
        assert "clock: the wall clock was stepped back 300 s" in log, log
        assert "clock: the wall clock was stepped forward 7200 s" in log, log
        d.signal(signal.SIGTERM)
        assert d.wait_exit(30) == 0
    finally:
        d.kill()
