"""schedbench adapter for survivor (this repository).

The harness (`schedbench.py`, kept in /work/shared/bench and not copied here)
loads this file with `--b bench/adapter_survivor.py:SurvivorAdapter`; see
bench/README.md for the commands.

Per point it writes `etc/survivor.yaml` into the scratch dir: one class `bench`
holding every host, one check per service name (`s000` ... `s009`) on that
class, every check on a one-minute schedule, no alert plans, and state,
history, log and the results stream inside the scratch dir. Written line by
line, so the file stays a few hundred KiB at 100,000 services (the hosts are
listed once, in the class, not once per service).

Two ways to run a service's check (option `protocol`):

* `plugin` (default): a Nagios-protocol `plugin:` check per service name, run
  once per host with the workload's argv (`/bin/true`, `check_dummy 0 ok`). The
  command's directory goes into `instance.plugin_dirs` and its basename is the
  plugin name, because survivor looks plugins up by name. One process per
  check@host, as Nagios does: the like-for-like comparison.
* `survivor`: a Survivor-protocol `module:` check per service name, run once
  per minute for all hosts at once. The module (written into the scratch
  dir's mod/check/) answers rc 0 for every host without running anything, so
  this shows what batching buys and what survivor's own per-result work costs;
  it ignores the workload's argv and is not comparable with Nagios.

The daemon is `PYTHON -m survivor --config etc/survivor.yaml run`, behind
`/usr/bin/env PYTHONPATH=...` when the package is not installed: env exec()s
the interpreter, so the PID the harness started is the daemon's.

Options (`--b-opt KEY=VALUE`):

    workers=N         instance.check_workers: at most N checks at once
    workers=default   (the default) no concurrency setting: survivor's defaults, every
                      due check at once within the machine's limits (what a user gets)
    protocol=P        plugin | survivor (default plugin)
    python=PATH       interpreter with survivor's dependencies (PyYAML, click,
                      watchdog, ...); default: the repository's .venv/ or venv/
                      if there is one, else the harness's own interpreter
    pythonpath=DIR    put DIR first on PYTHONPATH (default: this repository's root;
                      `pythonpath=` to use an installed survivor)
    fsync=POLICY      instance.fsync: always | batch | never (default batch)
    log_level=LEVEL   instance.log level (default info)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from schedbench import Adapter, Workload

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "survivor.yaml"
CLASS_FULL = "bench"
CLASS_PART = "bench-part"  # the last host when services do not divide by services_per_host
SCHEDULE = "bench-interval"
MODULE_NAME = "bench-ok"
PROTOCOLS = ("plugin", "survivor")

# Survivor-protocol module that answers OK for every host it is given, at once.
MODULE_SOURCE = """\
import json
import sys

if sys.argv[1:] == ["-v"]:
    print("OK bench-ok: answers rc 0 for every host")
    sys.exit(0)
