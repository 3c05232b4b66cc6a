"""Helpers for the fault suite and the boot tests: configs, hostile modules, a tmpfs, file audits.

The tests write their own configuration (one instance file per test), start the
real daemon through `DaemonProcess`, break something from outside (a signal, a
full or read-only filesystem, a corrupt file, a hostile module) and then audit
what is on disk with the same rules a reader of the state tree relies on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.daemonproc import REPO, DaemonProcess, read_json

# --------------------------------------------------------------------------- configs

INSTANCE = """\
instance:
  name: {name}
  state_dir: {state_dir}
  history_dir: {history_dir}
  module_dir: ../mod
  check_workers: {workers}
  default_timeout: {timeout}
  fsync: batch
  log: {log}
  results_log: {results_log}
"""

REST = """\
hosts:
{hosts}
classes:
  web: {{hosts: [{host_list}], schedule: every-minute}}
schedules:
  every-minute: [{{every: 1m}}]
  every-5m: [{{every: 5m}}]
  hourly: [{{every: 1h}}]
checks:
{checks}"""


def config_text(
    checks: str,
    *,
    name: str = "faults",
    hosts: tuple[str, ...] = ("web1", "web2"),
    workers: int = 4,
    timeout: str = "5s",
    log: str = "{target: stderr, level: info}",
    state_dir: str = "../state",
    history_dir: str = "../history",
    results_log: str = "../results.jsonl",
) -> str:
    """An instance file: hosts in class `web` (every minute), and the given `checks:` lines."""
    return INSTANCE.format(
        name=name,
        state_dir=state_dir,
        history_dir=history_dir,
        workers=workers,
        timeout=timeout,
        log=log,
        results_log=results_log,
    ) + REST.format(
        hosts="\n".join(f"  {h}: {{address: 127.0.0.1}}" for h in hosts),
        host_list=", ".join(hosts),
        checks=checks,
    )


def write_config(tree: Path, checks: str, **options: Any) -> Path:
    path = tree / "etc" / "survivor.yaml"
    path.write_text(config_text(checks, **options))
    return path


def write_module(tree: Path, name: str, body: str, *, kind: str = "check") -> Path:
    """An executable module in the scratch tree's mod/<kind>/ (mode 755)."""
    path = tree / "mod" / kind / name
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- processes


