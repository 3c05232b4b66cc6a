"""ModuleRunner against real fixture modules: timeouts, process groups, output, lookup."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from survivor.errors import ModuleError
from survivor.model.codes import ReturnCode
from survivor.model.config import Host
from survivor.proc import resolve as resolve_module
from survivor.proc import session as session_module
from survivor.proc import spawn as spawn_module
from survivor.proc.runner import DEFAULT_PATH, ModuleRunner
from survivor.proc.session import LINGER, STDERR_CAP, ProcessOutcome
from survivor.protocol.modules import (
    check_request,
    fix_request,
    parse_check_output,
    parse_fix_output,
)
from survivor.protocol.plugins import expand_argv, parse_plugin_output

MOD = Path(__file__).parent / "fixtures" / "mod"
HOSTS = [Host("web1", "192.0.2.10", vars={"port": 8080}), Host("web2", "192.0.2.11")]
NAMES = [h.name for h in HOSTS]
SLACK = 1.0  # seconds of scheduling noise allowed on a loaded 2-core CI machine
CHECK_DUMMY = Path("/usr/lib/nagios/plugins/check_dummy")


@pytest.fixture(params=["libc", "os", "popen"])
def runner(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleRunner]:
    """Every runner test runs on all three spawn paths: posix_spawn through ctypes ("libc"),
    through `os.posix_spawn` where ctypes cannot ("os"), both with the cwd "/", and Popen."""
    if request.param != "popen":
        monkeypatch.chdir("/")
    if request.param == "os":
        monkeypatch.setattr(spawn_module, "_libc", None)
    spawned: list[str] = []
    real_spawn = session_module.spawn

    def spying_spawn(*args: Any, **kwargs: Any) -> int:
        spawned.append(args[0])
        return real_spawn(*args, **kwargs)

    monkeypatch.setattr(session_module, "spawn", spying_spawn)
    yield ModuleRunner([MOD], [], kill_grace=0.3)
    if request.param == "popen":
        assert not spawned, "posix_spawn was used although the cwd is not /"
    else:
        assert spawned, "the posix_spawn path was never taken"


def run_check(
    runner: ModuleRunner, name: str, timeout: float = 10.0, cap: int | None = None
) -> tuple[ProcessOutcome, dict[str, int], float]:
    path = runner.resolve("check", name)
    started = time.monotonic()
    outcome = runner.run([str(path)], check_request(name, {}, HOSTS, timeout), timeout, cap=cap)
    elapsed = time.monotonic() - started
    results = parse_check_output(
        outcome.stdout, NAMES, killed=outcome.timed_out, truncated=outcome.truncated
    )
    return outcome, {h: r.rc for h, r in results.items()}, elapsed


def live_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def assert_group_gone(pgid: int, within: float = 2.0) -> None:
    """The module's process group is empty, or holds only zombies.

    Orphans are reparented to init; an init that reaps lazily (some
    containers) leaves them as zombies for a while, and zombies run nothing.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        alive = live_members(pgid)
        if not alive:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"process group {pgid} still has running members {alive}")
        time.sleep(0.02)


