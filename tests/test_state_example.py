"""state-example/ is in exactly the on-disk format: the daemon's readers read it, and the
builder (tests/state_example.py, which uses the daemon's writers) reproduces it byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from survivor.model.config import FsyncPolicy
from survivor.model.documents import Ack, AlertState, CallListState, Inhibit
from survivor.store.fsio import FileWriter
from survivor.store.history import BadLine, HistoryStore
from survivor.store.state import StateStore
from tests.conftest import REPO
from tests.state_example import build

EXAMPLE = REPO / "state-example"


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_committed_example_matches_the_builder(tmp_path: Path) -> None:
    build(tmp_path / "ex")
    assert tree_bytes(tmp_path / "ex") == tree_bytes(EXAMPLE)


def test_the_daemon_reads_the_example() -> None:
    now = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
    writer = FileWriter(FsyncPolicy.NEVER)
    state = StateStore(EXAMPLE / "state", writer)
    checks = state.load_checks(now)
    assert len(checks) == 6
    assert checks[("disk", "db1")].code == "PROBLEM"
    assert all(s.code == "OK" for k, s in checks.items() if k != ("disk", "db1"))
    alert = AlertState.from_dict(state.read_pair_doc("db1", "disk", "alert") or {})
    ack = Ack.from_dict(state.read_pair_doc("db1", "disk", "ack") or {})
    assert (alert.alerts_sent, ack.user, ack.about_rc) == (2, "alice", 1)
    inhibit = Inhibit.from_dict(state.read_pair_doc("web2", "http", "inhibit") or {})
    assert inhibit.active(now)
    doc = (EXAMPLE / "state/calllist/oncall.json").read_bytes()
    assert CallListState.from_dict(json.loads(doc)).on_call == "bob"
    history = HistoryStore(EXAMPLE / "history", writer)
    bad: list[BadLine] = []
    records = list(history.read("web1", "http", bad=bad))
    assert not bad and len(records) > 500
    assert records[0]["fp"] != records[-1]["fp"]  # two incarnations
    assert {r["event"] for r in history.read_events()} == {"start", "reload"}
