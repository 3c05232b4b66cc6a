"""Boot and control: the systemd unit, the SysV script, `run --daemon`, reload/stop --wait,
sd_notify, stale-config reporting and logging, each against the real daemon.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration import faultkit as fk
from tests.integration.daemonproc import REPO, DaemonProcess, read_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

UNIT = REPO / "etc" / "survivor.service"
INIT = REPO / "etc" / "init.d" / "survivor"
ALIVE = "  alive: {module: ok, hosts: [web]}\n"


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


def collect(d: DaemonProcess, until: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
    """Notification fields in arrival order, until `until(fields)` holds."""
    fields: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(fields):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"notifications so far: {fields}\n{d.log()}")
        fields.extend(d.notifications(min(left, 0.5)))
    return fields


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# --------------------------------------------------------------------------- the systemd unit


def unit_settings() -> dict[str, list[str]]:
    """Key -> values of the unit file (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)\s*([a-z]*)", value)
    assert m and m[2] in units, value
    return int(m[1]) * units[m[2]]


def test_unit_file_says_what_the_daemon_needs() -> None:
    from survivor.cli.daemon_cmds import run

    s = unit_settings()
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    start = one["ExecStart"].split()
    assert start == ["/opt/survivor/bin/survivor", "--config", "/etc/survivor/survivor.yaml", "run"]
    reload = one["ExecReload"].split()
    assert reload[:3] == start[:3] and reload[3:5] == ["reload", "--wait"]
    assert one["KillMode"] == "mixed"
    assert one["Restart"] == "on-failure" and seconds(one["RestartSec"]) >= 1
    assert "StartLimitIntervalSec" in s and "StartLimitBurst" in s
    assert one["RestartPreventExitStatus"] == "78"  # a bad config does not fix itself
    grace = next(p.default for p in run.params if p.name == "grace")
    assert isinstance(grace, float)
    assert seconds(one["TimeoutStopSec"]) >= grace + 10
    timeout = float(reload[reload.index("--timeout") + 1]) if "--timeout" in reload else 60.0
    assert timeout < seconds(one.get("TimeoutStartSec", "90"))  # ExecReload runs under it
    assert seconds(one["WatchdogSec"]) >= 30
    assert one["User"] == "survivor"
    assert one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] in ("strict", "full")
    if one["ProtectSystem"] == "strict":
        writable = " ".join(s.get("ReadWritePaths", []) + s.get("StateDirectory", []))
        assert "/var/lib/survivor" in writable or "survivor" in s.get("StateDirectory", [])
    assert one["PrivateTmp"] == "yes" and one["ProtectHome"] == "read-only"
    # Settings that would break modules: ping, procs, device checks, any protocol.
    for breaking in ("ProtectProc", "PrivateNetwork", "RestrictAddressFamilies", "PrivateDevices"):
        assert breaking not in s, breaking
    assert "CAP_NET_RAW" in one.get("CapabilityBoundingSet", "CAP_NET_RAW")


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify also checks that ExecStart= exists: point it at a real executable.
    launcher = tmp_path / "survivor"
    launcher.write_text("#!/bin/sh\nexit 0\n")
    launcher.chmod(0o755)
    unit = tmp_path / "survivor.service"
    unit.write_text(UNIT.read_text().replace("/opt/survivor/bin/survivor", str(launcher)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if "survivor.service" in line]
    assert done.returncode == 0 and not problems, done.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=55", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in security.stderr or "unrecognized option" in security.stderr:
        pytest.skip("this systemd-analyze cannot score a unit file offline")
    assert security.returncode == 0, "hardening got weaker:\n" + security.stdout[-1500:]


# --------------------------------------------------------------------------- sd_notify


def test_notify_ready_reloading_and_stopping(scratch: Path, daemons: list[DaemonProcess]) -> None:
    config = fk.write_config(scratch, ALIVE)
    d = DaemonProcess(scratch / "etc" / "survivor.yaml", scratch)
    daemons.append(d)
    d.start()
    first = collect(d, lambda f: "READY=1" in f)
    assert any(f.startswith("STATUS=") and "generation 1" in f for f in first), first
    assert (scratch / "state" / "survivor.pid").read_text().strip() == str(d.pid)

    config.write_text(config.read_text() + "  extra: {module: warn, hosts: [web1]}\n")
    before = monotonic_usec()
    d.signal(signal.SIGHUP)  # a changed config: generation 2 (the same one keeps generation 1)
    fields = collect(d, lambda f: "RELOADING=1" in f and "READY=1" in f[f.index("RELOADING=1") :])
    after = monotonic_usec()
    assert fields.index("RELOADING=1") < fields.index("READY=1")
    usec = [int(f.split("=", 1)[1]) for f in fields if f.startswith("MONOTONIC_USEC=")]
    assert len(usec) == 1 and before <= usec[0] <= after, (before, usec, after)
    assert any(f.startswith("STATUS=") and "generation 2" in f for f in fields), fields

    d.signal(signal.SIGTERM)
    collect(d, lambda f: "STOPPING=1" in f)
    assert d.wait_exit(30) == 0


def test_notify_after_a_refused_reload_is_still_ready(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch)
    config.write_text(config.read_text() + "  broken: {module: ok, hosts: [nowhere]}\n")
    d.signal(signal.SIGHUP)
    fields = collect(d, lambda f: "RELOADING=1" in f and "READY=1" in f[f.index("RELOADING=1") :])
    assert any(f.startswith("STATUS=") and "failed" in f for f in fields), fields
    assert fk.generation(scratch) == 1


def test_watchdog_pings_only_when_asked(scratch: Path, daemons: list[DaemonProcess]) -> None:
    """Real time here (speed 1): WATCHDOG_USEC=1s means a ping every half second."""
    fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch, speed=1.0, env={"WATCHDOG_USEC": "1000000"})
    started = time.monotonic()
    fields = collect(d, lambda f: f.count("WATCHDOG=1") >= 4, timeout=6)
    assert time.monotonic() - started < 3.5, "pings must come every WatchdogSec/2"
    assert fields.count("WATCHDOG=1") >= 4

    for env in ({}, {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}):  # not ours: ignore
        other = fk.start_daemon(daemons, fk_tree(scratch, f"w{len(env)}"), speed=1.0, env=env)
        deadline = time.monotonic() + 1.5
        heard: list[str] = []
        while time.monotonic() < deadline:
            heard.extend(other.notifications(0.3))
        assert "WATCHDOG=1" not in heard, (env, heard)


