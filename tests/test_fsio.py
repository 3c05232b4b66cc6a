from __future__ import annotations

import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from survivor.errors import UnsafeNameError
from survivor.model.config import FsyncPolicy
from survivor.store.fsio import Appender, DiskWriteError, EntityLocks, FileWriter
from survivor.store.layout import safe_path
from survivor.store.pidfile import AlreadyRunningError, PidFile, read_pid


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_replace_writes_whole_file_with_mode_0644_and_no_temp_left(tmp_path: Path, policy) -> None:
    w = FileWriter(policy)
    target = tmp_path / "deep" / "dir" / "check.json"
    w.replace(target, b'{"version": 1}\n')
    w.replace(target, b'{"version": 1, "rc": 2}\n')
    assert target.read_bytes() == b'{"version": 1, "rc": 2}\n'
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["check.json"]
    w.flush()


def test_replace_failure_keeps_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    w = FileWriter(FsyncPolicy.NEVER)
    target = tmp_path / "daemon.json"
    w.replace(target, b"old\n")

    def broken_replace(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(DiskWriteError, match="No space left"):
        w.replace(target, b"new\n")
    monkeypatch.undo()
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["daemon.json"]


def test_append_requires_complete_line(tmp_path: Path) -> None:
    w = FileWriter(FsyncPolicy.NEVER)
    with pytest.raises(ValueError):
        w.append(tmp_path / "h.jsonl", b'{"a": 1}')


@pytest.mark.parametrize("writer", ["history", "appender"])
def test_short_write_is_truncated_back(tmp_path: Path, monkeypatch, writer: str) -> None:
    """Both append paths (a history line, the results log's kept descriptor) take a torn
    tail back off and raise, so the next record starts on a line of its own."""
    path = tmp_path / "x" / "check-2026-11.jsonl"
    if writer == "history":
        w = FileWriter(FsyncPolicy.NEVER)
        append = partial(w.append, path)
    else:
        appender = Appender(path, lambda: 0.0)
        append = appender.write
    append(b'{"n": 1}\n')
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:
        return real_write(fd, data[:3])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(DiskWriteError):
        append(b'{"n": 2}\n')
    monkeypatch.undo()
    assert path.read_bytes() == b'{"n": 1}\n'
    append(b'{"n": 3}\n')
    assert path.read_bytes().splitlines() == [b'{"n": 1}', b'{"n": 3}']


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    w = FileWriter(FsyncPolicy.NEVER)
    path = tmp_path / "h.jsonl"
    big = b"x" * 50_000

    def writer(n: int) -> None:
        for i in range(50):
            w.append(path, b'{"w": %d, "i": %d, "pad": "%s"}\n' % (n, i, big))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_bytes().split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == 200
    assert all(line.startswith(b'{"w": ') and line.endswith(b'"}') for line in lines)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", ".hidden", "", "x" * 200])
def test_safe_path_refuses_names_that_leave_the_tree(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_path(tmp_path, bad)


def test_entity_lock_excludes_threads(tmp_path: Path) -> None:
    locks = EntityLocks()
    inside = 0
    worst = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, worst
        for _ in range(200):
            with locks.hold(tmp_path / "pair"):
                with guard:
                    inside += 1
                    worst = max(worst, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert worst == 1
    assert (tmp_path / "pair" / ".lock").exists()


def test_pidfile_refuses_second_owner_and_survives_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "survivor.pid"
    path.write_text("999999\n")  # stale: nobody holds the lock
    assert read_pid(path) is None
    first = PidFile(path)
    first.acquire()
    first.write_pid()
    assert read_pid(path) == os.getpid()
    # Another process cannot take it.
    code = (
        "import sys; from pathlib import Path\n"
        "from survivor.store.pidfile import PidFile, AlreadyRunningError\n"
        "try:\n PidFile(Path(sys.argv[1])).acquire()\nexcept AlreadyRunningError as e:\n"
        " print(e); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 3, proc.stderr
    assert f"pid {os.getpid()}" in proc.stdout
    first.release()
    assert not path.exists()
    again = PidFile(path)
    again.acquire()
    again.release()
    assert AlreadyRunningError


def test_pair_paths_check_every_new_name(tmp_path: Path) -> None:
    from survivor.store.layout import PairPaths

    paths = PairPaths(tmp_path / "host")
    assert paths("web1", "ping") == tmp_path / "host" / "web1" / "ping"
    assert paths("web1", "ping") == tmp_path / "host" / "web1" / "ping"  # from the name cache
    for host, check in [("..", "ping"), ("web1", "../x"), ("a/b", "ping"), ("web1", "")]:
        with pytest.raises(UnsafeNameError):
            paths(host, check)