def make_module(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(body)
    path.chmod(mode)
    return path


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


# --------------------------------------------------------------------------- well-behaved modules


def test_ok_module_reports_every_host(runner: ModuleRunner) -> None:
    outcome, rcs, _ = run_check(runner, "ok")
    assert rcs == {"web1": 0, "web2": 0}
    assert (outcome.exit_status, outcome.signal, outcome.timed_out, outcome.truncated) == (
        0,
        None,
        False,
        False,
    )
    assert outcome.duration_ms >= 0 and outcome.pid > 0
    assert_group_gone(outcome.pid)


def test_validate_flag(runner: ModuleRunner) -> None:
    outcome = runner.run([str(runner.resolve("check", "ok")), "-v"], b"", 5)
    assert (outcome.exit_status, outcome.stdout) == (0, b"ok OK\n")


def test_warn_module(runner: ModuleRunner) -> None:
    _, rcs, _ = run_check(runner, "warn")
    assert rcs == {"web1": ReturnCode.WARNING, "web2": ReturnCode.WARNING}


def test_fix_module_round_trip(runner: ModuleRunner) -> None:
    path = runner.resolve("fix", "ok")
    outcome = runner.run([str(path)], fix_request("ok", HOSTS[0], {}, 5, "http"), 5)
    assert parse_fix_output(outcome.stdout, killed=outcome.timed_out) == (0, "fixed web1")


def test_large_stdin_document_round_trips(runner: ModuleRunner) -> None:
    doc = os.urandom(3_000_000)  # far more than a pipe holds: written from the selector loop
    outcome = runner.run([str(runner.resolve("check", "echo-stdin"))], doc, 10, cap=len(doc))
    assert outcome.stdout == doc and not outcome.truncated


def test_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    runner = ModuleRunner([MOD], [], extra_env={"SURVIVOR_INSTANCE": "main"})
    outcome = runner.run(
        [str(runner.resolve("check", "echo-env")), "arg one"],
        check_request("env", {}, HOSTS[:1], 5),
        5,
        env={"SURVIVOR_CHECK": "env"},
    )
    result = json.loads(outcome.stdout.splitlines()[0])
    assert json.loads(result["comment"]) == {
        "PATH": DEFAULT_PATH,
        "LANG": "en_US.UTF-8",
        "SURVIVOR_INSTANCE": "main",
        "SURVIVOR_CHECK": "env",
    }
    assert result["cwd"] == "/"
    assert result["argv"] == ["arg one"]  # one argv element, never re-split by a shell


def test_lang_defaults_to_c_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANG", raising=False)
    runner = ModuleRunner([MOD], [])
    outcome = runner.run(
        [str(runner.resolve("check", "echo-env"))], check_request("env", {}, HOSTS[:1], 5), 5
    )
    env = json.loads(json.loads(outcome.stdout.splitlines()[0])["comment"])
    assert env["LANG"] == "C.UTF-8"


def test_on_start_gets_the_pid_while_it_runs() -> None:
    seen: list[tuple[int, list[int]]] = []
    runner = ModuleRunner([MOD], [])
    runner.on_start = lambda pid: seen.append((pid, runner.running()))
    outcome, _, _ = run_check(runner, "ok")
    assert seen == [(outcome.pid, [outcome.pid])]
    assert runner.running() == []


def test_per_run_on_start_follows_the_runners() -> None:
    calls: list[str] = []
    runner = ModuleRunner([MOD], [], on_start=lambda pid: calls.append(f"runner {pid}"))
    outcome = runner.run(
        [str(runner.resolve("check", "ok")), "-v"],
        b"",
        5,
        on_start=lambda pid: calls.append(f"item {pid}"),
    )
    assert calls == [f"runner {outcome.pid}", f"item {outcome.pid}"]


def test_on_start_failure_kills_the_module() -> None:
    pids: list[int] = []

    def boom(pid: int) -> None:
        pids.append(pid)
        raise RuntimeError("queue.json unwritable")

    runner = ModuleRunner([MOD], [], on_start=boom)
    with pytest.raises(RuntimeError):
        runner.run([str(runner.resolve("check", "hang"))], b"", 30)
    assert_group_gone(pids[0])
    assert runner.running() == []


# --------------------------------------------------------------------------- misbehaving modules


def test_hang_is_terminated_at_the_timeout(runner: ModuleRunner) -> None:
    outcome, rcs, elapsed = run_check(runner, "hang", timeout=0.3)
    assert outcome.timed_out and outcome.signal == signal.SIGTERM
    assert outcome.exit_status is None and outcome.signal_name == "SIGTERM"
    assert rcs == {"web1": ReturnCode.TIMEDOUT, "web2": ReturnCode.TIMEDOUT}
    assert 0.3 <= elapsed < 0.3 + SLACK
    assert_group_gone(outcome.pid)


def test_ignoring_term_gets_kill_after_the_grace(runner: ModuleRunner) -> None:
    outcome, _, elapsed = run_check(runner, "ignores-term", timeout=0.2)
    assert outcome.timed_out and outcome.signal == signal.SIGKILL
    assert 0.2 + 0.3 <= elapsed < 0.2 + 0.3 + SLACK
    assert_group_gone(outcome.pid)  # the sleep that also ignored TERM is gone too


def test_zero_timeout_kills_at_once(runner: ModuleRunner) -> None:
    outcome, _, elapsed = run_check(runner, "hang", timeout=0)
    assert outcome.timed_out and elapsed < SLACK


def test_partial_results_survive_the_timeout(runner: ModuleRunner) -> None:
    outcome, rcs, _ = run_check(runner, "partial", timeout=0.5)
    assert outcome.timed_out
    assert rcs == {"web1": ReturnCode.OK, "web2": ReturnCode.TIMEDOUT}
    assert_group_gone(outcome.pid)


def test_garbage_output_becomes_misconfig(runner: ModuleRunner) -> None:
    outcome, rcs, _ = run_check(runner, "garbage-output")
    assert rcs == {"web1": ReturnCode.MISCONFIG, "web2": ReturnCode.MISCONFIG}
    results = parse_check_output(outcome.stdout, NAMES, killed=False, truncated=False)
    assert results["web1"].comment.startswith(
        'no result from module; it printed: "Traceback (most recent call last)'
    )


def test_death_by_signal_is_reported(runner: ModuleRunner) -> None:
    outcome, rcs, _ = run_check(runner, "dies-by-signal")
    assert (outcome.exit_status, outcome.signal, outcome.timed_out) == (None, signal.SIGSEGV, False)
    assert outcome.signal_name == "SIGSEGV"
    assert rcs["web1"] == ReturnCode.MISCONFIG


def test_grandchild_holding_stdout_does_not_hang_us(runner: ModuleRunner) -> None:
    outcome, rcs, elapsed = run_check(runner, "forks-a-grandchild", timeout=30)
    assert elapsed < LINGER + SLACK  # not the grandchild's 300 s, nor our 30 s timeout
    assert not outcome.timed_out and outcome.exit_status == 0
    assert rcs["web1"] == ReturnCode.OK
    assert outcome.duration_ms < LINGER * 1000  # the module's own run, not the linger
    assert_group_gone(outcome.pid)  # the background sleep was killed


def test_flood_is_capped_and_drained(runner: ModuleRunner) -> None:
    outcome, rcs, elapsed = run_check(runner, "floods-output", timeout=30, cap=4096)
    assert outcome.truncated and len(outcome.stdout) == 4096
    assert outcome.exit_status == 0 and not outcome.timed_out  # drained to the end, not killed
    assert rcs["web1"] == ReturnCode.MISCONFIG
    assert elapsed < 10


def test_stderr_is_capped(runner: ModuleRunner) -> None:
    outcome = runner.run([str(runner.resolve("check", "stderr-chatter"))], b"", 5)
    assert outcome.stdout == b"done\n"
    assert outcome.stderr == b"e" * STDERR_CAP


def test_module_that_never_reads_stdin(runner: ModuleRunner) -> None:
    doc = b" " * 4_000_000
    started = time.monotonic()
    outcome = runner.run([str(runner.resolve("check", "no-stdin-reader"))], doc, 10)
    assert time.monotonic() - started < 0.3 + SLACK
    assert outcome.exit_status == 0 and not outcome.timed_out
    assert outcome.duration_ms >= 300
    assert b'"did not read stdin"' in outcome.stdout


def test_module_that_closes_its_pipes_but_runs_on_is_still_timed_out(tmp_path: Path) -> None:
    path = make_module(tmp_path / "check", "quiet", "#!/bin/sh\nexec >&- 2>&-\nexec sleep 300\n")
    runner = ModuleRunner([tmp_path], [], kill_grace=0.3)
    started = time.monotonic()
    outcome = runner.run([str(path)], b"", 0.3)
    assert outcome.timed_out and outcome.signal == signal.SIGTERM
    assert time.monotonic() - started < 0.3 + SLACK
    assert_group_gone(outcome.pid)


@pytest.mark.parametrize("name", ["ok", "hang", "forks-a-grandchild", "no-stdin-reader"])
def test_without_pidfd_exit_is_noticed_by_polling(
    runner: ModuleRunner, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(session_module, "_open_pidfd", lambda pid: None)  # kernels before 5.3
    outcome, rcs, elapsed = run_check(runner, name, timeout=0.4)
    assert elapsed < 0.4 + 0.3 + SLACK
    assert rcs["web1"] == (ReturnCode.TIMEDOUT if name == "hang" else ReturnCode.OK)
    assert_group_gone(outcome.pid)


def test_kill_group_ends_a_running_module(runner: ModuleRunner) -> None:
    """What `queue cancel` and the stop grace do to a run: kill its process group."""
    outcomes: list[ProcessOutcome] = []
    worker = threading.Thread(
        target=lambda: outcomes.append(runner.run([str(runner.resolve("check", "hang"))], b"", 30))
    )
    worker.start()
    deadline = time.monotonic() + 5
    while not runner.running():
        assert time.monotonic() < deadline, "module never started"
        time.sleep(0.01)
    [pid] = runner.running()
    assert runner.kill_group(pid)
    worker.join(5)
    assert not worker.is_alive()
    (outcome,) = outcomes
    assert outcome.signal == signal.SIGKILL and not outcome.timed_out


def test_kill_group_cancels_one_run_and_ignores_stale_pids(runner: ModuleRunner) -> None:
    pids: list[int] = []
    outcomes: list[ProcessOutcome] = []
    path = str(runner.resolve("check", "hang"))
    worker = threading.Thread(
        target=lambda: outcomes.append(runner.run([path], b"", 30, on_start=pids.append))
    )
    worker.start()
    deadline = time.monotonic() + 5
    while not pids:
        assert time.monotonic() < deadline, "module never started"
        time.sleep(0.01)
    assert runner.kill_group(pids[0], signal.SIGTERM)
    worker.join(5)
    assert outcomes[0].signal == signal.SIGTERM
    assert not runner.kill_group(pids[0])  # finished: never signal a pid that may be reused


def test_many_concurrent_runs_leak_nothing(runner: ModuleRunner) -> None:
    before = open_fds()
    path = str(runner.resolve("check", "echo-stdin"))
    failures: list[str] = []

    def work(index: int) -> None:
        for n in range(15):
            doc = f"{index}-{n}\n".encode() * 100
            outcome = runner.run([path], doc, 10)
            if outcome.stdout != doc or outcome.exit_status != 0:
                failures.append(f"{index}-{n}: {outcome!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert open_fds() == before


def test_inheritable_descriptors_do_not_reach_modules(runner: ModuleRunner) -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # as C code (watchdog's inotify) may leave one
    try:
        outcome = runner.run(["/bin/ls", "/proc/self/fd"], b"", 5)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert outcome.exit_status == 0
    fds = {int(name) for name in outcome.stdout.split()}
    assert write_end not in fds
    assert fds <= {0, 1, 2, 3}  # ls's own descriptor for the listing may be 3


def test_signals_are_reset_for_modules(runner: ModuleRunner) -> None:
    outcome = runner.run(["/bin/grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"], b"", 5)
    fields = dict(line.split(":\t") for line in outcome.stdout.decode().splitlines())
    sigpipe_bit = 1 << (signal.SIGPIPE - 1)  # the daemon ignores SIGPIPE; modules must not
    assert int(fields["SigIgn"], 16) & sigpipe_bit == 0
    assert int(fields["SigBlk"], 16) == 0


@pytest.mark.parametrize(("stdin", "expected"), [(b"", b"/dev/null"), (b"doc", b"pipe:")])
def test_stdin_is_dev_null_when_there_is_no_document(
    runner: ModuleRunner, stdin: bytes, expected: bytes
) -> None:
    outcome = runner.run(["/bin/readlink", "/proc/self/fd/0"], stdin, 5)
    assert outcome.stdout.startswith(expected)


def test_modules_run_in_the_root_directory(runner: ModuleRunner) -> None:
    outcome = runner.run(["/bin/pwd"], b"", 5)
    assert outcome.stdout == b"/\n"


# --------------------------------------------------------------------------- spawn errors


def test_missing_executable_is_a_module_error(runner: ModuleRunner, tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match=str(tmp_path / "nope")):
        runner.run([str(tmp_path / "nope")], b"", 5)


def test_unexecutable_format_is_a_module_error(runner: ModuleRunner, tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\x7fELF\x00\x00garbage")
    path.chmod(0o755)
    with pytest.raises(ModuleError, match="cannot run"):
        runner.run([str(path)], b"", 5)


# --------------------------------------------------------------------------- finding modules


def test_resolve_searches_module_dirs_in_order(tmp_path: Path) -> None:
    first = make_module(tmp_path / "a" / "check", "ping", "#!/bin/sh\necho a\n")
    make_module(tmp_path / "b" / "check", "ping", "#!/bin/sh\necho b\n")
    only_b = make_module(tmp_path / "b" / "check", "disk", "#!/bin/sh\n")
    runner = ModuleRunner([tmp_path / "a", tmp_path / "b"], [])
    assert runner.resolve("check", "ping") == first
    assert runner.resolve("check", "disk") == only_b


def test_resolve_returns_absolute_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MOD.parent)
    runner = ModuleRunner([Path("mod")], [])
    path = runner.resolve("check", "ok")
    assert path.is_absolute()
    assert runner.run([str(path), "-v"], b"", 5).exit_status == 0  # modules run with cwd /


def test_missing_module_lists_where_it_looked(tmp_path: Path) -> None:
    runner = ModuleRunner([tmp_path / "a", tmp_path / "b"], [tmp_path / "plugins"])
    with pytest.raises(ModuleError) as err:
        runner.resolve("check", "absent")
    message = str(err.value)
    for place in ("a/check/absent", "b/check/absent", "plugins/absent"):
        assert str(tmp_path / place) in message
    with pytest.raises(ModuleError) as err:
        runner.resolve("fix", "absent")
    assert "plugins" not in str(err.value)  # plugins are checks only


@pytest.mark.parametrize("name", ["../ok", "check/ok", "..", ".hidden", "", "a b", "x" * 200])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ModuleError, match="not allowed"):
        ModuleRunner([MOD], []).resolve("check", name)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ModuleError, match="unknown module kind"):
        ModuleRunner([MOD], []).resolve("report", "ok")


def test_world_writable_module_is_refused(tmp_path: Path) -> None:
    path = make_module(tmp_path / "check", "ping", "#!/bin/sh\n", mode=0o777)
    path.chmod(0o777)  # past the umask
    with pytest.raises(ModuleError, match=r"world-writable.*chmod o-w"):
        ModuleRunner([tmp_path], []).resolve("check", "ping")


def test_module_in_world_writable_directory_is_refused(tmp_path: Path) -> None:
    make_module(tmp_path / "check", "ping", "#!/bin/sh\n")
    (tmp_path / "check").chmod(0o777)
    with pytest.raises(ModuleError, match="world-writable directory"):
        ModuleRunner([tmp_path], []).resolve("check", "ping")


def test_not_executable_is_refused(tmp_path: Path) -> None:
    # Even for root: os.access(X_OK) wants at least one x bit.
    make_module(tmp_path / "check", "ping", "#!/bin/sh\n", mode=0o644)
    with pytest.raises(ModuleError, match="not executable; run: chmod 755"):
        ModuleRunner([tmp_path], []).resolve("check", "ping")


def test_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "check" / "ping").mkdir(parents=True)
    with pytest.raises(ModuleError, match="not a regular file"):
        ModuleRunner([tmp_path], []).resolve("check", "ping")


