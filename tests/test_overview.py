"""overview.json (store/overview.py): the views read one file the daemon writes instead of
every pair's files, only while it is fresh, and show exactly what the files would."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from survivor.clock import utc_iso
from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter
from survivor.store.overview import read_marks
from survivor.store.state import StateStore
from survivor.views.snapshot import OVERVIEW_FRESH_S, read_snapshot, summary
from tests.viewstate import NOW, full_tree, hold_pidfile, state, write_raw

CONFIGURED = {
    ("web1", "ping"),
    ("web1", "http"),
    ("web2", "ping"),
    ("web2", "http"),
    ("db1", "ping"),
    ("db1", "disk"),
}


def daemon_store(state_dir: Path) -> StateStore:
    """The daemon's StateStore as wiring makes it: keeps check.json for overview.json."""
    store = StateStore(state_dir, FileWriter(FsyncPolicy.NEVER))
    keeper = store.keep_overview()
    store.load_checks(NOW)
    keeper.rescan_silencers()
    return store


def write_overview(store: StateStore, pid: int, *, age_s: float = 0.0) -> None:
    assert store.overview is not None
    assert store.overview.write(pid, utc_iso(NOW - timedelta(seconds=age_s)), force=True)


def test_the_overview_shows_exactly_what_the_files_show(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    store = daemon_store(tree.state)
    with hold_pidfile(tree.state) as pid:
        files = read_snapshot(tree.state, NOW, configured=CONFIGURED)
        write_overview(store, pid)
        fast = read_snapshot(tree.state, NOW, configured=CONFIGURED)
    assert fast.rows == files.rows
    assert summary(fast) == summary(files)
    assert any(r.acked for r in fast.rows) and any(r.inhibited for r in fast.rows)


def test_a_fresh_overview_is_read_instead_of_the_files(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    store = daemon_store(tree.state)
    # A check.json the daemon did not write (so not in its overview): while the overview
    # is fresh it is not read; it is the moment the overview is not.
    write_raw(tree.state / "host" / "web2" / "ping" / "check.json", {"version": 1, "rc": 1})
    with hold_pidfile(tree.state) as pid:
        write_overview(store, pid)
        assert _code(tree.state, "web2", "ping") == "OK"
        write_overview(store, pid, age_s=OVERVIEW_FRESH_S + 1)  # the daemon stopped writing
        assert _code(tree.state, "web2", "ping") == "PROBLEM"
        write_overview(store, pid + 1)  # written by another daemon
        assert _code(tree.state, "web2", "ping") == "PROBLEM"
    write_overview(store, os.getpid())  # no daemon holds the pidfile
    assert _code(tree.state, "web2", "ping") == "PROBLEM"


def test_what_the_daemon_writes_reaches_the_overview(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    store = daemon_store(tree.state)
    keeper = store.overview
    assert keeper is not None
    with hold_pidfile(tree.state) as pid:
        write_overview(store, pid)
        assert not keeper.write(pid, utc_iso(NOW))  # nothing changed: not rewritten
        store.write_check("web2", "ping", state(1, minutes_ago=0, comment="down"))
        assert keeper.write(pid, utc_iso(NOW))
        os.unlink(tree.state / "host" / "web2" / "ping" / "check.json")  # read from overview
        assert _code(tree.state, "web2", "ping") == "PROBLEM"
        store.prune(CONFIGURED - {("web2", "ping")})
        assert keeper.write(pid, utc_iso(NOW))
        snap = read_snapshot(tree.state, NOW)
    assert ("web2", "ping") not in {(r.host, r.check) for r in snap.rows}


def test_a_command_marks_the_pair_until_the_daemon_has_it(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    daemon = daemon_store(tree.state)
    cli = StateStore(tree.state, FileWriter(FsyncPolicy.NEVER))  # as `survivor ack` has it
    ack = {"version": 1, "user": "op", "at": utc_iso(NOW), "comment": "seen", "about_rc": 0}
    with hold_pidfile(tree.state) as pid:
        write_overview(daemon, pid)
        cli.write_pair_doc("web2", "ping", "ack", ack)
        assert [m[:2] for m in read_marks(cli.layout)] == [("web2", "ping")]
        assert _row(tree.state, "web2", "ping").acked  # the mark: read from its files
        write_overview(daemon, pid)  # the daemon takes the mark, reads the pair again
        assert read_marks(cli.layout) == []
        assert _row(tree.state, "web2", "ping").acked
        cli.remove_pair_doc("web2", "ping", "ack")
        assert not _row(tree.state, "web2", "ping").acked
        write_overview(daemon, pid)
        assert not _row(tree.state, "web2", "ping").acked and read_marks(cli.layout) == []


def test_a_damaged_overview_means_reading_the_files(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    with hold_pidfile(tree.state) as pid:
        files = read_snapshot(tree.state, NOW, configured=CONFIGURED)
        good = {"version": 1, "pid": pid, "updated": utc_iso(NOW), "checks": [], "silencers": []}
        for bad in (
            b"{not json",
            json.dumps({**good, "checks": {"web1": 1}}).encode(),
            json.dumps({**good, "checks": [["web1", "ping"]]}).encode(),
            json.dumps({**good, "version": 2}).encode(),
        ):
            write_raw(tree.state / "overview.json", bad)
            snap = read_snapshot(tree.state, NOW, configured=CONFIGURED)
            assert snap.rows == files.rows and snap.errors == files.errors


def _row(state_dir: Path, host: str, check: str):  # type: ignore[no-untyped-def]
    row = read_snapshot(state_dir, NOW, configured=CONFIGURED).row(host, check)
    assert row is not None
    return row


def _code(state_dir: Path, host: str, check: str) -> str:
    return str(_row(state_dir, host, check).code)
