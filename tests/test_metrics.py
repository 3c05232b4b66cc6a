"""metrics: the Prometheus text exposition, checked with the reference parser."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter
from survivor.views.metrics import (
    MAX_PAIR_SERIES,
    CheckSample,
    collect,
    escape_label,
    export,
    render_metrics,
    write_textfile,
)
from tests.viewstate import NOW, daemon_doc, full_tree, hold_pidfile, queue_items, state, write_raw

parser = pytest.importorskip("prometheus_client.parser")


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


SAMPLES = [
    CheckSample("web1", "http", 1, 5.0, 2.0),
    CheckSample("web2", "http", 0, 0.1, 0.2),
    CheckSample("web3", "http", 0, 0.3, None),
    CheckSample("db1", "disk", 2, 0.05, 0.5),
    CheckSample("db1", "custom", 25, None, None),
]


def render(**kwargs: Any) -> str:
    return render_metrics(daemon_doc(NOW), queue_items(NOW), SAMPLES, **kwargs)


def test_every_family_has_help_and_type_and_the_prefix() -> None:
    text = render()
    declared = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    helped = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert declared == helped and len(set(declared)) == len(declared)
    assert all(name.startswith("survivor_") for name in declared)
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.startswith("survivor_")
            rest = line[line.rindex("}") + 1 :] if "}" in line else line.split(" ", 1)[1]
            assert len(rest.split()) == 1, line  # a value and no timestamp
            float(rest.replace("+Inf", "inf"))
    parsed = families(text)
    for family in parsed.values():
        assert all(s.timestamp is None for s in family.samples)
    assert text.endswith("\n")


def test_checks_by_code_and_per_pair_status() -> None:
    text = render()
    assert value(text, "survivor_checks", code="OK") == 2
    assert value(text, "survivor_checks", code="PROBLEM") == 1
    assert value(text, "survivor_checks", code="NOTYET") == 0
    assert value(text, "survivor_checks", code="CUSTOM-25") == 1
    assert value(text, "survivor_check_status", check="http", host="web1") == 1
    assert value(text, "survivor_check_status", check="custom", host="db1") == 25
    assert value(text, "survivor_check_status_dropped") == 0


def test_pair_series_are_capped_keeping_problems() -> None:
    text = render(max_pair_series=2)
    status = families(text)["survivor_check_status"]
    assert [(s.labels["host"], s.labels["check"]) for s in status.samples] == [
        ("web1", "http"),
        ("db1", "disk"),
    ]
    assert value(text, "survivor_check_status_dropped") == 3
    assert MAX_PAIR_SERIES == 10_000


def test_duration_and_lag_are_gauges_per_check_without_sum_and_count() -> None:
    # issue 19: typed summary, their _sum/_count were snapshots that rate() misreads.
    text = render()
    for name in ("survivor_check_duration_seconds", "survivor_check_start_lag_seconds"):
        assert families(text)[name].type == "gauge"
        assert f"{name}_sum" not in text and f"{name}_count" not in text
    assert value(text, "survivor_check_duration_seconds", check="http", percentile="50") == 0.3
    assert value(text, "survivor_check_duration_seconds", check="http", percentile="99") == 5.0
    assert value(text, "survivor_check_start_lag_seconds", check="http", percentile="50") == 0.2
    with pytest.raises(AssertionError):
        value(text, "survivor_check_duration_seconds", check="custom")  # never ran


def test_last_run_timestamp_per_pair() -> None:
    text = render_metrics(
        daemon_doc(NOW),
        [],
        [*SAMPLES[:2], CheckSample("web3", "http", 0, 0.3, None, 1_800_000_000.5)],
    )
    family = families(text)["survivor_check_last_run_timestamp_seconds"]
    assert family.type == "gauge"
    assert [(s.labels["host"], s.value) for s in family.samples] == [("web3", 1_800_000_000.5)]


def test_queue_pool_daemon_and_reload() -> None:
    text = render()
    assert value(text, "survivor_queue_items", kind="check", state="running") == 1
    assert value(text, "survivor_queue_items", kind="check", state="queued") == 1
    assert value(text, "survivor_queue_items", kind="fix", state="running") == 0
    assert value(text, "survivor_pool_size", pool="check") == 4
    assert value(text, "survivor_pool_busy", pool="check") == 1
    assert value(text, "survivor_pool_completed_total", pool="check") == 120
    assert value(text, "survivor_daemon_heartbeat_timestamp_seconds") == NOW.timestamp()
    assert value(text, "survivor_config_generation") == 3
    assert value(text, "survivor_config_last_reload_success") == 1
    assert value(text, "survivor_alerts_sent_total") == 0  # no counters in daemon.json yet
    assert value(text, "survivor_info", version="0.1.0", instance="viewtest") == 1


def test_alert_counters_failed_reload_and_disk_from_daemon_json() -> None:
    doc = daemon_doc(
        NOW,
        alerts={"sent": 7, "throttled": 2},
        last_reload={"at": "2026-11-24T09:00:00.000Z", "ok": False, "errors": ["x"]},
        health={"disk": "failing", "disk_errors": 5},
    )
    text = render_metrics(doc, [], [])
    assert value(text, "survivor_alerts_sent_total") == 7
    assert value(text, "survivor_alerts_throttled_total") == 2
    assert value(text, "survivor_config_last_reload_success") == 0
    assert (
        value(text, "survivor_config_last_reload_timestamp_seconds")
        == (NOW - timedelta(hours=1)).timestamp()
    )
    assert value(text, "survivor_disk_failing") == 1
    assert value(text, "survivor_disk_write_errors_total") == 5


def test_label_values_are_escaped() -> None:
    nasty = 'we"b\\1\nx'
    assert escape_label(nasty) == 'we\\"b\\\\1\\nx'
    text = render_metrics(None, [], [CheckSample(nasty, "c", 1, None, None)])
    assert value(text, "survivor_check_status", host=nasty, check="c") == 1


def test_no_daemon_doc_and_junk_fields() -> None:
    text = render_metrics(None, [], [], running=False)
    assert value(text, "survivor_daemon_up") == 0
    assert value(text, "survivor_daemon_heartbeat_timestamp_seconds") == 0
    junk = {"config": [], "pools": {"check": "x", "alert": {"size": "many"}}, "alerts": 3}
    text = render_metrics(junk, [{"kind": None}], [])
    assert value(text, "survivor_pool_size", pool="alert") == 0
    families(text)


def test_collect_reads_the_state_files(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    with hold_pidfile(tree.state):
        text = collect(tree.state, NOW)
    assert value(text, "survivor_daemon_up") == 1
    assert value(text, "survivor_checks", code="PROBLEM") == 1
    assert value(text, "survivor_checks", code="OK") == 3
    assert value(text, "survivor_checks", code="NOTYET") == 0  # db1/ping never ran: no state
    assert value(text, "survivor_check_start_lag_seconds", check="http", percentile="99") == 2.0
    assert value(text, "survivor_queue_items", kind="check", state="running") == 1


def test_collect_on_an_empty_or_broken_state_dir(tmp_path: Path) -> None:
    families(collect(tmp_path / "missing", NOW))
    write_raw(tmp_path / "daemon.json", "{")
    write_raw(tmp_path / "queue.json", {"items": [1, {"kind": "check"}]})
    write_raw(tmp_path / "host" / "h" / "c" / "check.json", {"version": 7})
    text = collect(tmp_path, NOW)
    assert value(text, "survivor_daemon_up") == 0
    assert value(text, "survivor_queue_items", kind="check", state="queued") == 1


def test_export_writes_the_textfile_atomically(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "survivor.prom"
    states = [
        (("http", "web1"), state(1, minutes_ago=1, duration_ms=1500)),
        (("ping", "web1"), state(0, minutes_ago=1)),
    ]
    export(path, FileWriter(FsyncPolicy.NEVER), daemon_doc(NOW), queue_items(NOW), states)
    text = path.read_text()
    assert value(text, "survivor_check_status", check="http", host="web1") == 1
    assert value(text, "survivor_check_duration_seconds", check="http", percentile="50") == 1.5
    ran = state(1, minutes_ago=1, duration_ms=1500).last_start
    assert ran is not None
    assert value(
        text, "survivor_check_last_run_timestamp_seconds", check="http", host="web1"
    ) == pytest.approx(ran.timestamp())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(path.parent)) == ["survivor.prom"]  # no temp file left


def test_textfile_temp_names_are_invisible_to_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace
    temps: list[str] = []

    def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        temps.append(os.path.basename(src))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    write_textfile(tmp_path / "survivor.prom", "x 1\n", FileWriter(FsyncPolicy.NEVER))
    # node_exporter reads only *.prom: the temp file must never look like one.
    assert temps and all(n.startswith(".") and not n.endswith(".prom") for n in temps)
    assert (tmp_path / "survivor.prom").read_text() == "x 1\n"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition() -> None:
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=render(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_downtime_gauge_and_held_counter_from_daemon_json() -> None:
    """Issue 22: held alerts and pairs in downtime, as the alert scheduler counts them."""
    doc = daemon_doc(NOW, alerts={"sent": 1, "held": 4, "in_downtime": 3})
    text = render_metrics(doc, [], [])
    assert value(text, "survivor_alerts_held_total") == 4
    assert value(text, "survivor_pairs_in_downtime") == 3


def test_checks_held_back_by_the_cap_are_exported() -> None:
    doc = daemon_doc(NOW)
    doc["pools"]["check"].update(waiting=250, waiting_s=42)
    text = render_metrics(doc, queue_items(NOW), SAMPLES)
    assert value(text, "survivor_pool_waiting", pool="check") == 250
    assert value(text, "survivor_pool_waiting_seconds", pool="check") == 42
    assert families(text)["survivor_pool_waiting_seconds"].type == "gauge"


def test_broker_and_workers_only_with_remote_workers() -> None:
    assert "survivor_broker_connected" not in render()  # no workers: section, no series
    doc = {
        **daemon_doc(NOW),
        "broker": {"connected": False, "since": None, "server": ""},
        "workers": {"alive": 2, "approved": 3, "breakers_open": 1},
    }
    text = render_metrics(doc, queue_items(NOW), SAMPLES)
    assert value(text, "survivor_broker_connected") == 0
    assert value(text, "survivor_workers_alive") == 2
    assert value(text, "survivor_worker_groups_breaker_open") == 1