def test_symlink_escaping_module_dir_is_refused(tmp_path: Path) -> None:
    outside = make_module(tmp_path / "elsewhere", "evil", "#!/bin/sh\n")
    (tmp_path / "mod" / "check").mkdir(parents=True)
    (tmp_path / "mod" / "check" / "ping").symlink_to(outside)
    with pytest.raises(ModuleError, match=r"outside the module dir"):
        ModuleRunner([tmp_path / "mod"], []).resolve("check", "ping")


def test_symlinked_kind_directory_escaping_is_refused(tmp_path: Path) -> None:
    make_module(tmp_path / "elsewhere", "ping", "#!/bin/sh\n")
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "check").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ModuleError, match=r"outside the module dir"):
        ModuleRunner([tmp_path / "mod"], []).resolve("check", "ping")


def test_symlink_inside_module_dir_is_fine(tmp_path: Path) -> None:
    target = make_module(tmp_path / "mod" / "lib", "ping-impl", "#!/bin/sh\necho linked\n")
    (tmp_path / "mod" / "check").mkdir()
    (tmp_path / "mod" / "check" / "ping").symlink_to(target)
    runner = ModuleRunner([tmp_path / "mod"], [])
    path = runner.resolve("check", "ping")
    assert runner.run([str(path)], b"", 5).stdout == b"linked\n"


