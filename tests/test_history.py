from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from survivor.model.config import FsyncPolicy
from survivor.store import history as history_module
from survivor.store.fsio import FileWriter
from survivor.store.history import BadLine, HistoryStore, read_records, read_records_backwards

T1 = datetime(2026, 10, 31, 23, 59, 59, 900000, tzinfo=UTC)
T2 = datetime(2026, 11, 1, 0, 0, 1, tzinfo=UTC)


def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history", FileWriter(FsyncPolicy.NEVER))


def test_records_go_to_the_utc_month_of_t(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0, "fp": "a"})
    h.append("web1", "ping", "check", T2, {"rc": 1, "fp": "a"})
    d = tmp_path / "history" / "host" / "web1" / "ping"
    assert sorted(p.name for p in d.iterdir()) == ["check-2026-10.jsonl", "check-2026-11.jsonl"]
    records = list(h.read("web1", "ping"))
    assert [r["rc"] for r in records] == [0, 1]
    assert records[0]["t"] == "2026-10-31T23:59:59.900Z"
    assert records[0]["v"] == 1


def test_torn_last_line_is_skipped_and_bad_lines_reported(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T2, {"rc": 0})
    path = h.pair_file("web1", "ping", "check", T2)
    with path.open("ab") as fh:
        fh.write(b"garbage line\n")
        fh.write(b'{"v": 1, "t": "2026-11-01T00:00:02.000Z", "rc": 1}\n')
        fh.write(b'{"v": 1, "t": "2026-11-01T00:0')  # torn by a crash
    bad: list[BadLine] = []
    records = list(h.read("web1", "ping", bad=bad))
    assert [r["rc"] for r in records] == [0, 1]
    assert [(b.lineno, b.text) for b in bad] == [(2, "garbage line")]