request = json.load(sys.stdin)
line = '{"host":%s,"rc":0,"comment":"ok"}\\n'
sys.stdout.write("".join(line % json.dumps(h["name"]) for h in request["hosts"]))
"""


def parse_workers(value: str) -> int | None:
    """`workers=`: a number of checks at once (check_workers), or `default` (None: write no
    concurrency setting, so the pair measures survivor out of the box)."""
    if value == "default":
        return None
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"workers={value!r}: expected a whole number or 'default'") from None
    if workers < 1:
        raise ValueError(f"workers={workers}: expected at least 1")
    return workers


def default_python() -> str:
    """The repository's virtualenv (`.venv/` or `venv/`) if there is one, else the harness's."""
    for name in (".venv", "venv"):
        candidate = REPO_ROOT / name / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def _y(value: Any) -> str:
    """A YAML scalar or flow collection: JSON is valid YAML for plain data."""
    return json.dumps(value, separators=(", ", ": "))


class SurvivorAdapter(Adapter):
    name = "survivor"
    reload_ack_re = r"reloading configuration \(SIGHUP\)"
    ready_re = r"scheduler ready:"

    def __init__(self, workdir: Path, options: dict[str, str]):
        super().__init__(workdir, options)
        self.workers = parse_workers(options.get("workers", "default"))
        self.protocol = options.get("protocol", "plugin")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        self.python = options.get("python") or default_python()
        default_path = str(REPO_ROOT) if (REPO_ROOT / "survivor" / "__init__.py").is_file() else ""
        self.pythonpath = options.get("pythonpath", default_path)
        self.fsync = options.get("fsync", "batch")
        self.log_level = options.get("log_level", "info")
        self.workdir = Path(os.path.abspath(workdir))
        # The config gets a directory of its own, as /etc/survivor has: the daemon watches
        # the config's directory for edits, and must not be woken by every results line.
        self.cfg = self.workdir / "etc" / CONFIG_NAME
        self.results_path = self.workdir / "results.jsonl"
        self.log_path = self.workdir / "daemon.log"

    # -- description -------------------------------------------------------
    def _survivor(self, *args: str) -> list[str]:
        """argv running `python -m survivor ARGS`; env exec()s, so the PID stays."""
        prefix = ["/usr/bin/env", f"PYTHONPATH={self.pythonpath}"] if self.pythonpath else []
        return [*prefix, self.python, "-m", "survivor", *args]

    def version(self) -> str:
        probe = (
            "import sys, yaml, click, watchdog, survivor; "
            "print(survivor.__version__, sys.version.split()[0], "
            "'libyaml' if yaml.__with_libyaml__ else 'pure-python yaml')"
        )
        prefix = ["/usr/bin/env", f"PYTHONPATH={self.pythonpath}"] if self.pythonpath else []
        try:
            out = subprocess.run(
                [*prefix, self.python, "-c", probe], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"survivor not runnable: {exc}"
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["?"])[-1]
            return f"survivor not runnable with this python: {last} (set --b-opt python=...)"
        version, python, yaml_kind = out.stdout.split(maxsplit=2)
        return (
            f"survivor {version}{self._git_revision()} "
            f"(Python {python}, {yaml_kind.strip()}, {self.protocol} protocol)"
        )

    def _git_revision(self) -> str:
        """` git abc1234` (`+dirty` with local changes) when run from a checkout."""
        if not self.pythonpath or not (Path(self.pythonpath) / ".git").exists():
            return ""
        try:
            head = subprocess.run(
                ["git", "-C", self.pythonpath, "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", self.pythonpath, "status", "--porcelain", "--", "survivor"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return f" git {head}{'+dirty' if dirty else ''}" if head else ""

    def describe(self) -> dict[str, Any]:
        how = {
            "plugin": "plugin: check per service name, one process per check@host",
            "survivor": "module: check per service name, one process per minute for all hosts "
            "(module answers rc 0 at once; the workload's command is not run)",
        }[self.protocol]
        return {
            "run as": "python -m survivor --config <tmp>/etc/survivor.yaml run, foreground, "
            "started and stopped by PID",
            "check_workers": "default (none written)" if self.workers is None else self.workers,
            "checks": how,
            "schedule": "every interval (1m), spread over the minute by a hash of check@host",
            "alerts / retries / dependencies": "none",
            "fsync": self.fsync,
            "logging": f"file <tmp>/daemon.log, level {self.log_level}",
            "state / history": "check.json rewritten and one history line per result",
            "results stream": "instance.results_log, one JSON line per check, one write()",
        }

    # -- config ------------------------------------------------------------
    def _compile_bytecode(self) -> None:
        """Byte-compile the checkout once, as `pip install` does for an installed package.

        Under PYTHONDONTWRITEBYTECODE (set on some machines) every validation and daemon
        start would otherwise compile the package from source: 35 ms of each timed run.
        """
        if self.pythonpath:
            package = Path(self.pythonpath) / "survivor"
            if package.is_dir():
                subprocess.run(
                    [self.python, "-m", "compileall", "-q", str(package)],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )

    def write_config(self, wl: Workload) -> None:
        if wl.interval_s % 60:
            raise ValueError(f"interval {wl.interval_s}s: survivor schedules in whole minutes")
        self._compile_bytecode()
        w = self.workdir
        self.cfg.parent.mkdir(exist_ok=True)
        check_dir = w / "mod" / "check"
        check_dir.mkdir(parents=True, exist_ok=True)
        argv0 = Path(wl.check_argv[0])
        if self.protocol == "survivor":
            module = check_dir / MODULE_NAME
            module.write_text(f"#!{sys.executable} -S\n{MODULE_SOURCE}")
            module.chmod(0o755)

        hosts = list(wl.host_names())
        # (host, services) rows: every host has services_per_host but maybe the last.
        last_count = wl.services - (len(hosts) - 1) * wl.services_per_host
        full_hosts = hosts if last_count == wl.services_per_host else hosts[:-1]
        part_host = None if last_count == wl.services_per_host else hosts[-1]

        instance = {
            "name": "bench",
            "state_dir": str(w / "state"),
            "history_dir": str(w / "history"),
            "module_dir": str(w / "mod"),
            "plugin_dirs": [str(argv0.parent)],
            **({} if self.workers is None else {"check_workers": self.workers}),
            "fsync": self.fsync,
            "log": {"target": str(self.log_path), "level": self.log_level},
            "results_log": str(self.results_path),
        }
        with open(self.cfg, "w") as fh:
            fh.write("instance:\n")
            for key, value in instance.items():
                fh.write(f"  {key}: {_y(value)}\n")
            fh.write(f"schedules:\n  {SCHEDULE}: [{{every: {wl.interval_s // 60}m}}]\n")
            fh.write(f"classes:\n  {CLASS_FULL}:\n    hosts:\n")
            for host in full_hosts:
                fh.write(f"      - {host}\n")
            if part_host is not None:
                fh.write(f"  {CLASS_PART}:\n    hosts: [{part_host}]\n")
            fh.write("checks:\n")
            for index in range(wl.services_per_host):
                selectors = [CLASS_FULL] if full_hosts else []
                if part_host is not None and index < last_count:
                    selectors.append(CLASS_PART)
                if not selectors:
                    continue
                fh.write(f"  s{index:03d}:\n")
                if self.protocol == "plugin":
                    fh.write(f"    plugin: {_y(argv0.name)}\n")
                    fh.write(f"    argv: {_y(wl.check_argv[1:])}\n")
                else:
                    fh.write(f"    module: {_y(MODULE_NAME)}\n")
                fh.write(f"    hosts: {_y(selectors)}\n")
                fh.write(f"    schedule: {SCHEDULE}\n")

    def validate_argv(self) -> list[str]:
        return self._survivor("--config", str(self.cfg), "validate", "--no-modules")

    def start_argv(self) -> list[str]:
        return self._survivor("--config", str(self.cfg), "run")

    # -- results -----------------------------------------------------------
    def parse_result(self, line: str) -> tuple[float, float] | None:
        try:
            rec = json.loads(line)
            return float(rec["start"]) - float(rec["planned"]), float(rec["duration_ms"]) / 1000
        except (ValueError, KeyError, TypeError):
            return None

    def extra_stats(self) -> dict[str, Any]:
        """The check pool's counters from state/daemon.json (rewritten every 15 s)."""
        try:
            doc = json.loads((self.workdir / "state" / "daemon.json").read_text())
            pool = doc["pools"]["check"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        return {f"survivor pool {k}": v for k, v in pool.items() if isinstance(v, int)}
