"""mod/check/overdue: the daemon's heartbeat, hung work, forbidden windows and overdue checks.

Run as a real subprocess on state trees the tests write (times relative to
the real clock, since the module reads it), plus its pure pieces (durations,
windows) loaded from the file.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from survivor.clock import utc_iso
from tests.viewstate import daemon_doc, empty_tree, state, write_raw

MOD = Path(__file__).resolve().parent.parent / "mod" / "check"
OVERDUE = MOD / "overdue"
OK, PROBLEM, WARNING, MISCONFIG = 0, 1, 2, 4
SKELETON_BEGIN = "# --- begin protocol skeleton"
SKELETON_END = "# --- end protocol skeleton ---"


def load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("overdue_module", str(OVERDUE))
    spec = importlib.util.spec_from_loader("overdue_module", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    loader.exec_module(module)
    return module


overdue = load()


def run(args: dict[str, Any], hosts: tuple[str, ...] = ("localhost",)) -> list[dict[str, Any]]:
    doc = {
        "version": 1,
        "kind": "check",
        "check": "overdue",
        "timeout": 10,
        "args": args,
        "hosts": [{"name": h, "address": h, "vars": {}} for h in hosts],
    }
    proc = subprocess.run(
        [sys.executable, str(OVERDUE)],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        timeout=20,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == max((line["rc"] for line in lines), default=0), proc.stderr
    return lines


def healthy(root: Path) -> Path:
    """A state dir of a live daemon: fresh heartbeat, nothing late, nothing hung."""
    now = datetime.now(UTC)
    tree = empty_tree(root)
    tree.store.write_daemon(daemon_doc(now))
    tree.store.write_queue({"version": 1, "updated": utc_iso(now), "items": []})
    tree.store.write_check("web1", "ping", state(0, now=now, minutes_ago=1, next_due_in=2))
    tree.store.write_check("web2", "ping", state(0, now=now, minutes_ago=1, next_due_in=2))
    return tree.state


def running_item(kind: str, minutes: float, item_id: str = "c1") -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(minutes=minutes)
    return {
        "id": item_id,
        "kind": kind,
        "check": "http",
        "hosts": ["web1"],
        "state": "running",
        "planned": started.timestamp(),
        "started": started.timestamp(),
        "pid": 1,
        "worker": "check-1",
        "reason": "schedule",
    }


def with_queue(state_dir: Path, *items: dict[str, Any]) -> None:
    write_raw(
        state_dir / "queue.json",
        {"version": 1, "updated": utc_iso(datetime.now(UTC)), "items": list(items)},
    )


# --------------------------------------------------------------------------- the house pattern


def test_protocol_skeleton_is_the_one_in_every_module() -> None:
    def skeleton(path: Path) -> str:
        text = path.read_text()
        return text[text.index(SKELETON_BEGIN) : text.index(SKELETON_END)]

    assert skeleton(OVERDUE) == skeleton(MOD / "disk")


def test_validate_flag() -> None:
    proc = subprocess.run([str(OVERDUE), "-v"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"rc": 0, "comment": "overdue OK"}


def test_all_is_well_one_line_per_host(tmp_path: Path) -> None:
    lines = run({"state_dir": str(healthy(tmp_path))}, ("localhost", "other"))
    assert sorted(line["host"] for line in lines) == ["localhost", "other"]  # in finishing order
    for line in lines:
        assert line["rc"] == OK and line["scalar"] == 0
        assert line["comment"].startswith("daemon heartbeat ")
        assert "none of 2 checks overdue" in line["comment"]
        assert {p["label"] for p in line["perfdata"]} == {
            "heartbeat_age",
            "overdue",
            "running",
            "longest_running",
        }


# --------------------------------------------------------------------------- findings


def test_stale_heartbeat_is_a_problem(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    old = datetime.now(UTC) - timedelta(minutes=10)
    write_raw(state_dir / "daemon.json", daemon_doc(old))
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM and line["comment"].startswith("daemon heartbeat stale: 10m old")
    [relaxed] = run({"state_dir": str(state_dir), "heartbeat_max": "15m"})
    assert relaxed["rc"] == OK


def test_missing_stopped_or_broken_daemon_json(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    (state_dir / "daemon.json").unlink()
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM and "no daemon.json" in line["comment"]
    write_raw(state_dir / "daemon.json", daemon_doc(datetime.now(UTC), mood="stopped"))
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM and line["comment"].startswith("daemon stopped")
    write_raw(state_dir / "daemon.json", "{torn")
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM and "daemon.json unreadable" in line["comment"]


def test_disk_failure_reported_by_the_daemon(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    doc = daemon_doc(datetime.now(UTC), health={"disk": "failing", "last_disk_error": "ENOSPC"})
    write_raw(state_dir / "daemon.json", doc)
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM and "cannot write its state: ENOSPC" in line["comment"]


def test_item_running_too_long(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    with_queue(state_dir, running_item("fix", 45), running_item("check", 5, "c2"))
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM
    assert "1 item(s) running longer than 30m: fix http@web1 for 45m" in line["comment"]
    perf = {p["label"]: p["value"] for p in line["perfdata"]}
    assert perf["running"] == 2 and perf["longest_running"] >= 45 * 60
    [line] = run({"state_dir": str(state_dir), "max_running": "1h"})
    assert line["rc"] == OK


def test_forbidden_windows(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    with_queue(state_dir, running_item("fix", 8))
    always = {"state_dir": str(state_dir), "forbidden": ["mon-sun 00:00-24:00"]}
    [line] = run(always)
    assert line["rc"] == PROBLEM
    assert "running during forbidden window 'mon-sun 00:00-24:00': fix http@web1" in line["comment"]
    [graced] = run({**always, "grace": "10m"})
    assert graced["rc"] == OK
    local = datetime.now().astimezone()
    other_day = overdue.DAYS[(local.weekday() + 3) % 7]
    [elsewhere] = run({"state_dir": str(state_dir), "forbidden": f"{other_day} 00:00-24:00"})
    assert elsewhere["rc"] == OK


def test_overdue_checks_are_a_warning_naming_a_few(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    now = datetime.now(UTC)
    tree = empty_tree(tmp_path)
    for n in range(8):
        late = state(0, now=now, minutes_ago=30 + n, next_due_in=1)
        tree.store.write_check(f"host{n}", "ping", late)
    # A late check that is queued is being dealt with: not overdue.
    tree.store.write_check("web1", "http", state(0, now=now, minutes_ago=60, next_due_in=1))
    with_queue(state_dir, {**running_item("check", 1), "state": "queued", "started": None})
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == WARNING and line["scalar"] == 8
    assert line["comment"].startswith("8 check(s) overdue by more than 10m: ping@host7 (36m)")
    assert line["comment"].endswith("and 3 more") and "http@web1" not in line["comment"]
    [relaxed] = run({"state_dir": str(state_dir), "overdue_after": "2h"})
    assert relaxed["rc"] == OK


def test_worst_finding_comes_first(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    now = datetime.now(UTC)
    empty_tree(tmp_path).store.write_check("h", "c", state(0, now=now, minutes_ago=60))
    write_raw(state_dir / "daemon.json", daemon_doc(now - timedelta(hours=1)))
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == PROBLEM
    first, second = line["comment"].split("; ")
    assert first.startswith("daemon heartbeat stale") and "overdue" in second


def test_unreadable_state_files_are_a_warning(tmp_path: Path) -> None:
    state_dir = healthy(tmp_path)
    write_raw(state_dir / "host" / "web3" / "ping" / "check.json", "{")
    write_raw(state_dir / "queue.json", "[")
    [line] = run({"state_dir": str(state_dir)})
    assert line["rc"] == WARNING
    assert "queue.json unreadable" in line["comment"]
    assert "1 check state file(s) unreadable: ping@web3" in line["comment"]


# --------------------------------------------------------------------------- args


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({}, "state_dir"),
        ({"state_dir": "relative/path"}, "state_dir"),
        ({"state_dir": "/x", "max_running": "ten minutes"}, "max_running"),
        ({"state_dir": "/x", "heartbeat_max": 0}, "heartbeat_max"),
        ({"state_dir": "/x", "forbidden": "weekdays 8-18"}, "forbidden"),
        ({"state_dir": "/x", "forbidden": ["mon-fri 08:00-25:00"]}, "forbidden"),
        ({"state_dir": "/x", "forbidden": "mon 08:00-08:00"}, "forbidden"),
        ({"state_dir": "/x", "color": "red"}, "color"),
    ],
)
def test_bad_args_are_misconfig_naming_the_arg(args: dict[str, Any], named: str) -> None:
    lines = run(args, ("a", "b"))
    assert [line["rc"] for line in lines] == [MISCONFIG, MISCONFIG]
    assert all(f"'{named}'" in line["comment"] for line in lines)


def test_missing_state_dir_is_misconfig(tmp_path: Path) -> None:
    [line] = run({"state_dir": str(tmp_path / "nope")})
    assert line["rc"] == MISCONFIG and "is not a directory" in line["comment"]


def test_durations() -> None:
    assert overdue.parse_duration("x", "45s", 1) == 45
    assert overdue.parse_duration("x", "10m", 1) == 600
    assert overdue.parse_duration("x", "2h", 1) == 7200
    assert overdue.parse_duration("x", "1d", 1) == 86400
    assert overdue.parse_duration("x", 90, 1) == 90
    assert overdue.parse_duration("x", None, 7) == 7


def test_windows_by_day_and_across_midnight() -> None:
    [office] = overdue.parse_windows("f", "mon-fri 08:00-18:00")
    monday = datetime(2026, 11, 23, 8, 0)
    assert office.contains(monday)
    assert not office.contains(monday.replace(hour=18))
    assert not office.contains(datetime(2026, 11, 28, 10, 0))  # Saturday
    [night] = overdue.parse_windows("f", ["fri 22:00-06:00"])
    assert night.contains(datetime(2026, 11, 27, 23, 0))  # Friday night
    assert night.contains(datetime(2026, 11, 28, 5, 59))  # Saturday morning
    assert not night.contains(datetime(2026, 11, 28, 23, 0))  # Saturday night
    [weekend] = overdue.parse_windows("f", "sat,sun 00:00-24:00")
    assert weekend.days == frozenset({5, 6})
    [wrap] = overdue.parse_windows("f", "fri-mon 09:00-10:00")
    assert wrap.days == frozenset({4, 5, 6, 0})
    [daily] = overdue.parse_windows("f", "12:00-13:00")
    assert daily.days == frozenset(range(7))