def cli(
    tree: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`python -m survivor --config tree/etc/survivor.yaml ARGS` with the repo on the path."""
    return subprocess.run(
        [sys.executable, "-m", "survivor", "--config", str(tree / "etc" / "survivor.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PYTHONPATH": str(REPO),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            **(env or {}),
        },
    )


def start_daemon(
    started: list[DaemonProcess],
    tree: Path,
    *args: str,
    origin: float | None = None,
    speed: float = 60.0,
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    """Start `survivor run ARGS` on the tree and wait for READY=1; the fixture kills it later."""
    d = DaemonProcess(tree / "etc" / "survivor.yaml", tree, origin=origin, speed=speed)
    d.extra_env.update(env or {})
    started.append(d)
    return d.start(*args).wait_ready()


def module_processes(instance: str) -> list[int]:
    """Pids of live processes started as modules of `instance` (SURVIVOR_INSTANCE in environ)."""
    tag = f"SURVIVOR_INSTANCE={instance}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def kill_module_processes(instance: str) -> None:
    for pid in module_processes(instance):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process: the most memory it has held at once."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


# --------------------------------------------------------------------------- reading the tree


def daemon_doc(tree: Path, state_dir: str = "state") -> dict[str, Any]:
    return read_json(tree / state_dir / "daemon.json") or {}


def generation(tree: Path, state_dir: str = "state") -> int:
    return int((daemon_doc(tree, state_dir).get("config") or {}).get("generation", 0))


def results(tree: Path, path: str = "results.jsonl") -> list[dict[str, Any]]:
    """Records of the results log (the one stream that lives outside state and history)."""
    try:
        data = (tree / path).read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split(b"\n") if line]


def results_for(tree: Path, check: str, host: str) -> list[dict[str, Any]]:
    return [r for r in results(tree) if r["check"] == check and r["host"] == host]


def history_records(history: Path, host: str, check: str) -> list[dict[str, Any]]:
    records = []
    for f in sorted((history / "host" / host / check).glob("check-*.jsonl")):
        for raw in f.read_bytes().split(b"\n"):
            if raw:
                records.append(json.loads(raw))
    return records


def events(tree: Path, history_dir: str = "history") -> list[dict[str, Any]]:
    out = []
    for f in sorted((tree / history_dir / "daemon").glob("events-*.jsonl")):
        out.extend(json.loads(x) for x in f.read_text().splitlines() if x)
    return out


def check_doc(state: Path, host: str, check: str) -> dict[str, Any] | None:
    return read_json(state / "host" / host / check / "check.json")


# --------------------------------------------------------------------------- audits


def audit_state(state: Path) -> int:
    """Every state document parses as a JSON object of version 1; returns how many there are.

    Files moved aside (`*.corrupt-*`), the pidfile and lock files are not documents.
    """
    count = 0
    for path in state.rglob("*.json"):
        if path.name.startswith("."):
            continue
        doc = json.loads(path.read_bytes())
        assert isinstance(doc, dict) and doc.get("version") == 1, path
        count += 1
    return count


def audit_history(history: Path, *, torn_tail_ok: bool = True) -> int:
    """Every history line parses; only a last line without a newline may be torn."""
    count = 0
    for path in history.rglob("*.jsonl"):
        lines = path.read_bytes().split(b"\n")
        tail = lines.pop()
        if tail and not torn_tail_ok:
            raise AssertionError(f"{path}: torn last line {tail[:80]!r}")
        for n, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError as err:
                raise AssertionError(f"{path}:{n}: {err}: {line[:80]!r}") from None
            assert isinstance(record, dict) and record.get("v") == 1, f"{path}:{n}"
            count += 1
    return count


def temp_files(root: Path) -> list[Path]:
    """Temporary files of the atomic writer (`.NAME-XXXX.tmp`) under `root`."""
    return [p for p in root.rglob(".*.tmp") if p.is_file()]


def log_lines(tree: Path, needle: str) -> list[str]:
    try:
        text = (tree / "daemon.log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if needle in line]


# --------------------------------------------------------------------------- a small filesystem


class Tmpfs:
    """A tmpfs mounted by the test (root only), to fill up or remount read-only."""

    def __init__(self, mountpoint: Path, size: str = "256k") -> None:
        self.mountpoint = mountpoint
        self.size = size
        self.mounted = False
        self.filler = mountpoint / "filler"

    def mount(self) -> Tmpfs:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={self.size},mode=0755",
                "tmpfs",
                str(self.mountpoint),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.mounted = True
        return self

    def fill(self) -> int:
        """Write a filler file until the filesystem is full; returns its size."""
        written = 0
        with open(self.filler, "ab", buffering=0) as fh:
            chunk = b"\0" * 4096
            while True:
                try:
                    written += fh.write(chunk) or 0
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
        # Leave no partial page that a tiny write could still use.
        for size in (1024, 256, 64, 16, 1):
            with contextlib.suppress(OSError), open(self.filler, "ab", buffering=0) as fh:
                while fh.write(b"\0" * size):
                    written += size
        return written

    def exhaust_inodes(self) -> int:
        """Create empty files until no inode is left (mount with `nr_inodes=`)."""
        spare = self.mountpoint / "inodes"
        spare.mkdir()
        count = 0
        while True:
            try:
                (spare / str(count)).touch()
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                return count
            count += 1

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(self.mountpoint)], check=True, timeout=30
        )

    def unmount(self) -> None:
        if not self.mounted:
            return
        done = subprocess.run(["umount", str(self.mountpoint)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        self.mounted = False


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str = "256k") -> Iterator[Tmpfs]:
    fs = Tmpfs(mountpoint, size).mount()
    try:
        yield fs
    finally:
        fs.unmount()


# --------------------------------------------------------------------------- waiting


def wait_results(tree: Path, check: str, host: str, at_least: int, timeout: float = 20.0) -> None:
    wait_until(
        lambda: len(results_for(tree, check, host)) >= at_least,
        timeout,
        f"{at_least} results of {check}@{host} in the results log",
    )


def wait_code(state: Path, host: str, check: str, rc: int, timeout: float = 20.0) -> dict[str, Any]:
    """check.json of check@host once it shows `rc`."""

    def shows() -> dict[str, Any] | None:
        doc = check_doc(state, host, check)
        return doc if doc is not None and doc.get("rc") == rc else None

    found = wait_until(shows, timeout, f"{check}@{host} to show rc {rc}")
    assert isinstance(found, dict)
    return found


def world_writable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWOTH)


def quiet_period(seconds: float) -> None:
    """Let the daemon run for a while when the test must observe the absence of something.

    Not a synchronisation: the assertions that follow hold whenever they run; the
    wait only gives the daemon time to do what it must not.
    """
    time.sleep(seconds)
