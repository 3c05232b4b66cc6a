"""survivor.proc.spawner: children started from a thread whose descriptor table is its own."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from survivor.proc import session, spawner
from survivor.proc.runner import ModuleRunner
from survivor.proc.spawner import Spawner, Started


@pytest.fixture(scope="module")
def helper() -> Spawner:
    made = Spawner()
    if not made.working:
        pytest.skip(f"no spawner here: {made.why_not}")
    return made


@pytest.fixture
def many_open() -> Iterator[list[int]]:
    """400 descriptors held by the process, as 130 checks in flight hold them."""
    fds: list[int] = []
    for _ in range(200):
        fds.extend(os.pipe())
    yield fds
    for fd in fds:
        os.close(fd)


def finish(started: Started, stdin: bytes = b"") -> tuple[bytes, bytes, int]:
    """Feed stdin, read stdout and stderr to EOF, reap: (stdout, stderr, exit code)."""
    if started.stdin_fd is not None:
        os.write(started.stdin_fd, stdin)
        os.close(started.stdin_fd)
    with os.fdopen(started.stdout_fd, "rb") as out, os.fdopen(started.stderr_fd, "rb") as err:
        printed, complained = out.read(), err.read()
    _, status = os.waitpid(started.pid, 0)
    return printed, complained, os.waitstatus_to_exitcode(status)


def test_a_child_gets_its_pipes_and_the_process_gets_the_other_ends(helper: Spawner) -> None:
    script = 'read line; echo "got $line"; echo "to stderr" >&2; exit 3'
    started = helper.spawn("/bin/sh", ["sh", "-c", script], {"PATH": "/bin"}, with_stdin=True)
    assert started is not None
    ends = [started.stdin_fd, started.stdout_fd, started.stderr_fd]
    assert all(fd is not None and not os.get_inheritable(fd) for fd in ends)  # close-on-exec
    assert finish(started, b"hello\n") == (b"got hello\n", b"to stderr\n", 3)
    started = helper.spawn("/bin/sh", ["sh", "-c", "cat"], {}, with_stdin=False)
    assert started is not None and started.stdin_fd is None
    assert finish(started) == (b"", b"", 0)  # stdin is /dev/null


def test_the_spawner_thread_table_stays_small_while_the_process_holds_many(
    helper: Spawner, many_open: list[int]
) -> None:
    """What the child inherits before exec is the spawner thread's table, not the process's."""
    started = helper.spawn("/bin/true", ["true"], {}, with_stdin=False)
    assert started is not None
    finish(started)
    ours = len(os.listdir("/proc/self/fd"))
    theirs = len(os.listdir(f"/proc/self/task/{helper._thread.native_id}/fd"))
    assert ours > 400 and theirs <= 4  # stdin, stdout, stderr and its socket


def test_a_failed_spawn_raises_as_posix_spawn_does_and_leaves_nothing_open(
    helper: Spawner,
) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError) as raised:
        helper.spawn("/nonexistent/module", ["module"], {}, with_stdin=True)
    assert raised.value.errno == errno.ENOENT and raised.value.filename == "/nonexistent/module"
    assert set(os.listdir("/proc/self/fd")) == before
    assert helper.working  # an error of the child's, not of the spawner's
    started = helper.spawn("/bin/true", ["true"], {}, with_stdin=False)
    assert started is not None and finish(started)[2] == 0


def test_the_runner_starts_children_on_the_spawner_once_many_runs_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below SPAWNER_FROM runs in flight the check loop spawns itself (the hand-over costs the
    daemon more than a small table saves the child); from there on the spawner does."""
    used: list[str] = []
    real = spawner.Spawner.spawn

    def counting(self: Spawner, *args: object, **kwargs: object) -> Started | None:
        used.append(str(args[0]))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(spawner.Spawner, "spawn", counting)
    if not spawner.shared().working:
        pytest.skip(f"no spawner here: {spawner.shared().why_not}")
    monkeypatch.chdir("/")  # posix_spawn (and so the spawner) needs the daemon's cwd
    runner = ModuleRunner([], [], output_cap=1024)
    monkeypatch.setattr(session, "SPAWNER_FROM", 1000)
    assert runner.run(["/bin/echo", "alone"], b"", 5).stdout == b"alone\n"
    assert used == []
    monkeypatch.setattr(session, "SPAWNER_FROM", 0)
    script = "echo spawned; echo oops >&2; exit 2"
    outcome = runner.run(["/bin/sh", "-c", script], b"", 5)
    assert used == ["/bin/sh"]
    assert (outcome.stdout, outcome.stderr, outcome.exit_status) == (b"spawned\n", b"oops\n", 2)


def test_a_spawner_that_stops_answering_is_given_up_and_the_caller_spawns_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(spawner, "ANSWER_S", 0.2)
    stuck = Spawner()
    if not stuck.working:
        pytest.skip(f"no spawner here: {stuck.why_not}")
    monkeypatch.setattr(stuck, "_answer", lambda own, request: None)  # never replies
    assert stuck.spawn("/bin/true", ["true"], {}, with_stdin=False) is None
    assert not stuck.working and "no answer" in stuck.why_not
    assert "checks are started by the check loops themselves" in caplog.text
    assert stuck.spawn("/bin/true", ["true"], {}, with_stdin=False) is None  # at once
    stuck._thread.join(2)
    assert not stuck._thread.is_alive()


def test_a_spawner_whose_thread_is_gone_is_given_up_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Spawner()
    if not gone.working:
        pytest.skip(f"no spawner here: {gone.why_not}")
    gone._requests.put(None)  # the thread's way out
    gone._thread.join(2)
    assert gone.spawn("/bin/true", ["true"], {}, with_stdin=False) is None
    assert gone.why_not == "its thread is gone" and "its thread is gone" in caplog.text
