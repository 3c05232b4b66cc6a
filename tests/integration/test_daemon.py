"""The real daemon: start, checks running, SIGHUP good and bad, SIGTERM, kill -9, restarts."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from survivor.model.documents import ConfigSnapshot
from tests.conftest import wait_until
from tests.integration.daemonproc import REPO, DaemonProcess, history_lines, read_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BASE = """\
instance:
  name: test
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  check_workers: 4
  default_timeout: 5s
  fsync: batch
  log: {{target: stderr, level: debug}}
  results_log: ../results.jsonl
hosts:
  web1: {{address: 127.0.0.1}}
  web2: {{address: 127.0.0.2}}
classes:
  web: {{hosts: [web1, web2], schedule: every-minute}}
schedules:
  every-minute: [{{every: 1m}}]
  hourly: [{{every: 1h}}]
checks:
{checks}
"""

ALIVE = "  alive: {module: ok, hosts: [web1, web2]}\n"
HOSTS = ("web1", "web2")


def write_config(tree: Path, checks: str = ALIVE) -> Path:
    path = tree / "etc" / "survivor.yaml"
    path.write_text(BASE.format(checks=checks))
    return path


@pytest.fixture
def daemons(scratch: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


def start(
    daemons: list[DaemonProcess], tree: Path, *, origin: float | None = None
) -> DaemonProcess:
    d = DaemonProcess(tree / "etc" / "survivor.yaml", tree, origin=origin)
    daemons.append(d)
    return d.start().wait_ready()


def pair_history(tree: Path, host: str, check: str) -> list[dict[str, object]]:
    return history_lines(tree / "history" / "host" / host / check)


def count_results(tree: Path, host: str, check: str, at_least: int) -> bool:
    return len(pair_history(tree, host, check)) >= at_least


def test_start_run_checks_and_stop_cleanly(scratch: Path, daemons: list[DaemonProcess]) -> None:
    write_config(scratch)
    d = start(daemons, scratch)
    state = scratch / "state"
    wait_until(lambda: count_results(scratch, "web2", "alive", 3), 20, "three results")
    check = read_json(state / "host" / "web1" / "alive" / "check.json")
    assert check is not None
    assert check["version"] == 1 and check["rc"] == 0 and check["code"] == "OK"
    assert check["consecutive"] >= 1 and len(check["fingerprint"]) == 12
    records = pair_history(scratch, "web1", "alive")
    assert all(r["fp"] == check["fingerprint"] and r["gen"] == 1 for r in records)
    assert all(str(r["t"]).endswith("Z") for r in records)
    daemon_doc = read_json(state / "daemon.json")
    assert daemon_doc is not None and daemon_doc["pid"] == d.pid
    assert daemon_doc["config"]["generation"] == 1 and daemon_doc["mood"] == "running"
    assert (state / "queue.json").exists()
    results = [json.loads(line) for line in (scratch / "results.jsonl").read_text().splitlines()]
    assert {r["host"] for r in results} == {"web1", "web2"}
    assert all(r["start"] >= r["planned"] - 0.001 for r in results)

    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0
    while "STOPPING=1" not in d.messages and d.notifications(1.0):
        pass
    assert "STOPPING=1" in d.messages
    assert not (state / "survivor.pid").exists()
    final = read_json(state / "daemon.json")
    assert final is not None and final["mood"] == "stopped"
    events = [
        json.loads(x)
        for f in sorted((scratch / "history" / "daemon").iterdir())
        for x in f.read_text().splitlines()
    ]
    assert [e["event"] for e in events] == ["start", "stop"]


def test_pairs_that_have_not_run_yet_get_their_directories_before_the_first_check(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch)
    first = start(daemons, scratch)
    ready = "start: directories ready for 2 of 2 pairs that have never run"
    wait_until(lambda: ready in first.log(), 20, "the preparation at start")
    for root in ("state", "history"):
        assert all((scratch / root / "host" / h / "alive").is_dir() for h in HOSTS)
    wait_until(lambda: count_results(scratch, "web2", "alive", 1), 20, "a result of alive@web2")
    wait_until(lambda: count_results(scratch, "web1", "alive", 1), 20, "a result of alive@web1")
    # Made before the first check started, and not again by the first tick.
    log_text = first.log_path.read_text()
    [line] = [x for x in log_text.splitlines() if ready in x]
    made_at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    results = [json.loads(x) for x in (scratch / "results.jsonl").read_text().splitlines()]
    assert made_at <= min(r["start"] for r in results) + 0.001
    assert log_text.count("directories ready for") == 1
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0
    # Both have run: a restart has nothing to prepare (the two share one log file).
    start(daemons, scratch)
    wait_until(lambda: count_results(scratch, "web2", "alive", 3), 20, "two more results")
    assert first.log_path.read_text().count("directories ready for") == 1


def test_second_daemon_on_same_state_dir_is_refused(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch)
    first = start(daemons, scratch)
    second = DaemonProcess(scratch / "etc" / "survivor.yaml", scratch)
    daemons.append(second)
    second.log_path = scratch / "second.log"
    second.start()
    assert second.wait_exit(20) == 1
    assert f"pid {first.pid}" in second.log_path.read_text()
    assert read_json(scratch / "state" / "daemon.json")["pid"] == first.pid  # type: ignore[index]


def test_a_refused_second_daemon_says_why_on_stderr_when_it_logs_to_a_file(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    """With `log: {target: FILE}` a refused start wrote only to the file: the operator who
    ran it saw exit 1 and nothing else."""
    config = write_config(scratch)
    start(daemons, scratch)
    logged = config.with_name("second.yaml")
    logged.write_text(
        config.read_text().replace("target: stderr", f"target: {scratch / 'daemon.log'}")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "survivor", "--config", str(logged), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "not starting" in proc.stderr and "already uses this state directory" in proc.stderr


def test_bad_config_at_start_exits_78_with_every_error(scratch: Path) -> None:
    write_config(
        scratch,
        "  alive: {module: ok, hosts: [web1], timout: 5s}\n"
        "  other: {module: ok, hosts: [nosuchgroup]}\n",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "survivor", "--config", str(scratch / "etc/survivor.yaml"), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 78
    assert "survivor.yaml:" in proc.stderr and "timout" in proc.stderr
    assert "nosuchgroup" in proc.stderr
    assert "survivor: ERROR" in proc.stderr and "ERROR:survivor" not in proc.stderr


def test_broken_config_on_hup_keeps_old_config_running(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(scratch)
    d = start(daemons, scratch)
    wait_until(lambda: count_results(scratch, "web1", "alive", 2), 20, "results")
    config.write_text(config.read_text() + "  broken: {module: ok, schedule: nosuch}\n")
    d.signal(signal.SIGHUP)
    d.wait_for_notify("READY=1")  # the reload is over, failed or not

    def failed_reload() -> dict[str, object] | None:
        doc = read_json(scratch / "state" / "daemon.json")
        last = (doc or {}).get("last_reload")
        return last if last and last.get("ok") is False else None

    last = wait_until(failed_reload, 10, "daemon.json to report the failed reload")
    assert any("survivor.yaml:" in e and "nosuch" in e for e in last["errors"])  # type: ignore[index]
    assert read_json(scratch / "state" / "daemon.json")["config"]["generation"] == 1  # type: ignore[index]
    seen = len(pair_history(scratch, "web1", "alive"))
    wait_until(
        lambda: count_results(scratch, "web1", "alive", seen + 2),
        20,
        "checks to keep running on the old config",
    )
    assert d.proc is not None and d.proc.poll() is None
    events = (scratch / "history" / "daemon").glob("events-*.jsonl")
    kinds = [json.loads(x)["event"] for f in events for x in f.read_text().splitlines()]
    assert "reload-failed" in kinds


def test_reload_changes_fingerprint_and_keeps_state(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(scratch)
    d = start(daemons, scratch)
    wait_until(lambda: count_results(scratch, "web1", "alive", 2), 20, "results")
    before = read_json(scratch / "state/host/web1/alive/check.json")
    assert before is not None
    config.write_text(
        BASE.format(checks="  alive: {module: ok, hosts: [web1, web2], args: {flavour: new}}\n")
    )
    d.signal(signal.SIGHUP)
    wait_until(
        lambda: (
            (read_json(scratch / "state/daemon.json") or {}).get("config", {}).get("generation")
            == 2
        ),
        10,
        "generation 2",
    )

    def new_fp_record() -> bool:
        return any(
            r["fp"] != before["fingerprint"] and r["gen"] == 2
            for r in pair_history(scratch, "web1", "alive")
        )

    wait_until(new_fp_record, 20, "a record with the new fingerprint")
    # the config the daemon runs, for the commands while the files on disk do not load
    running = ConfigSnapshot.from_dict(read_json(scratch / "state/running-config.json") or {})
    assert running.generation == 2 and running.path == str(config)
    assert dict(running.files)[str(config)] == config.read_bytes()
    after = read_json(scratch / "state/host/web1/alive/check.json")
    assert after is not None and after["fingerprint"] != before["fingerprint"]
    assert after["since"] == before["since"]  # status kept across the change
    assert after["consecutive"] > before["consecutive"]


def test_daemon_works_from_root_and_reloads_a_relative_config(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    where = scratch / "mod" / "check" / "where"
    where.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "for host in json.load(sys.stdin)['hosts']:\n"
        "    print(json.dumps({'host': host['name'], 'rc': 0, 'comment': os.getcwd()}))\n"
    )
    where.chmod(0o755)
    write_config(scratch, "  where: {module: where, hosts: [web1]}\n")
    d = DaemonProcess(Path("etc/survivor.yaml"), scratch)  # relative to the daemon's start cwd
    daemons.append(d)
    d.start().wait_ready()
    check = scratch / "state/host/web1/where/check.json"
    wait_until(lambda: (read_json(check) or {}).get("comment") == "/", 20, "a result from /")
    write_config(scratch, "  where: {module: where, hosts: [web1, web2]}\n")
    d.signal(signal.SIGHUP)  # the daemon now runs in "/": the config path must still resolve
    wait_until(
        lambda: (
            (read_json(scratch / "state/host/web2/where/check.json") or {}).get("comment") == "/"
        ),
        20,
        "the reloaded config's new pair checked",
    )
    daemon_doc = read_json(scratch / "state/daemon.json")
    assert daemon_doc is not None and daemon_doc["last_reload"]["ok"] is True


def test_history_survives_removal_and_readding_byte_for_byte(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    both = ALIVE + "  extra: {module: ok, hosts: [web1]}\n"
    config = write_config(scratch, both)
    d = start(daemons, scratch)
    wait_until(lambda: count_results(scratch, "web1", "alive", 2), 20, "results")
    alive_dir = scratch / "history/host/web1/alive"

    config.write_text(BASE.format(checks="  extra: {module: ok, hosts: [web1]}\n"))
    d.signal(signal.SIGHUP)
    wait_until(
        lambda: (
            (read_json(scratch / "state/daemon.json") or {}).get("config", {}).get("generation")
            == 2
        ),
        10,
        "generation 2",
    )
    wait_until(lambda: not (scratch / "state/host/web1/alive").exists(), 10, "state pruned")
    snapshot = {p.name: p.read_bytes() for p in alive_dir.iterdir()}
    old_fp = json.loads(next(iter(snapshot.values())).splitlines()[0])["fp"]
    extra_seen = len(pair_history(scratch, "web1", "extra"))
    wait_until(lambda: count_results(scratch, "web1", "extra", extra_seen + 3), 20, "more ticks")
    assert {p.name: p.read_bytes() for p in alive_dir.iterdir()} == snapshot

    config.write_text(
        BASE.format(
            checks="  alive: {module: ok, hosts: [web1], args: {v: 2}}\n"
            "  extra: {module: ok, hosts: [web1]}\n"
        )
    )
    d.signal(signal.SIGHUP)
    wait_until(
        lambda: any(r["fp"] != old_fp for r in pair_history(scratch, "web1", "alive")),
        20,
        "records of the new incarnation",
    )
    for name, data in snapshot.items():
        assert (alive_dir / name).read_bytes().startswith(data)
    fresh = read_json(scratch / "state/host/web1/alive/check.json")
    assert fresh is not None and fresh["fingerprint"] != old_fp


def test_restart_does_not_rerun_what_is_not_due(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch, "  alive: {module: ok, hosts: [web1], schedule: hourly}\n")
    origin = time.time()
    d = start(daemons, scratch, origin=origin)
    wait_until(lambda: count_results(scratch, "web1", "alive", 1), 20, "first run")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0
    d2 = start(daemons, scratch, origin=origin)
    first_tick = wait_until(
        lambda: (read_json(scratch / "state/daemon.json") or {}).get("ticks", {}).get("check"),
        10,
        "a tick",
    )

    def ticks_later() -> bool:
        tick = (read_json(scratch / "state/daemon.json") or {}).get("ticks", {}).get("check")
        return bool(tick) and tick != first_tick

    # daemon.json is written on the heartbeat; ask for a fresh one by waiting for 2 ticks.
    wait_until(ticks_later, 60, "another tick")
    assert len(pair_history(scratch, "web1", "alive")) == 1
    assert d2.proc is not None and d2.proc.poll() is None


def test_module_added_later_is_used_without_restart(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(scratch, "  late: {module: late, hosts: [web1]}\n")
    start(daemons, scratch)

    def misconfig() -> bool:
        return any(
            r["rc"] == 4 and "late" in str(r["comment"])
            for r in pair_history(scratch, "web1", "late")
        )

    wait_until(misconfig, 20, "MISCONFIG for the missing module")
    shutil.copy2(scratch / "mod/check/ok", scratch / "mod/check/late")
    wait_until(
        lambda: any(r["rc"] == 0 for r in pair_history(scratch, "web1", "late")),
        20,
        "the new module to run",
    )


def test_kill_9_during_writes_leaves_every_file_parseable(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    hosts = "\n".join(f"  h{i}: {{address: 127.0.0.1}}" for i in range(40))
    config = BASE.format(
        checks="  alive: {module: ok, hosts: [big]}\n  warn: {module: warn, hosts: [big]}\n"
    )
    config = config.replace("hosts:\n  web1", f"hosts:\n{hosts}\n  web1")
    config = config.replace(
        "classes:\n",
        "classes:\n  big: {hosts: ["
        + ", ".join(f"h{i}" for i in range(40))
        + "], schedule: every-minute}\n",
    )
    (scratch / "etc/survivor.yaml").write_text(config)
    origin = time.time()
    rng = random.Random(7)
    for _ in range(5):
        d = start(daemons, scratch, origin=origin)
        time.sleep(rng.uniform(0.3, 2.0))  # deliberately random kill moment, not a synchronisation
        d.kill()
        for path in (scratch / "state").rglob("*.json"):
            doc = json.loads(path.read_bytes())
            assert doc["version"] == 1, path
        for path in (scratch / "history").rglob("*.jsonl"):
            lines = path.read_bytes().split(b"\n")
            lines.pop()  # a torn last record (no newline) is allowed
            for line in lines:
                json.loads(line)
    d = start(daemons, scratch, origin=origin)
    seen = len(pair_history(scratch, "h0", "alive"))
    wait_until(
        lambda: count_results(scratch, "h0", "alive", seen + 1),
        20,
        "the restarted daemon to carry on",
    )


def test_the_daemon_writes_an_overview_the_status_command_shows_as_the_files(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    """overview.json (issue 23 item 8): written by the running daemon with its pid, every
    pair's check.json as on disk; `status --json` from it equals the full read of the files."""
    config = write_config(scratch)
    d = start(daemons, scratch)
    state = scratch / "state"
    wait_until(lambda: count_results(scratch, "web2", "alive", 1), 20, "a result per host")

    def overview_has_both() -> bool:
        doc = read_json(state / "overview.json")
        return doc is not None and doc["pid"] == d.pid and len(doc["checks"]) == 2

    wait_until(overview_has_both, 20, "overview.json with both pairs")
    cmd = [sys.executable, "-m", "survivor", "--config", str(config), "status", "--json"]

    def checks_shown() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
        files = {h: read_json(state / "host" / h / "alive" / "check.json") for h in HOSTS}
        return json.loads(out.stdout)["checks"], [files[h] for h in HOSTS]

    def same() -> bool:  # a check may run between reading the files and the command
        shown, files = checks_shown()
        return [{k: c[k] for k in f} for c, f in zip(shown, files, strict=True)] == files

    wait_until(same, 20, "status --json showing every check.json as it is")
