"""statusview: rows, summaries and daemon health from state files, whatever shape they are in."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survivor.clock import utc_iso
from survivor.model.codes import ReturnCode, urgency
from survivor.model.documents import CheckState
from survivor.views.health import daemon_health
from survivor.views.rows import age_text, count_by_code, queue_by_host, queue_rows
from survivor.views.snapshot import host_detail, read_snapshot, status_lines, summary
from tests.viewstate import NOW, daemon_doc, empty_tree, full_tree, hold_pidfile, write_raw

CONFIGURED = {
    ("web1", "ping"),
    ("web1", "http"),
    ("web2", "ping"),
    ("web2", "http"),
    ("db1", "ping"),
    ("db1", "disk"),
}


# --------------------------------------------------------------------------- pure pieces


def test_codes_sort_problems_first_and_ok_last() -> None:
    order = sorted([0, 7, 2, 25, 3, 1, 4, 5, 6], key=urgency)
    assert order == [1, 5, 4, 2, 25, 3, 6, 7, 0]


def test_age_text_past_future_and_never() -> None:
    assert age_text(NOW - timedelta(seconds=30), NOW) == "30s ago"
    assert age_text(NOW - timedelta(minutes=5), NOW) == "5m ago"
    assert age_text(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert age_text(NOW - timedelta(days=4), NOW) == "4d ago"
    assert age_text(NOW + timedelta(minutes=3), NOW) == "in 3m"
    assert age_text(None, NOW) == "never"


def test_lenient_state_reads_the_current_version_exactly() -> None:
    doc = {"version": 1, "rc": 1, "since": utc_iso(NOW), "consecutive": 4, "comment": "down"}
    state, why = CheckState.from_dict_lenient(doc)
    assert why is None
    assert (state.rc, state.consecutive, state.since, state.comment) == (1, 4, NOW, "down")


def test_lenient_state_keeps_what_an_older_or_newer_version_says() -> None:
    state, why = CheckState.from_dict_lenient(
        {"version": 0, "code": "WARNING", "last_start": "2026-11-24T09:00:00Z", "scalar": "3.5"}
    )
    assert state.rc == ReturnCode.WARNING and state.scalar == 3.5
    assert state.last_start == NOW - timedelta(hours=1)
    assert why is not None and "version 0" in why
    custom, _ = CheckState.from_dict_lenient({"version": 9, "code": "CUSTOM-25"})
    assert custom.rc == 25


def test_lenient_state_survives_wrong_types() -> None:
    state, why = CheckState.from_dict_lenient(
        {"version": 1, "rc": "x", "since": 5, "perfdata": [{"nolabel": 1}], "consecutive": None}
    )
    assert why is not None
    assert state.rc == ReturnCode.NOTYET and state.perfdata == () and state.consecutive == 0


PLAIN = {
    "version": 1,
    "rc": 2,
    "code": "CRITICAL",
    "since": "2026-11-24T09:00:00.412Z",
    "consecutive": 5,
    "last_start": "2026-11-24T10:04:00.000Z",
    "last_planned": "2026-11-24T10:04:00.000Z",
    "duration_ms": 8,
    "scalar": 2.18,
    "comment": "down",
    "perfdata": [{"label": "rtt", "value": 2.18, "uom": "ms", "warn": "200", "crit": "1000"}],
    "next_due": "2026-11-24T10:05:00.000Z",
    "fingerprint": "5d1c0f2a9b44",
    "generation": 8,
    "reschedule": False,
}
ODD_VALUES = [
    None,
    "",
    "x",
    0,
    3,
    -1,
    1.5,
    10**400,
    True,
    [],
    {},
    [{"label": 1, "value": 3}],
    "2026-11-24T10:00:00Z",
    "2026-11-24T10:00:00.123456+02:00",
    "2026-11-24T10:00",
]


def _read_both(doc: dict[str, object]) -> None:
    """A row read straight from the document (CheckRow.read) shows what one built from
    CheckState.from_dict_lenient shows: every field, the error, the JSON and the text."""
    from survivor.views.rows import CheckRow

    row, why = CheckRow.read("h", "c", doc, acked=True)
    state, expected_why = CheckState.from_dict_lenient(doc)
    built = CheckRow("h", "c", None, state.rc, state.since, state.last_start, True, _state=state)
    assert why == expected_why
    assert row.to_dict(NOW) == built.to_dict(NOW)
    assert json.dumps(row.to_dict(NOW)) == json.dumps(built.to_dict(NOW))  # 3 is not 3.0
    fields = ("rc", "code", "since", "last_start", "consecutive", "scalar", "comment", "problem")
    assert [getattr(row, f) for f in fields] == [getattr(built, f) for f in fields]
    assert repr(row.scalar) == repr(built.scalar)
    snap = read_snapshot(Path("/nonexistent"), NOW)
    assert status_lines(snap, [row]) == status_lines(snap, [built])
    assert row.state == state


def test_rows_read_straight_from_check_json_show_what_a_check_state_shows() -> None:
    _read_both(PLAIN)
    _read_both({"version": 1, "rc": 0})
    for key in [*PLAIN, "long_output"]:
        for value in ODD_VALUES:
            _read_both({**PLAIN, key: value})
        _read_both({k: v for k, v in PLAIN.items() if k != key})
    for item in ({}, {"label": "a"}, {"label": "a", "value": 10**400}, {"label": "a", "min": "1"}):
        _read_both({**PLAIN, "perfdata": [item]})


@settings(max_examples=200)
@given(
    changes=st.dictionaries(
        st.sampled_from([*PLAIN, "long_output"]),
        st.one_of(st.sampled_from(ODD_VALUES), st.integers(), st.floats(), st.text(max_size=30)),
        max_size=4,
    )
)
def test_any_check_json_reads_the_same_straight_or_as_a_check_state(
    changes: dict[str, object],
) -> None:
    _read_both({**PLAIN, **changes})


def test_queue_rows_skip_what_is_not_an_item_and_put_running_first() -> None:
    doc = {
        "items": [
            {"id": "q1", "state": "queued", "planned": NOW.timestamp(), "hosts": ["a"]},
            "garbage",
            {"no": "id"},
            {"id": "r1", "state": "running", "started": NOW.timestamp(), "hosts": ["a", "b"]},
            {"id": "odd", "hosts": "not-a-list", "pid": "12"},
        ]
    }
    rows, errors = queue_rows(doc)
    assert [r.id for r in rows] == ["r1", "q1", "odd"]
    assert len(errors) == 2
    assert rows[2].hosts == () and rows[2].pid == 12
    by_host = queue_by_host(rows)
    assert [r.id for r in by_host["a"]] == ["r1", "q1"] and [r.id for r in by_host["b"]] == ["r1"]
    assert queue_rows({"items": "nope"})[1] == ["queue.json: no list of items"]
    assert queue_rows(None) == ([], [])


# --------------------------------------------------------------------------- daemon health


def test_daemon_health_of_a_live_daemon_is_ok() -> None:
    health = daemon_health(daemon_doc(NOW), 4242, NOW + timedelta(seconds=10))
    assert health.running and health.level == "ok" and not health.heartbeat_stale
    lines = health.lines(NOW)
    assert lines[0].startswith("daemon: running, pid 4242, generation 3")
    assert any(line.startswith("pool check: 1 of 4 workers busy") for line in lines)


def test_daemon_health_flags_a_hung_daemon() -> None:
    health = daemon_health(daemon_doc(NOW), 4242, NOW + timedelta(minutes=5))
    assert health.heartbeat_stale and health.level == "problem"
    assert "STALE" in health.lines(NOW + timedelta(minutes=5))[0]


def test_daemon_health_without_a_daemon() -> None:
    gone = daemon_health(daemon_doc(NOW), None, NOW + timedelta(hours=2))
    assert not gone.running and gone.level == "problem"
    assert gone.lines(NOW + timedelta(hours=2))[0] == "daemon: NOT RUNNING (last seen 2h ago)"
    never = daemon_health(None, None, NOW)
    assert never.lines(NOW) == ["daemon: NOT RUNNING"]
    starting = daemon_health(None, 99, NOW)
    assert starting.running and not starting.heartbeat_stale


def test_daemon_health_reports_stale_config_failed_reload_and_disk() -> None:
    doc = daemon_doc(
        NOW,
        last_reload={"at": utc_iso(NOW), "ok": False, "errors": ["etc/x.yaml:3: bad"]},
        health={"disk": "failing", "last_disk_error": "cannot write x: No space left"},
    )
    doc["config"]["stale"] = True
    health = daemon_health(doc, 1, NOW)
    text = "\n".join(health.lines(NOW))
    assert "CHANGED ON DISK" in text
    assert "last reload FAILED" in text and "  etc/x.yaml:3: bad" in text
    assert "disk: FAILING: cannot write x: No space left" in text
    assert health.level == "problem"
    doc["health"] = {"disk": "ok"}
    assert daemon_health(doc, 1, NOW).level == "warning"


def test_daemon_health_ignores_junk_fields() -> None:
    junk = {"config": "x", "pools": [1], "health": 3, "updated": 12, "last_reload": "no"}
    health = daemon_health(junk, None, NOW)
    assert health.generation is None and health.pools == {} and health.last_reload is None
    assert health.to_dict(NOW)["running"] is False


# --------------------------------------------------------------------------- reading trees


def test_full_tree_snapshot(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    with hold_pidfile(tree.state):
        snap = read_snapshot(tree.state, NOW, configured=CONFIGURED)
    assert snap.daemon.running and snap.errors == ()
    assert [(r.host, r.check, r.code) for r in snap.rows] == [
        ("web1", "http", "PROBLEM"),
        ("db1", "disk", "WARNING"),
        ("db1", "ping", "NOTYET"),
        ("web1", "ping", "OK"),
        ("web2", "http", "OK"),
        ("web2", "ping", "OK"),
    ]
    http = snap.row("web1", "http")
    assert http is not None and http.acked and not http.inhibited and http.configured
    disk = snap.row("db1", "disk")
    assert disk is not None and disk.inhibited and not disk.acked
    never = snap.row("db1", "ping")
    assert never is not None and not never.present
    assert count_by_code(snap.rows) == {"PROBLEM": 1, "WARNING": 1, "NOTYET": 1, "OK": 3}
    assert [q.id for q in snap.queue_of("web1")] == ["c1f2a", "c1f2b"]
    assert [q.id for q in snap.queue_of("web2", "ping")] == ["c1f2b"]


def test_summary_and_host_detail_are_json_ready(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    snap = read_snapshot(tree.state, NOW, configured=CONFIGURED)
    s = summary(snap)
    json.dumps(s)
    assert s["total"] == 6 and s["problem_count"] == 2
    assert [p["check"] for p in s["problems"]] == ["http", "disk"]
    assert [h["host"] for h in s["hosts"]] == ["web1", "db1", "web2"]  # worst host first
    assert s["queue"] == {"running": 1, "queued": 1}
    d = host_detail(snap, "web1")
    json.dumps(d)
    assert [c["check"] for c in d["checks"]] == ["http", "ping"]
    assert [q["id"] for q in d["queue"]] == ["c1f2a", "c1f2b"]
    assert d["ran"][0]["last_age"] == "60s ago"


def test_unconfigured_state_is_marked(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    snap = read_snapshot(tree.state, NOW, configured={("web1", "ping")})
    assert {(r.host, r.check) for r in snap.rows if r.configured} == {("web1", "ping")}
    assert len(snap.rows) == 5


def test_hosts_filter_reads_only_that_host(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    write_raw(tree.state / "host" / "web2" / "ping" / "check.json", "{broken")
    snap = read_snapshot(tree.state, NOW, configured=CONFIGURED, hosts={"web1"})
    assert {r.host for r in snap.rows} == {"web1"} and snap.errors == ()


def test_status_lines_show_flags_and_cut_to_width(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    snap = read_snapshot(tree.state, NOW)
    lines = status_lines(snap, snap.rows)
    assert lines[0].startswith("web1  http  PROBLEM   x30")
    assert " ACK " in lines[0] and " INHIBITED " in lines[1]
    assert all(len(line) <= 40 for line in status_lines(snap, snap.rows, width=40))


# --------------------------------------------------------------------------- damaged trees


def test_missing_state_dir_is_an_empty_view(tmp_path: Path) -> None:
    snap = read_snapshot(tmp_path / "nothing", NOW, configured={("h", "c")})
    assert not snap.daemon.running and snap.queue == [] and snap.errors == ()
    assert [(r.host, r.check, r.code, r.present) for r in snap.rows] == [
        ("h", "c", "NOTYET", False)
    ]
    json.dumps(summary(snap))


def test_partly_written_and_foreign_files_do_not_raise(tmp_path: Path) -> None:
    tree = empty_tree(tmp_path)
    state = tree.state
    write_raw(state / "daemon.json", "[1, 2")
    write_raw(state / "queue.json", '"a string"')
    write_raw(state / "host" / "web1" / "ping" / "check.json", b"\xff\xfe garbage")
    write_raw(state / "host" / "web1" / "http" / ".check.json-abc.tmp", "{")
    write_raw(state / "host" / "web1" / "disk" / "check.json", {"version": 0, "rc": 2})
    write_raw(state / "host" / "web1" / "disk" / "ack.json", "not json")
    write_raw(state / "host" / "web2" / "ping" / "check.json.corrupt-20261124T100000Z", "x")
    (state / "host" / "web3").mkdir(parents=True)
    write_raw(state / "host" / ".hidden" / "x" / "check.json", {"version": 1, "rc": 1})
    write_raw(state / "host" / "stray-file", "x")
    (state / "host" / "db1" / "ping" / "check.json").mkdir(parents=True)
    snap = read_snapshot(state, NOW)
    json.dumps(summary(snap))
    by_pair = {(r.host, r.check): r for r in snap.rows}
    assert ".hidden" not in {h for h, _ in by_pair}
    assert by_pair[("web1", "ping")].error and by_pair[("web1", "ping")].code == "NOTYET"
    assert not by_pair[("web1", "http")].present
    disk = by_pair[("web1", "disk")]
    assert disk.code == "WARNING" and disk.error and "version 0" in disk.error
    assert "is a directory" in (by_pair[("db1", "ping")].error or "")
    assert any("daemon.json" in e for e in snap.errors)
    assert any("queue.json" in e for e in snap.errors)
    assert snap.daemon.error is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
documents = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "version": json_values,
            "rc": json_values,
            "code": json_values,
            "since": json_values,
            "updated": json_values,
            "items": st.lists(
                st.dictionaries(
                    st.sampled_from(["id", "state", "hosts", "started", "planned", "pid"]),
                    json_values,
                ),
                max_size=3,
            ),
            "config": json_values,
            "pools": json_values,
            "perfdata": json_values,
            "until": json_values,
        },
    ).map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(daemon=documents, queue=documents, check=documents, inhibit=documents)
def test_any_file_content_gives_a_view_not_a_traceback(
    daemon: bytes, queue: bytes, check: bytes, inhibit: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        write_raw(state / "daemon.json", daemon)
        write_raw(state / "queue.json", queue)
        write_raw(state / "host" / "h" / "c" / "check.json", check)
        write_raw(state / "host" / "h" / "c" / "inhibit.json", inhibit)
        snap = read_snapshot(state, NOW, configured={("h", "c")})
        json.dumps(summary(snap), default=str)
        json.dumps(host_detail(snap, "h"), default=str)
        status_lines(snap, snap.rows)
        snap.daemon.lines(NOW)
        assert len(snap.rows) == 1


def test_next_due_reads_as_a_time_to_come_or_overdue() -> None:
    """`next due` said `0s ago` for a run due this minute (its slot still ahead)."""
    from survivor.views.rows import due_text

    now = datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)
    assert due_text(now + timedelta(minutes=3), now) == "in 3m"
    assert due_text(now - timedelta(seconds=20), now) == "now"
    assert due_text(now - timedelta(minutes=5), now) == "overdue 5m"


def test_alert_records_on_the_web_name_people_not_python_reprs() -> None:
    from survivor.views.web.source import _record

    line = _record(
        {
            "t": "2026-11-24T10:00:00.000Z",
            "via": "mail",
            "ok": True,
            "recipients": [{"person": "alice", "address": "a@x", "via": "mail", "calllist": "h"}],
        }
    )["summary"]
    assert "recipients=alice (mail)" in line and "ok=yes" in line and "{" not in line


def test_daemon_health_says_how_many_checks_wait_for_room_and_how_long() -> None:
    doc = daemon_doc(NOW)
    quiet = daemon_health(doc, 4242, NOW + timedelta(seconds=10)).lines(NOW)
    assert not any("WAITING" in line for line in quiet)
    doc["pools"]["check"].update(waiting=250, waiting_s=42)
    health = daemon_health(doc, 4242, NOW + timedelta(seconds=10))
    assert any(
        line.startswith("pool check: 1 of 4 workers busy")
        and line.endswith("; 250 WAITING for room, the oldest 42s")
        for line in health.lines(NOW)
    )
    assert health.to_dict(NOW)["pools"]["check"]["waiting"] == 250  # status --json
