from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from survivor.errors import StateError
from survivor.model.config import FsyncPolicy
from survivor.model.documents import CheckState, Request, RowTexts, encode_with_list
from survivor.model.work import CheckResult, PerfDatum
from survivor.store.fsio import FileWriter
from survivor.store.state import StateStore

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state", FileWriter(FsyncPolicy.NEVER))


def test_advance_counts_consecutive_and_keeps_since() -> None:
    s0 = CheckState()
    r_fail = CheckResult("web1", 1, "down")
    s1 = s0.advance(r_fail, start=NOW, planned=NOW, fingerprint="f", generation=1)
    assert (s1.rc, s1.consecutive, s1.since) == (1, 1, NOW)
    later = datetime(2026, 11, 24, 10, 6, tzinfo=UTC)
    s2 = s1.advance(r_fail, start=later, planned=later, fingerprint="f", generation=1)
    assert (s2.consecutive, s2.since, s2.last_start) == (2, NOW, later)
    s3 = s2.advance(
        CheckResult("web1", 0), start=later, planned=later, fingerprint="f", generation=2
    )
    assert (s3.rc, s3.consecutive, s3.since, s3.generation) == (0, 1, later, 2)


def test_check_state_round_trips_through_the_file(tmp_path: Path) -> None:
    st = store(tmp_path)
    state = CheckState(
        rc=2,
        since=NOW,
        consecutive=3,
        last_start=NOW,
        last_planned=NOW,
        duration_ms=12,
        scalar=81.5,
        comment="disk 81% full",
        perfdata=(PerfDatum("used", 81.5, "%", "80", "90", 0.0, 100.0),),
        fingerprint="3f9a1c0e7b2d",
        generation=14,
        long_output="/ 81%\n/var 40%",
    )
    st.write_check("web1", "disk", state)
    doc = json.loads((tmp_path / "state/host/web1/disk/check.json").read_text())
    assert doc["version"] == 1 and doc["code"] == "WARNING" and doc["since"].endswith("Z")
    assert doc["long_output"] == "/ 81%\n/var 40%"
    assert st.read_check("web1", "disk") == state


def test_check_json_without_long_output_still_reads(tmp_path: Path) -> None:
    """Files written before `long_output` existed (and states without any) lack the field."""
    st = store(tmp_path)
    st.write_check("web1", "disk", CheckState(rc=0, comment="fine"))
    path = tmp_path / "state/host/web1/disk/check.json"
    doc = json.loads(path.read_text())
    assert "long_output" not in doc
    read = st.read_check("web1", "disk")
    assert read is not None and read.long_output == "" and read.comment == "fine"
    assert CheckState.from_dict_lenient({**doc, "long_output": "a\nb"})[0].long_output == "a\nb"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[1, 2]",
        b'{"version": 99, "rc": 0}',
        b'{"version": 1}',
        # issue 23 item 4: these killed the daemon at start
        b'{"version": 1, "rc": 1, "since": "2026-11-24T10:05:00.000Z", "consecutive": 1e400}',
        b'{"version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_bad_state_files_are_moved_aside_by_the_daemon(tmp_path: Path, content: bytes) -> None:
    st = store(tmp_path)
    path = tmp_path / "state/host/web1/ping/check.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert st.load_checks(NOW) == {}
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["check.json.corrupt-20261124T100500Z"]


def test_reader_reports_without_moving(tmp_path: Path) -> None:
    st = store(tmp_path)
    path = tmp_path / "state/host/web1/ping/check.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{")
    with pytest.raises(StateError):
        st.read_check("web1", "ping")
    assert path.exists()


def test_prune_removes_only_unconfigured_pairs(tmp_path: Path) -> None:
    st = store(tmp_path)
    for host, check in [("web1", "ping"), ("web1", "http"), ("db1", "ping")]:
        st.write_check(host, check, CheckState())
    removed = st.prune({("ping", "web1")})
    assert sorted(removed) == [("http", "web1"), ("ping", "db1")]
    assert (tmp_path / "state/host/web1/ping/check.json").exists()
    assert not (tmp_path / "state/host/db1").exists()


def test_requests_are_taken_once_in_order(tmp_path: Path) -> None:
    st = store(tmp_path)
    for i in range(3):
        st.submit_request(
            Request(
                id=f"r{i}", action="reschedule", user="alice", at=NOW, host="web1", check="ping"
            )
        )
    (st.layout.requests / "junk.json").write_text("{")
    taken = st.take_requests(NOW)
    assert [r.id for r in taken] == ["r0", "r1", "r2"]
    assert st.take_requests(NOW) == []


def test_sweep_removes_temps_left_by_a_crashed_writer(tmp_path: Path) -> None:
    st = store(tmp_path)
    st.write_check("web1", "ping", CheckState())
    pair = tmp_path / "state/host/web1/ping"
    (pair / ".check.json.999999.12345.tmp").write_text('{"half')
    assert st.sweep_temps(datetime.now(UTC), min_age=300) == 0  # may be a writer at work
    assert st.sweep_temps(datetime.now(UTC), min_age=-1) == 1
    assert sorted(p.name for p in pair.iterdir()) == ["check.json"]


def test_utc_iso_is_milliseconds_and_z_from_any_zone() -> None:
    from datetime import timedelta, timezone

    from survivor.clock import parse_iso, utc_iso

    t = datetime(2026, 3, 29, 2, 30, 5, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert utc_iso(t) == "2026-03-29T00:30:05.123Z"
    assert utc_iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert parse_iso(utc_iso(t)) == t.replace(microsecond=123000)


def test_a_bad_call_list_state_is_moved_aside_for_the_daemon_and_reported_to_readers(
    tmp_path: Path,
) -> None:
    from survivor.model.documents import CallListState

    st = store(tmp_path)
    st.write_calllist("oncall", CallListState(on_call="alice", members=("alice", "bob")))
    assert st.read_calllist("oncall") == st.load_calllist("oncall", NOW)
    path = tmp_path / "state/calllist/oncall.json"
    path.write_text('{"version": 1, "last_rotation": "not a time"}')
    with pytest.raises(StateError):
        st.read_calllist("oncall")  # a reader reports, moves nothing
    assert path.exists()
    assert st.load_calllist("oncall", NOW) is None  # the daemon starts the list afresh
    assert [p.name for p in path.parent.iterdir() if p.name.startswith("oncall")] == [
        "oncall.json.corrupt-20261124T100500Z"
    ]


def test_queue_json_from_row_texts_is_the_document_encoded_whole(tmp_path: Path) -> None:
    """queue.json's rows are encoded once per row object (RowTexts): the file says what
    encoding the whole document says, a new row object shows its new content, and a
    row gone from the list is forgotten."""
    store = StateStore(tmp_path, FileWriter())
    rows: list[dict[str, object]] = [
        {"id": "c1", "hosts": ["web1"], "pid": None, "comment": "é"},
        {"id": "c2", "hosts": ["db1"], "pid": 7},
    ]
    head = {"version": 1, "updated": "2026-12-07T22:00:00.000Z", "pid": 1, "scheduled": {}}
    texts = RowTexts()
    for _ in range(2):
        store.write_queue_text(head, texts.join(rows))
        assert json.loads((tmp_path / "queue.json").read_bytes()) == {**head, "items": rows}
    rows[0] = {**rows[0], "pid": 99}  # a new object: encoded again
    store.write_queue_text(head, texts.join(rows[:1]))
    assert json.loads((tmp_path / "queue.json").read_bytes())["items"] == [rows[0]]
    assert encode_with_list({}, "items", texts.join([])) == b'{"items":[]}\n'