def test_since_filters_by_time(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    h.append("web1", "ping", "check", T2, {"rc": 1})
    assert [r["rc"] for r in h.read("web1", "ping", since=T2)] == [1]


def test_archive_compresses_in_place_and_stays_readable(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    h.append("web1", "ping", "check", T2, {"rc": 1})
    before = list(h.read("web1", "ping"))
    done = h.archive("2026-11")
    assert [p.name for p in done] == ["check-2026-10.jsonl.gz"]
    d = tmp_path / "history" / "host" / "web1" / "ping"
    assert sorted(p.name for p in d.iterdir()) == ["check-2026-10.jsonl.gz", "check-2026-11.jsonl"]
    assert list(h.read("web1", "ping")) == before
    assert gzip.decompress((d / "check-2026-10.jsonl.gz").read_bytes()).count(b"\n") == 1


def test_a_record_appended_after_archiving_is_read_and_folded_in(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    h.archive("2026-11")
    h.append("web1", "ping", "check", T1, {"rc": 1})  # a straggler of the archived month
    assert [r["rc"] for r in h.read("web1", "ping")] == [0, 1]
    h.archive("2026-11")
    d = tmp_path / "history" / "host" / "web1" / "ping"
    assert [p.name for p in d.iterdir()] == ["check-2026-10.jsonl.gz"]
    assert [r["rc"] for r in h.read("web1", "ping")] == [0, 1]


def test_archive_after_a_crash_between_gzip_and_unlink_keeps_one_copy(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    d = tmp_path / "history" / "host" / "web1" / "ping"
    plain = (d / "check-2026-10.jsonl").read_bytes()
    (d / "check-2026-10.jsonl.gz").write_bytes(gzip.compress(plain))  # the crash's leftovers
    assert [r["rc"] for r in h.read("web1", "ping")] == [0]  # not twice
    h.archive("2026-11")
    assert [r["rc"] for r in h.read("web1", "ping")] == [0]


def test_a_record_appended_while_archiving_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    real = HistoryStore._write_archive
    appended: list[bool] = []

    def daemon_appends_meanwhile(self: HistoryStore, target: Path, data: bytes) -> None:
        real(self, target, data)
        if not appended:  # between compressing and moving the plain file away
            appended.append(True)
            h.append("web1", "ping", "check", T1, {"rc": 1})

    monkeypatch.setattr(HistoryStore, "_write_archive", daemon_appends_meanwhile)
    h.archive("2026-11")
    d = tmp_path / "history" / "host" / "web1" / "ping"
    assert sorted(p.name for p in d.iterdir()) == ["check-2026-10.jsonl.gz"]
    assert [r["rc"] for r in h.read("web1", "ping")] == [0, 1]


def test_prune_deletes_old_months_keeps_events_and_records_itself(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append("web1", "ping", "check", T1, {"rc": 0})
    h.append("web1", "ping", "alert", T1, {"rc": 0})
    h.append("web1", "ping", "check", T2, {"rc": 1})
    h.append_event(T1, "start", pid=1)
    h.archive("2026-11")
    removed = h.prune("2026-11", user="alice", t=T2)
    assert sorted(p.name for p in removed) == ["alert-2026-10.jsonl.gz", "check-2026-10.jsonl.gz"]
    assert [r["rc"] for r in h.read("web1", "ping")] == [1]
    events = list(h.read_events())
    assert [e["event"] for e in events] == ["start", "prune"]
    assert events[1]["user"] == "alice" and events[1]["before"] == "2026-11"
    assert sorted(events[1]["files"]) == [
        "host/web1/ping/alert-2026-10.jsonl.gz",
        "host/web1/ping/check-2026-10.jsonl.gz",
    ]
    assert h.prune("2026-11", user="alice", t=T2) == []
    assert len(list(h.read_events())) == 2  # nothing deleted, nothing recorded


def test_events_and_calllists(tmp_path: Path) -> None:
    h = store(tmp_path)
    h.append_event(T2, "start", pid=42)
    h.append_calllist("oncall", T2, {"person": "alice"})
    assert [e["event"] for e in h.read_events()] == ["start"]
    assert [r["person"] for r in h.read_calllist("oncall")] == ["alice"]


def test_read_records_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert list(read_records(tmp_path / "nope.jsonl")) == []


# --------------------------------------------------------------------------- reading a lot


@pytest.mark.parametrize("block", [7, 64, 65536])
@pytest.mark.parametrize(
    "tail",
    [b"", b'{"v": 1, "t": "2026-11-01T00:0', b"x" * 300],  # complete, torn record, torn long
)
def test_reading_backwards_gives_the_records_in_reverse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, tail: bytes
) -> None:
    monkeypatch.setattr(history_module, "BACKWARD_BLOCK", block)
    path = tmp_path / "check-2026-11.jsonl"
    lines = [json.dumps({"n": n, "pad": "p" * (n * 37 % 200)}).encode() for n in range(50)]
    lines.insert(20, b"not json")
    path.write_bytes(b"\n".join(lines) + b"\n" + tail)
    forward_bad: list[BadLine] = []
    backward_bad: list[BadLine] = []
    forward = list(read_records(path, forward_bad))
    backward = list(read_records_backwards(path, backward_bad))
    assert (
        [r["n"] for r in backward] == [r["n"] for r in reversed(forward)] == list(range(49, -1, -1))
    )
    assert [b.text for b in backward_bad] == [b.text for b in forward_bad] == ["not json"]


class CountingFile(io.BufferedReader):
    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data


def test_the_last_few_records_of_a_long_history_read_only_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`history --limit 10` read a whole year (535k records, 570 MB of memory) to show 10."""
    h = store(tmp_path)
    d = h.pair_dir("web1", "ping")
    d.mkdir(parents=True)
    for month, fp in (("2026-10", "a"), ("2026-11", "b")):
        with (d / f"check-{month}.jsonl").open("wb") as fh:
            for n in range(20_000):
                t = f"{month}-15T10:{n // 1000 % 60:02d}:{n % 60:02d}.000Z"
                fh.write(json.dumps({"v": 1, "t": t, "n": n, "fp": fp}).encode() + b"\n")
    size = sum(p.stat().st_size for p in d.iterdir())
    monkeypatch.setattr(
        history_module,
        "open",
        lambda path, mode: CountingFile(io.FileIO(path, mode)),
        raising=False,
    )
    CountingFile.read_bytes = 0
    last = h.read_latest("web1", "ping", "check", 3)
    assert [(r["fp"], r["n"]) for r in last] == [("b", 19_997), ("b", 19_998), ("b", 19_999)]
    assert CountingFile.read_bytes < size / 20
    # a filter that only the older month meets: read back across the month boundary
    older = h.read_latest("web1", "ping", "check", 2, keep=lambda r: r["fp"] == "a")
    assert [(r["fp"], r["n"]) for r in older] == [("a", 19_998), ("a", 19_999)]
