"""Capacity for network-speed checks (issue 20): the default config runs every due check.

300 one-minute checks that each take 20 s keep about 100 in flight. The
test runs them on the daemon's test clock at 10x (SURVIVOR_TEST_CLOCK_SPEED),
so a scheduling minute lasts 6 real seconds; the clock does not speed up
children, so each check sleeps 2 real seconds instead: the same third of a
minute. What the daemon has to sustain is the same as at 1x: 300 starts per
minute spread over it, each run a third of a minute long, so about 100 runs in
flight at any moment; only the wall-clock length of everything is divided by
ten. Under the old default of 15 slots the checks fell minutes behind.

A check that hangs sits beside them (killed at its 3-s timeout every minute):
it costs its own run and nothing else, every other pair keeps its minute.
"""

from __future__ import annotations

import json
import resource
import signal
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from survivor.proc.limits import Limits, machine_capacity
from tests.conftest import wait_until
from tests.integration.daemonproc import DaemonProcess, history_lines, read_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SPEED = 10.0  # a scheduling minute is 6 real seconds
NAP_S = 2  # real seconds per check: 20 s at 1x, a third of the minute
HOSTS = [f"h{n:02d}" for n in range(30)]
CHECKS = [f"net{n}" for n in range(10)]  # 30 hosts x 10 checks = 300 pairs
MINUTES = 3  # whole minutes checked after the first full one

CONFIG = """\
instance:
  name: capacity
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  fsync: batch
  log: {{target: stderr, level: info}}
  results_log: ../results.jsonl
hosts:
{hosts}
classes:
  net: {{hosts: [{host_list}], schedule: every-minute}}
schedules:
  every-minute: [{{every: 1m}}]
checks:
{checks}
  stuck: {{plugin: hang, hosts: [h00], timeout: 3s}}
"""

NAP = f"""#!/bin/sh
# A network check in the small: it waits, then answers.
sleep {NAP_S}
echo "OK: answered after {NAP_S}s"
"""


@pytest.fixture
def start_daemon(scratch: Path) -> Iterator[Callable[[float], DaemonProcess]]:
    """Start the daemon on the scratch tree's config at a clock speed; killed after the test."""
    started: list[DaemonProcess] = []

    def start(speed: float) -> DaemonProcess:
        d = DaemonProcess(scratch / "etc" / "survivor.yaml", scratch, speed=speed)
        started.append(d)
        return d.start().wait_ready()

    yield start
    for d in started:
        d.kill()


def write_tree(tree: Path) -> None:
    nap = tree / "mod" / "check" / "nap"
    nap.write_text(NAP)
    nap.chmod(0o755)
    (tree / "etc" / "survivor.yaml").write_text(
        CONFIG.format(
            hosts="\n".join(f"  {h}: {{address: 127.0.0.1}}" for h in HOSTS),
            host_list=", ".join(HOSTS),
            checks="\n".join(f"  {c}: {{plugin: nap, hosts: [net]}}" for c in CHECKS),
        )
    )