def test_symlinked_module_dir_itself_is_fine(tmp_path: Path) -> None:
    make_module(tmp_path / "releases" / "v2" / "check", "ping", "#!/bin/sh\n")
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "v2")
    assert ModuleRunner([tmp_path / "current"], []).resolve("check", "ping")


def test_dangling_symlink_is_reported(tmp_path: Path) -> None:
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "ping").symlink_to(tmp_path / "gone")
    with pytest.raises(ModuleError, match="does not exist"):
        ModuleRunner([tmp_path], []).resolve("check", "ping")


def test_new_and_changed_modules_are_used_without_restart(tmp_path: Path) -> None:
    runner = ModuleRunner([tmp_path], [])
    with pytest.raises(ModuleError, match="not found"):
        runner.resolve("check", "fresh")
    path = make_module(tmp_path / "check", "fresh", "#!/bin/sh\necho one\n")
    assert runner.run([str(runner.resolve("check", "fresh"))], b"", 5).stdout == b"one\n"
    tmp = make_module(tmp_path / "check", ".fresh.new", "#!/bin/sh\necho two\n")
    tmp.replace(path)  # how installers replace a file atomically
    assert runner.run([str(runner.resolve("check", "fresh"))], b"", 5).stdout == b"two\n"


def test_lookups_are_reused_for_a_second_then_redone(tmp_path: Path) -> None:
    runner = ModuleRunner([tmp_path], [])
    path = make_module(tmp_path / "check", "fresh", "#!/bin/sh\necho one\n")
    assert runner.resolve("check", "fresh") == path
    path.chmod(0o777)  # now unsafe: refused once the cached lookup expires
    deadline = time.monotonic() + resolve_module.RESOLVE_TTL + 5
    while True:
        try:
            runner.resolve("check", "fresh")
        except ModuleError as err:
            assert "world-writable" in str(err)
            break
        assert time.monotonic() < deadline, "the unsafe module was never noticed"
        time.sleep(0.05)
    path.chmod(0o755)
    assert runner.resolve("check", "fresh") == path  # failures are not cached


