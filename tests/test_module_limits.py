"""A check's `limits:` on real modules (issue 23): set before the module runs, a module that
goes past one is stopped and its result says which, and checks without limits are untouched.

Each test that runs a limited module runs it both ways survivor.proc.limits has: through
util-linux's prlimit (posix_spawn), and forked with a preexec_fn where prlimit is missing.
The memory and cpu tests run real modules that allocate 3 GiB or spin; each costs about a
second of CPU at most (the cpu limit is 1 s).
"""

from __future__ import annotations

import json
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from survivor.checks.execute import CheckRunner
from survivor.config import load_config
from survivor.model.codes import ReturnCode
from survivor.model.config import Config, Host, ModuleLimits
from survivor.proc import limits as limits_module
from survivor.proc import session as session_module
from survivor.proc.limits import child_rlimits, prlimit_argv
from survivor.proc.runner import ModuleRunner
from survivor.protocol.modules import check_request

MOD = Path(__file__).parent / "fixtures" / "mod"
HOST = Host("web1", "192.0.2.10")


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The executables started by posix_spawn (the fast path; the cwd is "/" as the daemon's)."""
    monkeypatch.chdir("/")
    calls: list[str] = []
    real_spawn = session_module.spawn

    def spying_spawn(*args: Any, **kwargs: Any) -> int:
        calls.append(args[0])
        return real_spawn(*args, **kwargs)

    monkeypatch.setattr(session_module, "spawn", spying_spawn)
    yield calls


@pytest.fixture(params=["prlimit", "fork"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How limited modules start: prlimit(1) when installed, else a fork (no prlimit)."""
    if request.param == "fork":
        monkeypatch.setattr(limits_module, "PRLIMIT_PATHS", ())
    elif limits_module.find_prlimit() is None:
        pytest.skip("no prlimit (util-linux) on this machine; the fork way is tested")
    return str(request.param)


def config_with(tmp_path: Path, checks: str, instance_extra: str = "") -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(
        f"instance: {{state_dir: s, history_dir: h, module_dir: {MOD}, plugin_dirs: []"
        f"{instance_extra}}}\n"
        "schedules: {s: [{every: 5m}]}\n"
        "classes: {c: {hosts: [web1], schedule: s}}\n"
        "hosts: {web1: {address: 192.0.2.10}}\n"
        f"checks:\n{checks}"
    )
    return load_config(path)


def run_one(config: Config, check: str) -> tuple[int, str]:
    runner = CheckRunner(ModuleRunner(config.instance.module_dirs, config.instance.plugin_dirs))
    [result] = runner.run(config, config.checks[check], [config.hosts["web1"]])
    return result.rc, result.comment


def own_limits(comment: str) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = json.loads(comment)
    return seen


# --------------------------------------------------------------------------- set before it runs


def test_limits_are_set_in_the_module_before_it_runs(
    tmp_path: Path, spawned: list[str], way: str
) -> None:
    config = config_with(
        tmp_path,
        "  l: {module: echo-limits, hosts: [c], limits: {memory: 256M, cpu: 5s, files: 64}}\n",
    )
    rc, comment = run_one(config, "l")
    assert rc == ReturnCode.OK
    # address space soft = hard; cpu: SIGXCPU at 5 s, SIGKILL at 6 s; descriptors soft = hard
    assert own_limits(comment) == {"as": [256 << 20] * 2, "cpu": [5, 6], "nofile": [64, 64]}
    if way == "prlimit":  # posix_spawn of prlimit, which sets them and execs the module
        assert spawned == [limits_module.find_prlimit()]
    else:  # posix_spawn cannot set them: the limited child is forked
        assert spawned == []


def test_a_check_without_limits_runs_with_the_daemons_limits_by_posix_spawn(
    tmp_path: Path, spawned: list[str], way: str
) -> None:
    config = config_with(
        tmp_path,
        "  free: {module: echo-limits, hosts: [c]}\n"
        "  capped: {module: echo-limits, hosts: [c], limits: {files: 32}}\n",
    )
    rc, comment = run_one(config, "free")
    assert rc == ReturnCode.OK
    ours = {n: list(resource.getrlimit(getattr(resource, "RLIMIT_" + n.upper())))
            for n in ("as", "cpu", "nofile")}  # fmt: skip
    assert own_limits(comment) == ours
    assert [Path(p).name for p in spawned] == ["echo-limits"]
    # and a limited check after it leaves the daemon's own limits as they were
    assert run_one(config, "capped")[0] == ReturnCode.OK
    assert {n: list(resource.getrlimit(getattr(resource, "RLIMIT_" + n.upper())))
            for n in ("as", "cpu", "nofile")} == ours  # fmt: skip


def test_instance_check_limits_reach_a_check_that_sets_none(tmp_path: Path, way: str) -> None:
    config = config_with(
        tmp_path, "  l: {module: echo-limits, hosts: [c]}\n", ", check_limits: {memory: 512M}"
    )
    rc, comment = run_one(config, "l")
    assert (rc, own_limits(comment)["as"]) == (ReturnCode.OK, [512 << 20] * 2)


def test_a_limit_past_the_daemons_hard_limit_is_cut_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = {resource.RLIMIT_AS: resource.RLIM_INFINITY, resource.RLIMIT_NOFILE: 1024}
    monkeypatch.setattr(limits_module.resource, "getrlimit", lambda which: (0, hard[which]))
    assert child_rlimits(ModuleLimits(memory=1 << 30, files=4096)) == (
        (resource.RLIMIT_AS, 1 << 30, 1 << 30),
        (resource.RLIMIT_NOFILE, 1024, 1024),
    )


# --------------------------------------------------------------------------- going past one


def test_a_module_allocating_past_its_memory_limit_fails_and_says_so(
    tmp_path: Path, way: str
) -> None:
    config = config_with(
        tmp_path, "  big: {module: allocates, hosts: [c], limits: {memory: 256M}}\n"
    )
    rc, comment = run_one(config, "big")
    assert rc == ReturnCode.MISCONFIG
    assert comment == "no result from module (limits: memory 256M; its stderr ends: MemoryError)"


def test_a_module_spinning_past_its_cpu_limit_is_killed_by_sigxcpu(
    tmp_path: Path, way: str
) -> None:
    config = config_with(
        tmp_path, "  spin: {module: spins, hosts: [c], timeout: 20s, limits: {cpu: 1s}}\n"
    )
    rc, comment = run_one(config, "spin")
    assert rc == ReturnCode.MISCONFIG  # not TIMEDOUT: the 20 s timeout never came
    assert comment == "no result from module (module killed by SIGXCPU: cpu limit 1 s)"


def test_a_plugin_ignoring_sigxcpu_is_killed_at_the_hard_cpu_limit(
    tmp_path: Path, way: str
) -> None:
    config = config_with(
        tmp_path,
        "  spin: {plugin: spins, argv: [ignore-xcpu], hosts: [c], timeout: 20s,"
        " limits: {cpu: 1s, memory: 1G}}\n",
    )
    rc, comment = run_one(config, "spin")
    assert rc == ReturnCode.MISCONFIG
    assert comment == "plugin killed by SIGKILL; limits: memory 1G, cpu 1 s"


def test_runner_reports_the_signal_of_a_cpu_limited_module(way: str) -> None:
    runner = ModuleRunner([MOD], [])
    path = runner.resolve("check", "spins")
    outcome = runner.run(
        [str(path)], check_request("s", {}, [HOST], 20), 20, limits=ModuleLimits(cpu=1)
    )
    assert (outcome.signal, outcome.timed_out) == (signal.SIGXCPU, False)


def test_a_killed_module_without_limits_reads_as_before(tmp_path: Path) -> None:
    config = config_with(tmp_path, "  seg: {module: dies-by-signal, hosts: [c]}\n")
    assert run_one(config, "seg") == (
        ReturnCode.MISCONFIG,
        "no result from module (module killed by SIGSEGV)",
    )


def test_prlimit_gets_the_module_argv_after_a_double_dash() -> None:
    # a plugin's own options (-H host) must not be read as prlimit's
    rlimits = ((resource.RLIMIT_AS, 1 << 30, 1 << 30), (resource.RLIMIT_CPU, 5, 6))
    assert prlimit_argv("/usr/bin/prlimit", rlimits, ["/p/check_http", "-H", "x"]) == [
        "/usr/bin/prlimit", "--as=1073741824:1073741824", "--cpu=5:6", "--", "/p/check_http",
        "-H", "x",
    ]  # fmt: skip
