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
    remote=N          place every service on remote workers (DESIGN §7b): the adapter
                      makes a CA and certificates with openssl, starts its own nats-server
                      (`nats_server=PATH`, default from PATH or /usr/sbin) and N
                      `survivor worker` processes on this machine, all in one worker group,
                      before the daemon, and stops them after it. They are not the
                      daemon's children, so the harness's CPU figures are the
                      scheduler's alone; extra_stats() adds the workers' and the broker's
                      CPU (with their checks) per 1,000 results. Default 0: no workers.
    worker_concurrency=N   each worker's `concurrency` (default 200)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
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
        self.remote = int(options.get("remote", "0"))
        if self.remote < 0:
            raise ValueError(f"remote={self.remote}: expected 0 or more workers")
        self.worker_concurrency = int(options.get("worker_concurrency", "200"))
        self.nats_server = options.get("nats_server") or _find_nats_server()
        self.helpers: list[subprocess.Popen[bytes]] = []  # the broker, then the workers
        self.port = 0

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
            "remote workers": "none: every check runs on the scheduler"
            if not self.remote
            else f"{self.remote} local `survivor worker` processes (concurrency "
            f"{self.worker_concurrency}) in one group, via a local nats-server with TLS; "
            "every service placed on them; their CPU is not the daemon's",
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

        self._plugin_dirs = [argv0.parent]
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
            if self.remote:
                self._write_remote(
                    fh, [CLASS_FULL] * bool(full_hosts) + [CLASS_PART] * bool(part_host)
                )

    # -- remote workers (remote=N) -------------------------------------------
    def _worker_names(self) -> list[str]:
        return [f"w{n + 1}" for n in range(self.remote)]

    def _write_remote(self, fh: Any, classes: list[str]) -> None:
        """workers:, worker_groups: and placement: for `remote=N`, with a private CA."""
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        for name in ("ca", "server", "scheduler", *self._worker_names()):
            _issue(pki, name)
        self.port = _free_port()
        broker = {
            "servers": [f"tls://127.0.0.1:{self.port}"],
            "ca": str(pki / "ca.pem"),
            "cert": str(pki / "scheduler.pem"),
            "key": str(pki / "scheduler.key"),
            "subject_prefix": "bench",
        }
        fh.write(f"workers:\n  broker: {_y(broker)}\n  approved:\n")
        for name in self._worker_names():
            fh.write(f"    {name}: {{subject: {_y('CN=' + name)}}}\n")
        fh.write(f"worker_groups:\n  local-workers: {{workers: {_y(self._worker_names())}}}\n")
        fh.write("placement:\n")
        for selector in classes:
            fh.write(f"  {selector}: [local-workers]\n")

    def _start_remote(self) -> None:
        """nats-server with the config `survivor broker-config` renders, then the workers."""
        w, pki = self.workdir, self.workdir / "pki"
        if self.nats_server is None:
            raise RuntimeError("remote=N needs nats-server (apt-get install nats-server)")
        rendered = subprocess.run(
            self._survivor(
                "--config", str(self.cfg), "broker-config",
                "--server-cert", str(pki / "server.pem"), "--server-key", str(pki / "server.key"),
                "--listen", f"127.0.0.1:{self.port}",
            ),
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        (w / "nats.conf").write_text(rendered.stdout)
        self.helpers.append(_spawn([self.nats_server, "-c", str(w / "nats.conf")], w / "nats.log"))
        _wait_port(self.port, self.helpers[0])
        (w / "plugins").mkdir(exist_ok=True)
        plugin_dirs = _y([str(d) for d in self._plugin_dirs])
        for name in self._worker_names():
            worker_file = w / f"{name}.yaml"
            worker_file.write_text(
                f"name: {name}\ngroups: [local-workers]\n"
                f'broker: {{servers: ["tls://127.0.0.1:{self.port}"], ca: pki/ca.pem, '
                f"cert: pki/{name}.pem, key: pki/{name}.key, subject_prefix: bench}}\n"
                f"module_dir: mod\nplugin_dirs: {plugin_dirs}\n"
                f"concurrency: {self.worker_concurrency}\n"
                f"log: {{target: {_y(str(w / (name + '.log')))}, level: warning}}\n"
            )
            argv = self._survivor("worker", "--config", str(worker_file))
            self.helpers.append(_spawn(argv, w / f"{name}.out"))
        for proc, name in zip(self.helpers[1:], self._worker_names(), strict=True):
            _wait_connected(self.port, proc, name)

    def start(self) -> int:
        if self.remote:
            self._start_remote()
        return super().start()

    def stop(self, timeout: float = 30.0) -> None:
        try:
            super().stop(timeout)
        finally:
            for proc in reversed(self.helpers):  # workers first, the broker last
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()

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
        stats = {f"survivor pool {k}": v for k, v in pool.items() if isinstance(v, int)}
        if self.remote:
            stats.update(self._remote_stats(doc))
        return stats

    def _remote_stats(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The workers' and the broker's CPU since they started (with the checks they ran),
        per 1,000 results the daemon recorded since it started (warm-up included)."""
        dispatched = (doc.get("workers") or {}).get("dispatched") or {}
        served = int(dispatched.get("served", 0))
        results = sum(1 for _ in self.results_path.open("rb")) if self.results_path.exists() else 0
        stats: dict[str, Any] = {"remote results served": served, "results recorded": results}
        cpu = {"broker": _cpu_s(self.helpers[0].pid), "workers": 0.0}
        for proc in self.helpers[1:]:
            cpu["workers"] += _cpu_s(proc.pid)
        for what, seconds in cpu.items():
            stats[f"{what} CPU s (incl. checks)"] = round(seconds, 2)
            if results:
                stats[f"{what} CPU s / 1000 results"] = round(1000 * seconds / results, 3)
        return stats


# --------------------------------------------------------------------------- remote helpers


def _find_nats_server() -> str | None:
    for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _issue(pki: Path, name: str) -> None:
    """`name`.pem/.key signed by ca (made first, as `ca`), with CN=name (docs/scaleout.md)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)

    if name == "ca":
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=bench-ca", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
        (pki / "ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
        )
        return
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", f"{name}.pem")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on port {port}")


def _wait_connected(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    """Until the broker lists a client connection named like the worker (its /connz is off:
    watch the worker's process for an established TCP connection to the port instead)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited {proc.returncode}")
        if _has_connection(proc.pid, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker {name} did not connect to the broker")


def _has_connection(pid: int, port: int) -> bool:
    """An established TCP connection of `pid` to 127.0.0.1:`port` (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    want = f"0100007F:{port:04X}"
    return any(
        f[2] == want and f[3] == "01" and f[9] in inodes for f in (line.split() for line in lines)
    )


def _cpu_s(pid: int) -> float:
    """utime + stime of `pid` and of the children it has reaped (its checks), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")