# --------------------------------------------------------------------------- plugins


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy2(MOD / "check" / "plugin-dummy", plugins / "check_fake")
    shutil.copy2(MOD / "check" / "plugin-multiline", plugins / "check_disk_fake")
    yield plugins


def run_plugin(
    runner: ModuleRunner, name: str, argv: list[str], host: Host
) -> tuple[int, str, float | None]:
    path = runner.resolve("check", name)
    outcome = runner.run([str(path), *expand_argv(argv, host)], b"", 5)
    result = parse_plugin_output(
        outcome.stdout,
        outcome.exit_status,
        killed=outcome.timed_out,
        signal_name=outcome.signal_name,
        timeout=5,
        duration_ms=outcome.duration_ms,
        host=host.name,
    )
    return result.rc, result.comment, result.scalar


def test_plugin_found_after_module_dirs(tmp_path: Path, plugin_dir: Path) -> None:
    runner = ModuleRunner([tmp_path / "mod"], [plugin_dir])
    assert runner.resolve("check", "check_fake") == plugin_dir / "check_fake"
    rc, comment, scalar = run_plugin(
        runner, "check_fake", ["1", "port {vars.port} slow", "time=2.5s;2;5;0"], HOSTS[0]
    )
    assert (rc, comment, scalar) == (ReturnCode.WARNING, "WARNING: port 8080 slow", 2.5)
    rc, comment, _ = run_plugin(runner, "check_fake", ["3", "no route to {address}"], HOSTS[0])
    assert (rc, comment) == (ReturnCode.MISCONFIG, "UNKNOWN: no route to 192.0.2.10")
    rc, comment, _ = run_plugin(runner, "check_fake", ["7", "odd"], HOSTS[0])
    assert (rc, comment) == (ReturnCode.MISCONFIG, "plugin exited with status 7: STATUS 7: odd")