def planned_minutes(tree: Path) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(host, check) -> (the minute each run was planned for, epoch // 60 on the daemon's
    clock; how many seconds after its plan it started), from the results log.

    The planned minute, not the start's: at 10x a tenth of a real second late is a
    second of the daemon's clock, and a run planned at :59.8 that starts at :00.3 keeps
    its minute (the schedule counts from the plan, DESIGN §3)."""
    runs: dict[tuple[str, str], list[tuple[int, float]]] = {}
    path = tree / "results.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        r = json.loads(line)
        planned, start = float(r["planned"]), float(r["start"])
        runs.setdefault((r["host"], r["check"]), []).append((int(planned) // 60, start - planned))
    return runs


def test_300_twenty_second_checks_keep_their_minute_with_the_default_config(
    scratch: Path, start_daemon: Callable[[float], DaemonProcess]
) -> None:
    write_tree(scratch)
    start_daemon(SPEED)
    doc = read_json(scratch / "state" / "daemon.json")
    assert doc is not None
    started = datetime.fromisoformat(doc["started"].replace("Z", "+00:00")).timestamp()
    first = int(started) // 60 + 1  # the first whole minute after the start
    last = first + MINUTES - 1
    pairs = [(h, c) for h in HOSTS for c in CHECKS] + [("h00", "stuck")]

    busiest = 0

    def every_pair_has_run_in_the_last_minute() -> bool:
        nonlocal busiest
        now = read_json(scratch / "state" / "daemon.json") or {}
        busy = now.get("pools", {}).get("check", {}).get("busy", 0)
        busiest = max(busiest, busy if isinstance(busy, int) else 0)
        runs = planned_minutes(scratch)
        return all(max((m for m, _ in runs.get(p, [])), default=0) >= last for p in pairs)

    wait_until(every_pair_has_run_in_the_last_minute, 90, "a run of every pair in the last minute")

    wanted = list(range(first, last + 1))
    runs = planned_minutes(scratch)
    missed = {
        f"{c}@{h}": got
        for h, c in pairs
        if (got := sorted(m for m, _ in runs.get((h, c), []) if first <= m <= last)) != wanted
    }
    some = dict(list(missed.items())[:10])
    assert not missed, f"{len(missed)} pairs not run once for each minute {wanted}: {some}"
    # ... and each started on time: 30 s of the daemon's clock is 3 real seconds at 10x
    lags = [lag for p in pairs for m, lag in runs.get(p, []) if first <= m <= last]
    assert max(lags) < 30, sorted(lags)[-10:]
    stuck = history_lines(scratch / "history" / "host" / "h00" / "stuck")
    assert stuck and all(r["rc"] == 5 for r in stuck)  # TIMEDOUT, each minute
    naps = history_lines(scratch / "history" / "host" / "h05" / "net3")
    assert all(r["rc"] == 0 and int(str(r["duration_ms"])) >= NAP_S * 1000 for r in naps)
    # Far more than the old 15 slots ran at once (about 100 when all is well; the heartbeat
    # samples it every 1.5 real s).
    assert busiest > 30, busiest
    status = json.loads((scratch / "state" / "daemon.json").read_text())
    assert status["pools"]["check"]["waiting"] == 0


def test_checks_held_back_by_max_running_checks_are_shown_and_logged_once_a_minute(
    scratch: Path, start_daemon: Callable[[float], DaemonProcess]
) -> None:
    nap = scratch / "mod" / "check" / "nap"
    nap.write_text("#!/bin/sh\nsleep 1\necho OK\n")  # a whole minute at the test's 60x
    nap.chmod(0o755)
    config = CONFIG.replace("  fsync: batch\n", "  fsync: batch\n  max_running_checks: 1\n")
    (scratch / "etc" / "survivor.yaml").write_text(
        config.format(
            hosts="\n".join(f"  {h}: {{address: 127.0.0.1}}" for h in HOSTS[:5]),
            host_list=", ".join(HOSTS[:5]),
            checks="  net0: {plugin: nap, hosts: [net]}",
        ).replace("  stuck: {plugin: hang, hosts: [h00], timeout: 3s}\n", "")
    )
    d = start_daemon(60.0)  # a minute a second

    def pool() -> dict[str, int]:
        doc = read_json(scratch / "state" / "daemon.json") or {}
        return dict(doc.get("pools", {}).get("check", {}))

    wait_until(lambda: pool().get("waiting", 0) >= 2, 20, "checks waiting for room")
    held = pool()
    assert held["size"] == 1 and held["busy"] == 1 and held["waiting_s"] >= 0
    wait_until(lambda: d.log().count("waiting for room") >= 3, 20, "three minutes of notes")
    log = d.log()
    notes = [line for line in log.splitlines() if "due checks waiting for room" in line]
    assert "max_running_checks 1" in notes[0]
    doc = read_json(scratch / "state" / "daemon.json")
    assert doc is not None
    started = datetime.fromisoformat(doc["started"].replace("Z", "+00:00")).timestamp()
    updated = datetime.fromisoformat(doc["updated"].replace("Z", "+00:00")).timestamp()
    minutes = (updated - started) / 60
    # Once a minute, not once per check (five checks a minute are held back).
    assert len(notes) <= minutes + 2, (len(notes), minutes)
    assert "up to" in log and "checks at once, 1 with this config" in log


def test_a_reload_applies_a_new_cap_and_no_cap_means_the_machines_limits(
    scratch: Path, start_daemon: Callable[[float], DaemonProcess]
) -> None:
    def write(cap: str) -> None:
        config = CONFIG.replace("  fsync: batch\n", f"  fsync: batch\n{cap}")
        (scratch / "etc" / "survivor.yaml").write_text(
            config.format(
                hosts="  h00: {address: 127.0.0.1}",
                host_list="h00",
                checks="  net0: {plugin: hang, hosts: [net], timeout: 1s}",
            ).replace("  stuck: {plugin: hang, hosts: [h00], timeout: 3s}\n", "")
        )

    def size_at(generation: int) -> int | None:
        doc = read_json(scratch / "state" / "daemon.json") or {}
        if doc.get("config", {}).get("generation") != generation:
            return None
        return int(doc["pools"]["check"]["size"])

    write("  max_running_checks: 7\n  check_workers: 9\n")  # the smaller wins
    d = start_daemon(60.0)
    assert size_at(1) == 7
    write("  check_workers: 3\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: size_at(2) == 3, 20, "the new cap after the reload")
    write("")
    d.signal(signal.SIGHUP)
    wait_until(lambda: size_at(3) is not None, 20, "the third generation")
    # No cap: what the hard limits allow (the daemon raised its soft limits to them).
    hard = [resource.getrlimit(r)[1] for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC)]
    limits = Limits(*(None if h == resource.RLIM_INFINITY else h for h in hard))
    assert size_at(3) == machine_capacity(limits)
    assert machine_capacity(limits) > 15  # the old fixed default