def fk_tree(scratch: Path, name: str) -> Path:
    """A second tree beside `scratch` (its own state), sharing the modules."""
    tree = scratch.parent / name
    (tree / "etc").mkdir(parents=True)
    (tree / "mod").symlink_to(scratch / "mod")
    fk.write_config(tree, ALIVE)
    return tree


# --------------------------------------------------------------------------- reload and stop --wait


def test_reload_wait_applies_a_good_config(scratch: Path, daemons: list[DaemonProcess]) -> None:
    config = fk.write_config(scratch, ALIVE)
    fk.start_daemon(daemons, scratch)
    config.write_text(config.read_text() + "  extra: {module: warn, hosts: [web1]}\n")
    done = fk.cli(scratch, "reload", "--wait")
    assert done.returncode == 0, done.stderr
    assert "generation 2" in done.stdout
    assert fk.generation(scratch) == 2  # already there when the command returns
    assert fk.daemon_doc(scratch)["last_reload"]["ok"] is True


def test_reload_wait_refuses_a_bad_config_without_signalling(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch)
    config.write_text(config.read_text() + "  broken: {module: ok, hosts: [nowhere]}\n")
    done = fk.cli(scratch, "reload", "--wait")
    assert done.returncode == 1
    assert "survivor.yaml:" in done.stderr and "nowhere" in done.stderr
    heard: list[str] = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        heard.extend(d.notifications(0.3))
    assert "RELOADING=1" not in heard, "a config that does not validate must not be sent"
    assert fk.generation(scratch) == 1 and fk.daemon_doc(scratch)["last_reload"] is None