def test_plugin_long_output_through_the_runner(plugin_dir: Path) -> None:
    runner = ModuleRunner([], [plugin_dir])
    rc, comment, scalar = run_plugin(runner, "check_disk_fake", [], HOSTS[0])
    assert (rc, comment, scalar) == (
        ReturnCode.OK,
        "DISK OK - free space: / 3326 MB (56%);",
        2643.0,
    )


def test_plugin_dir_may_link_anywhere(tmp_path: Path, plugin_dir: Path) -> None:
    target = make_module(tmp_path / "opt" / "bin", "check_thing", "#!/bin/sh\necho OK\n")
    (plugin_dir / "check_thing").symlink_to(target)
    assert (
        ModuleRunner([], [plugin_dir]).resolve("check", "check_thing") == plugin_dir / "check_thing"
    )


def test_module_dir_shadows_plugin_dir(tmp_path: Path, plugin_dir: Path) -> None:
    mine = make_module(tmp_path / "mod" / "check", "check_fake", "#!/bin/sh\n")
    assert ModuleRunner([tmp_path / "mod"], [plugin_dir]).resolve("check", "check_fake") == mine


@pytest.mark.skipif(not CHECK_DUMMY.exists(), reason="monitoring-plugins-basic is not installed")
def test_real_check_dummy() -> None:
    runner = ModuleRunner([], [CHECK_DUMMY.parent])
    rc, comment, _ = run_plugin(runner, "check_dummy", ["2", "disk on {host} is on fire"], HOSTS[0])
    assert rc == ReturnCode.PROBLEM
    assert comment == "CRITICAL: disk on web1 is on fire"
    rc, _, _ = run_plugin(runner, "check_dummy", ["0"], HOSTS[0])
    assert rc == ReturnCode.OK


