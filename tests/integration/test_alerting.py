"""Alerting end to end: a real daemon, a check failed on purpose, the `file` transmit module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from survivor.model.config import FsyncPolicy
from survivor.model.documents import CheckState
from survivor.store.fsio import FileWriter
from survivor.store.state import StateStore
from tests.conftest import wait_until
from tests.integration.daemonproc import REPO, DaemonProcess, read_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONFIG = """\
instance:
  name: alerting
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  check_workers: 4
  alert_workers: 3
  alert_throttle: {throttle}
  alert_shift: 30s
  log: {{target: stderr, level: debug}}
hosts:
{host_lines}
classes:
  web: {{hosts: [{host_list}], schedule: {check_schedule}, alertplan: standard}}
schedules:
  every-minute: [{{every: 1m}}]
  hourly: [{{every: 1h}}]
  pace: [{{every: {pace}}}]
alerts:
  file: {{format: json, transmit: file, args: {{path: {alerts}}}}}
people:
  alice: {{file: alice@example.org}}
  bob: {{file: bob@example.org}}
  carol: {{file: carol@example.org}}
calllists:
  helpdesk: {{members: [alice, bob], via: file}}
  admins: {{members: [alice, bob, carol], via: file, broadcast: true}}
alertplans:
  standard:
    rules:
      - on: [1]
        after: {after}
        using:
          - schedule: pace
            tries:
              - {{times: 1, alert: [helpdesk]}}
              - {{alert: [admins], escalated: true}}
    notify_on_clear: true
checks:
  flaky: {{module: from-file, hosts: [web], args: {{path: {codes}}}}}
