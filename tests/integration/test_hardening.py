"""Issue 23 (hardening) against the real daemon: a broken step of the main loop, hostile
state files at start."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration import faultkit as fk
from tests.integration.daemonproc import DaemonProcess, read_json
from tests.integration.test_daemon import daemons, start, write_config

__all__ = ["daemons"]  # the fixture, shared with test_daemon

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_a_failing_requests_step_skips_no_other_step_of_the_main_loop(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    # requests/ the daemon cannot scan (here: a file; in the field: 0700 root from a root
    # operator's umask). The queue.json writes, the heartbeat and the flush must go on.
    write_config(scratch)
    state = scratch / "state"
    state.mkdir(exist_ok=True)
    (state / "requests").write_text("not a directory")
    d = start(daemons, scratch)
    wait_until(lambda: (state / "queue.json").exists(), 20, "queue.json from the main loop")
    first = read_json(state / "queue.json")
    assert first is not None
    wait_until(
        lambda: (read_json(state / "queue.json") or {}).get("updated") != first["updated"],
        20,
        "queue.json rewritten",
    )
    log = d.log_path.read_text()
    assert "requests" in log and "the other steps go on" in log
    assert log.count("step requests failed") == 1  # rate-limited, not every 0.5 s
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0


def test_hostile_state_files_at_start_are_moved_aside(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch)
    pair = scratch / "state" / "host" / "web1" / "alive"
    pair.mkdir(parents=True)
    (pair / "check.json").write_text(
        '{"version": 1, "rc": 0, "since": "2026-11-24T10:00:00.000Z", "consecutive": 1e400}'
    )
    other = scratch / "state" / "host" / "web2" / "alive"
    other.mkdir(parents=True)
    (other / "check.json").write_bytes(
        b'{"version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    (scratch / "state" / "daemon.json").write_text(
        json.dumps({"version": 1, "config": {"generation": 1e400}})
    )
    d = start(daemons, scratch)
    for p in (pair, other):
        wait_until(lambda p=p: any(".corrupt-" in x.name for x in p.iterdir()), 20, "moved aside")
        wait_until(lambda p=p: read_json(p / "check.json") is not None, 30, "a new check.json")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0


def test_a_reload_without_changes_keeps_the_generation_and_is_recorded(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(scratch)
    start(daemons, scratch)
    for _ in range(2):
        done = fk.cli(scratch, "reload", "--wait")
        assert done.returncode == 0, done.stderr
        assert "no changes; generation 1 kept" in done.stdout
    doc = read_json(scratch / "state" / "daemon.json")
    assert doc is not None and doc["config"]["generation"] == 1
    assert doc["last_reload"]["ok"] is True
    config.write_text(config.read_text() + "  extra: {module: warn, hosts: [web1]}\n")
    done = fk.cli(scratch, "reload", "--wait")
    assert done.returncode == 0 and "generation 2" in done.stdout, done.stderr
    events = [
        json.loads(line)
        for f in sorted((scratch / "history" / "daemon").iterdir())
        for line in f.read_text().splitlines()
    ]
    assert [(e["event"], e.get("generation")) for e in events] == [
        ("start", 1),
        ("reload", 1),
        ("reload", 1),
        ("reload", 2),
    ]


def test_a_symlinked_pair_directory_is_refused_and_the_pair_keeps_running(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch)
    outside = scratch / "outside"
    outside.mkdir()
    for root in ("state", "history"):
        (scratch / root / "host").mkdir(parents=True, exist_ok=True)
        (scratch / root / "host" / "web1").symlink_to(outside, target_is_directory=True)
    d = start(daemons, scratch)
    pair = scratch / "state" / "host" / "web1" / "alive"
    wait_until(lambda: read_json(pair / "check.json") is not None, 30, "check.json of web1")
    assert not (scratch / "state" / "host" / "web1").is_symlink()
    assert (scratch / "state" / "host" / "web1.symlink-refused").is_symlink()
    assert list(outside.iterdir()) == []
    assert "refused a symlink" in d.log_path.read_text()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0
    assert list(outside.iterdir()) == []


def stopped(d: DaemonProcess) -> None:
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0


def refused_start(daemons: list[DaemonProcess], config: Path, tree: Path) -> str:
    """Start a second daemon that must exit 1 at once; returns what it logged."""
    second = DaemonProcess(config, tree)
    daemons.append(second)
    second.log_path = tree / "second.log"
    second.start()
    assert second.wait_exit(20) == 1
    return second.log_path.read_text()


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_the_daemon_starts_on_a_read_only_or_full_state_filesystem(
    scratch: Path, daemons: list[DaemonProcess], fault: str
) -> None:
    write_config(scratch)
    state = scratch / "state"
    with fk.tmpfs(state, "256k") as fs:
        first = start(daemons, scratch)
        wait_until(lambda: (state / "host" / "web2" / "alive" / "check.json").exists(), 20, "state")
        stopped(first)
        fs.remount("ro") if fault == "read-only" else fs.fill()
        seen = len(fk.results(scratch))
        d = start(daemons, scratch)  # READY=1, no traceback
        wait_until(lambda: len(fk.results(scratch)) >= seen + 4, 20, "checks to keep running")
        log = d.log_path.read_text()
        assert "Traceback" not in log
        assert "pidfile: cannot write" in log and "running anyway" in log
        # A second daemon is still refused: the directory itself is locked.
        refused = refused_start(daemons, scratch / "etc" / "survivor.yaml", scratch)
        assert "already uses this state directory" in refused
        stopped(d)
        fs.remount("rw") if fault == "read-only" else fs.free()


def test_two_instances_may_not_share_a_history_dir(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(scratch)
    first = start(daemons, scratch)
    other = scratch / "etc" / "other.yaml"
    other.write_text(config.read_text().replace("state_dir: ../state", "state_dir: ../state2"))
    text = refused_start(daemons, other, scratch)
    assert f"pid {first.pid}" in text and "history directory" in text, text
    assert str(scratch / "state") in text  # names the other instance's state_dir
    assert not (scratch / "state2" / "host").exists()


def test_a_history_outage_is_recorded_with_its_span_and_the_records_lost(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch)
    history = scratch / "history"
    with fk.tmpfs(history, "256k") as fs:
        fs.fill()  # full before the start: the start event is lost too
        d = start(daemons, scratch)
        wait_until(lambda: len(fk.results(scratch)) >= 6, 20, "checks during the outage")
        fs.free()

        def outages() -> list[dict[str, object]]:
            return [e for e in fk.events(scratch) if e["event"] == "disk-outage"]

        for host in ("web1", "web2"):
            wait_until(
                lambda h=host: fk.history_records(history, h, "alive"),  # type: ignore[misc]
                20,
                f"history of {host} to resume",
            )
        wait_until(outages, 20, "a disk-outage event")
        stopped(d)  # an outage that ended but is not yet recorded is recorded at the stop
        results = len(fk.results(scratch))
        recorded = sum(len(fk.history_records(history, h, "alive")) for h in ("web1", "web2"))
        lost_results = results - recorded
        assert lost_results >= 6
        # Every result that is not in history is counted, plus the lost start event. (At a
        # minute per second, a check every minute can make one outage look like several.)
        found = outages()
        assert sum(o["history_records_lost"] for o in found) == lost_results + 1, found  # type: ignore[misc]
        for o in found:
            assert o["since"] <= o["until"], o  # type: ignore[operator]
            assert "No space left" in str(o["last_error"])
        assert {e["event"] for e in fk.events(scratch)} == {"disk-outage", "stop"}
        assert "history records lost" in d.log_path.read_text()