def test_bundled_modules_are_found_without_a_module_dir_and_after_the_configured_ones(
    tmp_path: Path,
) -> None:
    bundled = resolve_module.BUNDLED_MODULE_DIR
    finder = resolve_module.ModuleFinder([], [])
    for kind, name in (("format", "plain"), ("transmit", "file"), ("check", "disk")):
        assert finder.resolve(kind, name) == bundled / kind / name
    # A site's module of the same name wins over the bundled one.
    own = tmp_path / "mod" / "format" / "plain"
    own.parent.mkdir(parents=True)
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    finder = resolve_module.ModuleFinder([tmp_path / "mod"], [])
    assert finder.module_dirs == (tmp_path / "mod", bundled)
    assert finder.resolve("format", "plain") == own
    assert finder.resolve("format", "json") == bundled / "format" / "json"
    # The checkout's mod/ is the bundled directory: searched once, not twice.
    checkout_mod = Path(__file__).resolve().parents[1] / "mod"
    assert resolve_module.ModuleFinder([checkout_mod], []).module_dirs == (checkout_mod,)


@pytest.mark.parametrize("way", ["close_range", "listing"])
def test_seal_fds_marks_every_inherited_descriptor_close_on_exec(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if way == "listing":
        monkeypatch.setattr(session_module, "_close_range", None)
    elif session_module._close_range is None:
        pytest.skip("this C library has no close_range (glibc before 2.34)")
    pipes = [os.pipe() for _ in range(50)]
    try:
        for r, w in pipes:
            os.set_inheritable(r, True)
            os.set_inheritable(w, True)
        standard = [os.get_inheritable(fd) for fd in (0, 1, 2)]
        session_module.seal_fds()
        assert not any(os.get_inheritable(fd) for pair in pipes for fd in pair)
        assert [os.get_inheritable(fd) for fd in (0, 1, 2)] == standard  # left alone
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)