"""


def write_config(
    tree: Path,
    hosts: list[str],
    *,
    throttle: int = 10,
    pace: str = "2m",
    after: int = 2,
    check_schedule: str = "every-minute",
) -> None:
    (tree / "etc" / "survivor.yaml").write_text(
        CONFIG.format(
            throttle=throttle,
            check_schedule=check_schedule,
            pace=pace,
            after=after,
            host_lines="\n".join(f"  {h}: {{address: 127.0.0.1}}" for h in hosts),
            host_list=", ".join(hosts),
            alerts=json.dumps(str(tree / "alerts.jsonl")),
            codes=json.dumps(str(tree / "codes.json")),
        )
    )


def set_codes(tree: Path, codes: dict[str, int]) -> None:
    tmp = tree / "codes.json.tmp"
    tmp.write_text(json.dumps(codes))
    tmp.replace(tree / "codes.json")


def alerts(tree: Path) -> list[dict[str, Any]]:
    try:
        text = (tree / "alerts.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


def results(tree: Path, host: str) -> list[dict[str, Any]]:
    path = tree / "history" / "host" / host / "flaky"
    return [
        json.loads(x)
        for f in sorted(path.glob("check-*.jsonl"))
        for x in f.read_text().splitlines()
    ]


def survivor(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "survivor", "--config", str(tree / "etc/survivor.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def daemon(scratch: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


def alert_ticks(tree: Path) -> str | None:
    return ((read_json(tree / "state" / "daemon.json") or {}).get("ticks") or {}).get("alert")


def test_threshold_escalation_ack_and_clear(scratch: Path, daemon: list[DaemonProcess]) -> None:
    write_config(scratch, ["web1", "web2"])
    set_codes(scratch, {"*": 0})
    d = DaemonProcess(scratch / "etc/survivor.yaml", scratch).start().wait_ready()
    daemon.append(d)
    wait_until(lambda: len(results(scratch, "web1")) >= 1, 20, "first OK results")
    set_codes(scratch, {"*": 1})

    # `after: 2`: the first alert only after two PROBLEM results in a row, to one helpdesk member.
    first = wait_until(
        lambda: [a for a in alerts(scratch) if a["alert"]["host"] == "web1"],
        30,
        "the first alert for web1",
    )
    problems = [r for r in results(scratch, "web1") if r["rc"] == 1]
    assert len(problems) >= 2
    assert len(first) == 1, first  # exactly one alert for the first try
    assert first[0]["alert"]["try"] == 1 and first[0]["alert"]["check"] == "flaky"
    assert first[0]["person"] in ("alice", "bob") and first[0]["alert"]["escalated"] is False

    # The next repeat escalates to the broadcast list: everyone on it hears.
    def escalated() -> list[dict[str, Any]]:
        return [
            a for a in alerts(scratch) if a["alert"]["host"] == "web1" and a["alert"]["try"] == 2
        ]

    second = wait_until(escalated, 30, "the escalated alert")
    assert sorted(a["person"] for a in second) == ["alice", "bob", "carol"]
    assert all(a["alert"]["escalated"] for a in second)

    # Acknowledge web1: its repeats stop; web2 (not acknowledged) keeps alerting.
    ack = survivor(scratch, "ack", "web1/flaky", "--comment", "looking into it")
    assert ack.returncode == 0, ack.stderr
    command = [
        json.loads(x)
        for f in (scratch / "history/host/web1/flaky").glob("command-*.jsonl")
        for x in f.read_text().splitlines()
    ]
    assert command[-1]["command"] == "ack" and command[-1]["comment"] == "looking into it"
    assert command[-1]["user"]
    web1_count = len([a for a in alerts(scratch) if a["alert"]["host"] == "web1"])
    web2_count = len([a for a in alerts(scratch) if a["alert"]["host"] == "web2"])
    wait_until(
        lambda: len([a for a in alerts(scratch) if a["alert"]["host"] == "web2"]) > web2_count + 2,
        40,
        "web2 to keep alerting",
    )
    assert len([a for a in alerts(scratch) if a["alert"]["host"] == "web1"]) == web1_count

    # Recovery: web2 gets a clear notice, sent to whoever got its last alert; web1 (acked) none.
    last_web2 = [a for a in alerts(scratch) if a["alert"]["host"] == "web2"][-1]
    last_try = last_web2["alert"]["try"]
    last_people = sorted(
        a["person"]
        for a in alerts(scratch)
        if a["alert"]["host"] == "web2" and a["alert"]["try"] == last_try
    )
    set_codes(scratch, {"*": 0})

    def clears() -> list[dict[str, Any]]:
        return [a for a in alerts(scratch) if a["alert"]["clear"]]

    cleared = wait_until(clears, 30, "the clear notice")
    assert {a["alert"]["host"] for a in cleared} == {"web2"}
    assert sorted(a["person"] for a in cleared) == last_people
    # The alert worker removes alert.json right after it delivered the notice we just read.
    alert_json = scratch / "state/host/web2/flaky/alert.json"
    wait_until(lambda: not alert_json.exists(), 10, "the cleared pair's alert.json to go")


def test_throttle_turns_an_outage_into_digests(scratch: Path, daemon: list[DaemonProcess]) -> None:
    # 200 hosts already failing when the daemon starts (their last check a minute ago, the
    # next one an hour away), so the first alert tick sees the whole outage at once.
    hosts = [f"h{i:03d}" for i in range(200)]
    write_config(scratch, hosts, throttle=10, pace="1h", after=1, check_schedule="hourly")
    store = StateStore(scratch / "state", FileWriter(FsyncPolicy.NEVER))
    origin = time.time()
    last = datetime.fromtimestamp(origin, UTC) - timedelta(minutes=1)
    for host in hosts:
        store.write_check(
            host,
            "flaky",
            CheckState(
                rc=1, since=last, consecutive=1, last_start=last, last_planned=last, comment="down"
            ),
        )
    d = DaemonProcess(scratch / "etc/survivor.yaml", scratch, origin=origin).start().wait_ready()
    daemon.append(d)

    def digests_done() -> bool:
        lines = alerts(scratch)
        singles = {a["alert"]["host"] for a in lines if not a["alert"]["digest"]}
        digested = {e["host"] for a in lines for e in a["alert"]["digest"]}
        return len(singles | digested) == 200

    wait_until(digests_done, 60, "every host to be named in an alert or a digest")
    lines = alerts(scratch)
    singles = [a for a in lines if not a["alert"]["digest"]]
    digests = [a for a in lines if a["alert"]["digest"]]
    assert len({a["alert"]["host"] for a in singles}) == 10  # alert_throttle logical alerts
    assert len(singles) == 10
    assert 1 <= len(digests) <= 2  # one digest per recipient (alice, bob)
    assert len({a["person"] for a in digests}) == len(digests)
    assert sum(len(a["alert"]["digest"]) for a in digests) == 190
    wait_until(
        lambda: (
            ((read_json(scratch / "state/daemon.json") or {}).get("alerts") or {}).get(
                "throttled", 0
            )
            >= 190
        ),
        30,
        "daemon.json to count the throttled alerts",
    )


def test_fix_try_repairs_rechecks_at_once_and_then_clears(
    scratch: Path, daemon: list[DaemonProcess]
) -> None:
    write_config(scratch, ["web1"], pace="3m")
    config = scratch / "etc" / "survivor.yaml"
    text = config.read_text()
    text = text.replace(
        "              - {alert: [admins], escalated: true}\n",
        "              - {times: 1, fix: true, tell: [admins]}\n"
        "              - {alert: [admins], escalated: true}\n",
    )
    codes = json.dumps(str(scratch / "codes.json"))
    text += f"fixes:\n  repair: {{module: repair, args: {{path: {codes}}}, timeout: 10s}}\n"
    config.write_text(
        text.replace(
            "  flaky: {module: from-file, hosts: [web], args:",
            "  flaky: {module: from-file, hosts: [web], fix: repair, args:",
        )
    )
    set_codes(scratch, {"*": 1})
    d = DaemonProcess(config, scratch).start().wait_ready()
    daemon.append(d)

    first = wait_until(lambda: alerts(scratch), 30, "the first alert")
    told = wait_until(
        lambda: [a for a in alerts(scratch) if a["alert"].get("fix")],
        40,
        "the fix result told to admins",
    )
    assert {a["person"] for a in told} == {"alice", "bob", "carol"}
    assert all(a["alert"]["fix"]["code"] == "OK" for a in told)
    fixes = [
        json.loads(x)
        for f in (scratch / "history/host/web1/flaky").glob("fix-*.jsonl")
        for x in f.read_text().splitlines()
    ]
    assert [f["rc"] for f in fixes] == [0] and fixes[0]["comment"] == "repaired web1"

    # The check re-runs at once after the fix, and the clear notice follows its OK result.
    # It goes to everyone told about the problem: the first alert's person and the
    # admins told of the fix (issue 19: it went to the first alert's person only), once each.
    wait_until(lambda: [a for a in alerts(scratch) if a["alert"]["clear"]], 40, "the clear notice")
    wait_until(
        lambda: len([a for a in alerts(scratch) if a["alert"]["clear"]]) >= 3, 10, "3 clears"
    )
    cleared = [a for a in alerts(scratch) if a["alert"]["clear"]]
    assert first[0]["person"] in {"alice", "bob"}
    assert sorted(a["person"] for a in cleared) == ["alice", "bob", "carol"]
    fix_time = fixes[0]["t"]
    assert any(r["rc"] == 0 and r["t"] >= fix_time for r in results(scratch, "web1"))


def test_a_downtime_holds_alerts_and_a_problem_still_there_is_alerted_as_new(
    scratch: Path, daemon: list[DaemonProcess]
) -> None:
    """Issue 22: checks run and record through a downtime, nothing is sent, and the
    problem is alerted from the first rung again when it ends. web2 (no downtime) is
    the control: it escalates meanwhile."""
    from survivor.model.documents import Downtime

    write_config(scratch, ["web1", "web2"], pace="3m")
    set_codes(scratch, {"*": 1})
    origin = time.time()
    d = DaemonProcess(scratch / "etc/survivor.yaml", scratch, origin=origin).start().wait_ready()
    daemon.append(d)

    def daemon_now() -> datetime:
        return datetime.fromtimestamp(origin + (time.time() - origin) * d.speed, UTC)

    def of(host: str) -> list[dict[str, Any]]:
        return [a for a in alerts(scratch) if a["alert"]["host"] == host]

    wait_until(lambda: of("web1"), 30, "the first alert for web1")
    start = daemon_now()
    end = start + timedelta(minutes=8)
    store = StateStore(scratch / "state", FileWriter(FsyncPolicy.NEVER))
    store.write_downtime(
        Downtime("dt1", "tester", "patching", start, "web1", (("web1", "flaky"),), start, end)
    )
    assert [a["alert"]["try"] for a in of("web1")] == [1]

    # The control escalates to try 2 while web1 is held.
    wait_until(lambda: [a for a in of("web2") if a["alert"]["try"] == 2], 30, "web2 to escalate")
    assert [a["alert"]["try"] for a in of("web1")] == [1]

    # After the end: alerted as a new problem, from the first rung (never try 2).
    again = wait_until(lambda: of("web1")[1:], 60, "web1 to be alerted again after the downtime")
    assert again[0]["alert"]["try"] == 1 and again[0]["alert"]["escalated"] is False
    assert daemon_now() >= end
    during = [
        r
        for r in results(scratch, "web1")
        if start <= datetime.fromisoformat(r["t"].replace("Z", "+00:00")) < end
    ]
    assert len(during) >= 5 and all(r["rc"] == 1 for r in during)  # checks kept running
    counted = ((read_json(scratch / "state/daemon.json") or {}).get("alerts") or {}).get("held")
    assert counted and counted >= 1
    log = d.log_path.read_text()
    assert "web1" in log and "alerts held" in log


def test_a_recurring_config_window_holds_alerts_until_it_ends(
    scratch: Path, daemon: list[DaemonProcess]
) -> None:
    """Issue 22: a `downtimes:` window of the config, read in the instance's zone (UTC
    here), holds web1's alerts from the daemon's start to the window's end; web2 is the
    control."""
    write_config(scratch, ["web1", "web2"], pace="3m")
    origin = time.time()
    start = datetime.fromtimestamp(origin, UTC).replace(second=0, microsecond=0)
    last = start + timedelta(minutes=9)  # `until` is inclusive: held through last:59
    config = scratch / "etc" / "survivor.yaml"
    text = config.read_text().replace(
        "  alert_shift: 30s\n", "  alert_shift: 30s\n  timezone: UTC\n"
    )
    config.write_text(
        text
        + "downtimes:\n  patching:\n    select: web1\n"
        + f"    window: {{from: '{start:%H:%M}', until: '{last:%H:%M}'}}\n"
        + "    comment: weekly patching\n"
    )
    set_codes(scratch, {"*": 1})
    d = DaemonProcess(config, scratch, origin=origin).start().wait_ready()
    daemon.append(d)

    def daemon_now() -> datetime:
        return datetime.fromtimestamp(origin + (time.time() - origin) * d.speed, UTC)

    def of(host: str) -> list[dict[str, Any]]:
        return [a for a in alerts(scratch) if a["alert"]["host"] == host]

    def sent_at(host: str) -> list[datetime]:
        path = scratch / "history" / "host" / host / "flaky"
        return [
            datetime.fromisoformat(json.loads(x)["t"].replace("Z", "+00:00"))
            for f in sorted(path.glob("alert-*.jsonl"))
            for x in f.read_text().splitlines()
        ]

    end = last + timedelta(minutes=1)
    first = wait_until(lambda: of("web1"), 60, "web1's alert after the window")
    assert first[0]["alert"]["try"] == 1
    # alert.json is written before the alert's history line: wait for the line too.
    assert min(wait_until(lambda: sent_at("web1"), 10, "web1's alert record")) >= end
    assert min(sent_at("web2")) < end  # the control was alerted while web1 was held