def test_reload_wait_gives_up_on_a_daemon_that_does_not_answer(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch)
    d.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = fk.cli(scratch, "reload", "--wait", "--timeout", "1")
        assert done.returncode == 1 and "did not report the reload within 1 s" in done.stderr
        assert time.monotonic() - started < 10
        stopping = fk.cli(scratch, "stop", "--wait", "--timeout", "1")
        assert stopping.returncode == 1 and "still running after 1 s" in stopping.stderr
    finally:
        d.signal(signal.SIGCONT)
    # The signals were delivered all the same: the daemon reloads, then stops.
    assert d.wait_exit(30) == 0


def test_reload_and_stop_without_a_daemon_say_why(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    fk.write_config(scratch, ALIVE)
    for command in (("reload", "--wait"), ("stop", "--wait")):
        done = fk.cli(scratch, *command)
        assert done.returncode == 1
        assert "no survivor daemon is running" in done.stderr and "absent" in done.stderr
    d = fk.start_daemon(daemons, scratch)
    d.kill()  # kill -9: the pidfile stays, unlocked
    assert (scratch / "state" / "survivor.pid").exists()
    for command in (("reload", "--wait"), ("stop", "--wait")):
        done = fk.cli(scratch, *command)
        assert done.returncode == 1
        assert "stale" in done.stderr, done.stderr


def test_stop_wait_returns_once_the_daemon_is_gone(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch)
    done = fk.cli(scratch, "stop", "--wait")
    assert done.returncode == 0 and f"pid {d.pid}" in done.stdout, done.stderr
    assert not (scratch / "state" / "survivor.pid").exists()
    assert d.wait_exit(5) == 0
    assert fk.daemon_doc(scratch)["mood"] == "stopped"


def test_generation_keeps_counting_across_restarts(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch)
    config.write_text(config.read_text() + "  extra: {module: warn, hosts: [web1]}\n")
    d.signal(signal.SIGHUP)  # a changed config: a new generation (an unchanged one keeps it)
    wait_until(lambda: fk.generation(scratch) == 2, 10, "generation 2")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0
    fk.start_daemon(daemons, scratch)
    assert fk.generation(scratch) == 3


# ------------------------------------------------------------------ config and mod/ changes


def test_config_edit_marks_daemon_json_stale_within_seconds(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    """Real time (speed 1): the 15 s heartbeat alone would be too slow to pass."""
    config = fk.write_config(scratch, ALIVE)
    d = fk.start_daemon(daemons, scratch, speed=1.0)
    text = config.read_text()
    wait_until(lambda: fk.daemon_doc(scratch).get("config"), 5, "daemon.json")
    assert fk.daemon_doc(scratch)["config"]["stale"] is False

    config.write_text(text)  # same content, new mtime: nothing to apply
    edited = time.monotonic()
    config.write_text(text + "  extra: {module: warn, hosts: [web1]}\n")

    def stale() -> bool:
        return bool((fk.daemon_doc(scratch).get("config") or {}).get("stale"))

    wait_until(stale, 8, "daemon.json config.stale")
    assert time.monotonic() - edited < 8
    shown = fk.cli(scratch, "status")
    assert "CHANGED ON DISK" in shown.stdout, shown.stdout

    d.signal(signal.SIGHUP)
    wait_until(lambda: fk.generation(scratch) == 2 and not stale(), 10, "SIGHUP to clear it")
    assert "CHANGED ON DISK" not in fk.cli(scratch, "status").stdout


def test_touching_the_config_without_changes_is_not_stale(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    config = fk.write_config(scratch, ALIVE)
    fk.start_daemon(daemons, scratch, speed=1.0)
    wait_until(lambda: fk.daemon_doc(scratch).get("config"), 5, "daemon.json")
    config.write_text(config.read_text())
    # The change is noticed (debounced, then compared) ...
    wait_until(
        lambda: (fk.daemon_doc(scratch).get("config") or {}).get("on_disk", {}).get("checked_at"),
        8,
        "the daemon to look at the config on disk",
    )
    # ... and found to be the running one.
    assert fk.daemon_doc(scratch)["config"]["stale"] is False


# --------------------------------------------------------------------------- logging


def test_file_logging_has_no_line_per_ok_check(scratch: Path, daemons: list[DaemonProcess]) -> None:
    logfile = scratch / "log" / "survivor.log"
    fk.write_config(scratch, ALIVE, log=f"{{target: {logfile}, level: info}}")
    d = fk.start_daemon(daemons, scratch)
    fk.wait_results(scratch, "alive", "web2", 6)
    text = logfile.read_text()
    assert "scheduler ready" in text
    assert len([x for x in text.splitlines() if "alive@web1" in x]) <= 1  # NEW -> OK only
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0
    assert "stopped" in logfile.read_text()
    assert "scheduler ready" not in d.log(), "with a file target nothing goes to stderr"
    assert oct(logfile.stat().st_mode & 0o777) == oct(0o644)


def test_syslog_target_sends_to_syslog(scratch: Path, daemons: list[DaemonProcess]) -> None:
    if Path("/dev/log").exists():
        pytest.skip("/dev/log exists: the test would write into the real system log")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 514))  # where SysLogHandler goes without /dev/log
    except OSError as err:
        sock.close()
        pytest.skip(f"cannot listen on udp/514: {err}")
    with contextlib.closing(sock):
        fk.write_config(scratch, ALIVE, log="{target: syslog, level: info}")
        fk.start_daemon(daemons, scratch)
        sock.settimeout(5)
        heard = []
        with contextlib.suppress(TimeoutError):
            while not any("scheduler ready" in m for m in heard):
                heard.append(sock.recv(4096).decode(errors="replace"))
        assert any(re.match(r"<\d+>survivor\[\d+\]: scheduler ready", m) for m in heard), heard


# --------------------------------------------------------------------------- run --daemon


def test_run_daemon_detaches_and_is_controlled_by_its_pidfile(
    scratch: Path, daemons: list[DaemonProcess]
) -> None:
    logfile = scratch / "survivor.log"
    fk.write_config(scratch, ALIVE, log=f"{{target: {logfile}, level: info}}")
    started = time.monotonic()
    fast = {"SURVIVOR_TEST_CLOCK_SPEED": "60"}
    done = fk.cli(scratch, "run", "--daemon", env=fast, timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    pidfile = scratch / "state" / "survivor.pid"
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pidfile"))  # type: ignore[arg-type]
    try:
        assert alive(pid) and os.getsid(pid) != os.getsid(0), "detached: a session of its own"
        wait_until(lambda: fk.daemon_doc(scratch).get("pid") == pid, 10, "daemon.json")
        fk.wait_results(scratch, "alive", "web1", 2)
        assert f"detached as pid {pid}" in logfile.read_text()
        assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")

        again = fk.cli(scratch, "run", "--daemon", timeout=30)
        assert again.returncode == 1 and f"pid {pid}" in again.stderr, again.stderr

        reloaded = fk.cli(scratch, "reload", "--wait")
        assert reloaded.returncode == 0 and "no changes" in reloaded.stdout, reloaded.stderr
        assert fk.generation(scratch) == 1  # the same config keeps its generation
        assert fk.daemon_doc(scratch)["last_reload"]["ok"] is True
        stopped = fk.cli(scratch, "stop", "--wait")
        assert stopped.returncode == 0, stopped.stderr
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
        assert fk.daemon_doc(scratch)["mood"] == "stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_run_daemon_with_a_bad_config_fails_in_the_foreground(scratch: Path) -> None:
    fk.write_config(scratch, "  alive: {module: ok, hosts: [nowhere]}\n")
    done = fk.cli(scratch, "run", "--daemon", timeout=30)
    assert done.returncode == 78
    assert "survivor.yaml:" in done.stderr and "nowhere" in done.stderr
    assert not (scratch / "state").exists()


# --------------------------------------------------------------------------- the SysV script


class Init:
    """etc/init.d/survivor pointed at a scratch tree through $SURVIVOR_DEFAULTS."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.bin = tree / "bin" / "survivor"  # named survivor: start-stop-daemon matches comm
        self.bin.parent.mkdir()
        self.bin.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from survivor.cli import run\n"
            "run()\n"
        )
        self.bin.chmod(0o755)
        self.pidfile = tree / "state" / "survivor.pid"
        self.output = tree / "log" / "survivor.out"
        self.defaults = tree / "default-survivor"
        self.defaults.write_text(
            f"SURVIVOR_BIN={self.bin}\n"
            f"SURVIVOR_CONFIG={tree / 'etc' / 'survivor.yaml'}\n"
            f"SURVIVOR_PIDFILE={self.pidfile}\n"
            "SURVIVOR_USER=root\n"
            f"SURVIVOR_OUTPUT={self.output}\n"
            'SURVIVOR_OPTS="--grace 3"\n'
            "SURVIVOR_START_TIMEOUT=20\n"
            "SURVIVOR_STOP_TIMEOUT=10\n"
        )

    def __call__(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(INIT), action],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "SURVIVOR_DEFAULTS": str(self.defaults),
                "LANG": "C.UTF-8",
            },
        )

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def init(scratch: Path) -> Iterator[Init]:
    if shutil.which("start-stop-daemon") is None:
        pytest.skip("start-stop-daemon (dpkg) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the init script is run as root")
    script = Init(scratch)
    yield script
    script.kill()


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_init_script_has_an_lsb_header() -> None:
    text = INIT.read_text()
    block = text.split("### BEGIN INIT INFO\n", 1)[1].split("### END INIT INFO", 1)[0]
    fields = dict(
        re.fullmatch(r"# ([A-Za-z-]+):\s+(.*)", line).groups()  # type: ignore[union-attr]
        for line in block.splitlines()
        if not line.startswith("#  ")
    )
    assert fields["Provides"] == "survivor"
    assert {"$remote_fs", "$syslog", "$network"} <= set(fields["Required-Start"].split())
    assert fields["Default-Start"].split() == ["2", "3", "4", "5"]
    assert fields["Default-Stop"].split() == ["0", "1", "6"]
    assert fields["Short-Description"]
    assert os.access(INIT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(INIT)]).returncode == 0


def test_init_script_lifecycle(scratch: Path, init: Init) -> None:
    config = fk.write_config(scratch, ALIVE)
    assert init("status").returncode == 3
    assert init("stop").returncode == 0, "stop when stopped succeeds"

    started = init("start")
    assert started.returncode == 0, started.stderr
    pid = init.pid()
    assert alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "survivor"
    assert fk.daemon_doc(scratch).get("pid") == pid, "READY=1 came after daemon.json"
    assert f"pid {pid}" in started.stdout

    again = init("start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert init.pid() == pid
    status = init("status")
    assert status.returncode == 0 and f"pid {pid}" in status.stdout

    config.write_text(config.read_text() + "  extra: {module: warn, hosts: [web1]}\n")
    reloaded = init("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert fk.generation(scratch) == 2
    before = fk.daemon_doc(scratch)["last_reload"]["at"]
    assert init("force-reload").returncode == 0
    assert fk.generation(scratch) == 2  # nothing changed: the generation stays
    assert fk.daemon_doc(scratch)["last_reload"]["at"] != before  # but it did reload

    restarted = init("restart")
    assert restarted.returncode == 0, restarted.stderr
    new_pid = init.pid()
    assert new_pid != pid and alive(new_pid) and not alive(pid)

    stopped = init("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(new_pid) and not init.pidfile.exists()
    assert fk.daemon_doc(scratch)["mood"] == "stopped"
    assert init("status").returncode == 3
    assert init("stop").returncode == 0
    assert init("reload").returncode == 7
    assert init("try-restart").returncode == 0 and init.pid() is None
    bad = init("frobnicate")
    assert bad.returncode == 2 and "Usage:" in bad.stderr
    assert "scheduler ready" in init.output.read_text(), "stderr goes to SURVIVOR_OUTPUT"


def test_init_script_start_with_a_bad_config_fails_at_once(scratch: Path, init: Init) -> None:
    fk.write_config(scratch, "  alive: {module: ok, hosts: [nowhere]}\n")
    began = time.monotonic()
    done = init("start")
    assert done.returncode == 6
    assert "survivor.yaml:" in done.stderr and "nowhere" in done.stderr
    assert time.monotonic() - began < 15, "not after the notify timeout"
    assert init.pid() is None and init("status").returncode == 3


def test_init_script_keeps_the_daemon_on_a_bad_reload_or_restart(scratch: Path, init: Init) -> None:
    config = fk.write_config(scratch, ALIVE)
    assert init("start").returncode == 0
    pid = init.pid()
    good = config.read_text()
    config.write_text(good + "  broken: {module: ok, hosts: [nowhere]}\n")
    refused = init("reload")
    assert refused.returncode == 1 and "nowhere" in refused.stderr
    assert fk.generation(scratch) == 1
    kept = init("restart")
    assert kept.returncode == 6 and "nowhere" in kept.stderr
    assert init.pid() == pid and alive(pid), "a restart with a bad config stops nothing"
    config.write_text(good)
    assert init("stop").returncode == 0


def test_init_script_after_kill_9(scratch: Path, init: Init) -> None:
    fk.write_config(scratch, ALIVE)
    assert init("start").returncode == 0
    pid = init.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # start-stop-daemon counts a zombie as running; init reaps the orphan.
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 20, "init to reap the daemon")
    dead = init("status")
    assert dead.returncode == 1 and "exists" in dead.stdout
    assert init("start").returncode == 0, "a stale pidfile is taken over"
    assert alive(init.pid()) and init.pid() != pid
    assert init("stop").returncode == 0 and init("status").returncode == 3


def test_init_script_notices_a_pidfile_setting_that_does_not_match(
    scratch: Path, init: Init
) -> None:
    fk.write_config(scratch, ALIVE)
    text = init.defaults.read_text().replace(str(init.pidfile), str(scratch / "elsewhere.pid"))
    init.defaults.write_text(text)
    try:
        done = init("start")
        assert done.returncode == 1 and "SURVIVOR_PIDFILE" in done.stderr
    finally:
        pid = read_json(scratch / "state" / "daemon.json")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid["pid"]), signal.SIGKILL)


def test_logrotate_config_covers_the_logs(tmp_path: Path) -> None:
    """The shipped file, run for real by logrotate on a scratch log directory.

    It names /var/log/survivor and the `survivor` user, which need not exist
    here (a test must not depend on what is installed): the copy run is the
    same file with only those two rewritten, to a scratch directory and the
    user running the test.
    """
    import grp
    import pwd

    conf = REPO / "etc" / "logrotate.d" / "survivor"
    text = conf.read_text()
    assert "/var/log/survivor/*.log {" in text and "copytruncate" in text
    assert "\tsu survivor survivor\n" in text
    logrotate = shutil.which("logrotate")
    if logrotate is None:
        pytest.skip("logrotate is not installed")
    logs = tmp_path / "log"
    logs.mkdir(mode=0o755)
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    copy = tmp_path / "survivor.logrotate"
    copy.write_text(
        text.replace("/var/log/survivor/*.log {", f"{logs}/*.log {{").replace(
            "\tsu survivor survivor\n", f"\tsu {user} {group}\n"
        )
    )
    (logs / "survivor.log").write_text("line 1\nline 2\n")
    state = tmp_path / "logrotate.state"
    done = subprocess.run(
        [logrotate, "--force", "--state", str(state), str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    # copytruncate: the daemon's descriptor keeps pointing at an emptied survivor.log.
    assert (logs / "survivor.log").read_text() == ""
    assert (logs / "survivor.log.1").read_text() == "line 1\nline 2\n"  # delaycompress
