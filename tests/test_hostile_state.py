"""State files an adversary (or a bad disk) can plant: the daemon moves them aside, never
crashes or hangs on them (issue 23, item 4; DESIGN §6)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from survivor.errors import StateError
from survivor.model.config import FsyncPolicy
from survivor.model.documents import CheckState, Request
from survivor.store.fsio import (
    Appender,
    EntityLocks,
    FileWriter,
    read_document,
    refuse_symlinked_pairs,
)
from survivor.store.pidfile import PidFile
from survivor.store.state import StateStore

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
DEEP = b"[" * 100_000 + b"]" * 100_000


def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state", FileWriter(FsyncPolicy.NEVER))


def test_a_fifo_named_check_json_does_not_hang_the_daemon(tmp_path: Path) -> None:
    st = store(tmp_path)
    path = tmp_path / "state/host/web1/ping/check.json"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert st.load_checks(NOW) == {}  # pytest-timeout fails this if the open blocks
    assert [p.name for p in path.parent.iterdir()] == ["check.json.corrupt-20261124T100500Z"]


def test_a_fifo_or_a_deep_document_in_requests_is_moved_aside(tmp_path: Path) -> None:
    st = store(tmp_path)
    st.submit_request(
        Request(id="r1", action="reschedule", user="alice", at=NOW, host="web1", check="ping")
    )
    os.mkfifo(st.layout.requests / "r0.json")
    (st.layout.requests / "r2.json").write_bytes(DEEP)
    assert [r.id for r in st.take_requests(NOW)] == ["r1"]
    assert sorted(p.name for p in st.layout.requests.iterdir()) == [
        "r0.json.corrupt-20261124T100500Z",
        "r2.json.corrupt-20261124T100500Z",
    ]
    assert st.take_requests(NOW) == []


def test_only_regular_files_of_bounded_size_are_read(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(StateError, match="is a directory"):
        read_document(tmp_path / "dir.json")
    (tmp_path / "big.json").write_bytes(b" " * (17 * 1024 * 1024))
    with pytest.raises(StateError, match="bytes"):
        read_document(tmp_path / "big.json")
    (tmp_path / "real.json").write_text('{"version": 1}')
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(StateError, match="symlink"):
        read_document(tmp_path / "link.json")


def test_directories_get_their_modes_whatever_the_umask(tmp_path: Path) -> None:
    # A root operator with umask 077 must not make directories the daemon cannot read.
    old = os.umask(0o077)
    try:
        st = store(tmp_path)
        st.submit_request(
            Request(id="r1", action="reschedule", user="root", at=NOW, host="web1", check="ping")
        )
        st.write_check("web1", "ping", CheckState())
        month = tmp_path / "history/host/web1/ping/command-2026-11.jsonl"
        FileWriter(FsyncPolicy.NEVER).append(month, b"{}\n")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(st.layout.requests) == 0o2770  # the daemon's user and group (operators)
    assert mode(st.root) == 0o755
    assert mode(st.layout.hosts / "web1") == mode(st.layout.hosts / "web1" / "ping") == 0o755
    assert mode(st.layout.requests / "r1.json") == 0o644
    assert st.check_requests_dir() is None
    assert mode(month) == 0o644 and mode(month.parent) == 0o755


# ---------------------------------------------------------------- planted symlinks (item 3)


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def test_a_symlinked_history_file_is_moved_aside_and_the_record_kept(tmp_path: Path) -> None:
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    month = tmp_path / "history/host/web1/ping/check-2026-11.jsonl"
    plant(month, victim)
    FileWriter(FsyncPolicy.NEVER).append(month, b'{"v": 1}\n')
    assert victim.read_text() == "root:x:0:0\n"
    assert not month.is_symlink() and month.read_bytes() == b'{"v": 1}\n'
    assert (month.parent / "check-2026-11.jsonl.symlink-refused").is_symlink()


def test_a_symlinked_results_log_is_moved_aside(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    log = tmp_path / "results.jsonl"
    plant(log, victim)
    appender = Appender(log, lambda: 0.0)
    appender.write(b"{}\n")
    appender.close()
    assert victim.read_text() == "keep\n" and log.read_bytes() == b"{}\n"


def test_a_symlinked_lock_creates_nothing_elsewhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "made-by-lock"
    elsewhere.parent.mkdir()
    pair = tmp_path / "state/host/web1/ping"
    plant(pair / ".lock", elsewhere)
    with EntityLocks().hold(pair):
        pass
    assert not elsewhere.exists()
    assert (pair / ".lock").is_file() and not (pair / ".lock").is_symlink()


def test_a_symlinked_pidfile_does_not_truncate_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pidfile = PidFile(tmp_path / "state" / "survivor.pid")
    plant(pidfile.path, victim)
    pidfile.acquire()
    try:
        pidfile.write_pid(4242)
        assert victim.read_text() == "precious\n"
        assert pidfile.path.read_text() == "4242\n" and not pidfile.path.is_symlink()
    finally:
        pidfile.release()


def test_symlinked_pair_directories_are_moved_aside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    hosts = tmp_path / "state" / "host"
    plant(hosts / "web1", outside)
    plant(hosts / "web2" / "ping", outside)
    (hosts / "web2" / "disk").mkdir()
    assert refuse_symlinked_pairs(hosts) == 2
    assert sorted(p.name for p in hosts.iterdir()) == ["web1.symlink-refused", "web2"]
    assert sorted(p.name for p in (hosts / "web2").iterdir()) == ["disk", "ping.symlink-refused"]
    assert refuse_symlinked_pairs(hosts) == 0
