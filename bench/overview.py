"""Time `survivor status` at N pairs, from the files and from the daemon's overview.json.

    python3 bench/overview.py DIR [HOSTS] [ROUNDS]

Makes DIR (once): an instance of HOSTS hosts (default 2,000) times 10 checks,
each pair with a check.json (every 97th CRITICAL, every 400th acknowledged),
a daemon.json and a queue.json. Then, standing in for the daemon (it holds the
pidfile and keeps daemon.json fresh, so the views trust what it writes), it
times `status`, `status --json` and `status --problems` ROUNDS times each
(median wall, CPU and peak RSS, from /usr/bin/time) twice: without
overview.json (every check.json read) and with the one the daemon's code
writes (store/overview.py). It checks that both print the same. The figures
go into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from survivor.clock import SystemClock, utc_iso  # noqa: E402
from survivor.model.config import FsyncPolicy  # noqa: E402
from survivor.store.fsio import FileWriter  # noqa: E402
from survivor.store.pidfile import PidFile  # noqa: E402
from survivor.store.state import StateStore  # noqa: E402

CHECKS = 10
COMMANDS = (["status"], ["status", "--json"], ["status", "--problems"])


def make(root: Path, hosts: int) -> None:
    state = root / "state"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    with open(root / "etc/survivor.yaml", "w") as fh:
        fh.write(
            f"instance:\n  name: bench\n  state_dir: {state}\n  history_dir: {root / 'history'}\n"
            "  log: {target: stderr, level: warning}\n"
            "schedules:\n  m: [{every: 1m}]\nclasses:\n  bench:\n    hosts:\n"
        )
        fh.writelines(f"      - h{h:05d}\n" for h in range(hosts))
        fh.write("checks:\n")
        for i in range(CHECKS):
            fh.write(f"  s{i:03d}:\n    plugin: check_dummy\n    argv: ['0', ok]\n")
            fh.write("    hosts: [bench]\n    schedule: m\n")
    doc = {
        "version": 1,
        "rc": 0,
        "code": "OK",
        "since": "2026-11-01T00:00:17.412Z",
        "consecutive": 563,
        "last_start": "2026-12-07T10:00:17.412Z",
        "last_planned": "2026-12-07T10:00:00.000Z",
        "duration_ms": 8,
        "scalar": 2.18,
        "comment": "3/3 replies, rtt avg 2.18 ms",
        "perfdata": [{"label": "rtt", "value": 2.18, "uom": "ms", "warn": "200", "crit": "1000"}],
        "next_due": "2026-12-07T10:01:00.000Z",
        "fingerprint": "5d1c0f2a9b44",
        "generation": 8,
        "reschedule": False,
    }
    ack = {"version": 1, "user": "op", "at": "2026-12-07T09:00:00.000Z", "comment": "seen"}
    k = 0
    for h in range(hosts):
        for i in range(CHECKS):
            pair = state / "host" / f"h{h:05d}" / f"s{i:03d}"
            pair.mkdir(parents=True, exist_ok=True)
            bad = {"rc": 2, "code": "CRITICAL", "comment": "down"} if k % 97 == 0 else {}
            (pair / "check.json").write_text(json.dumps({**doc, **bad}))
            if k % 400 == 0:
                (pair / "ack.json").write_text(json.dumps(ack))
            k += 1
    queue = {"version": 1, "updated": "2026-12-07T10:00:00.000Z", "items": [], "scheduled": {}}
    (state / "queue.json").write_text(json.dumps(queue))


def timed(cfg: Path, args: list[str]) -> tuple[float, float, int, bytes]:
    """wall s, CPU s (user + sys), peak RSS KiB, stdout."""
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "survivor"]
    out = subprocess.run(
        [*cmd, "--config", str(cfg), *args], capture_output=True, cwd=REPO, check=False
    )
    wall, user, system, rss = out.stderr.decode().strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss), out.stdout


def main() -> None:
    root = Path(sys.argv[1])
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if not (root / "etc/survivor.yaml").exists():
        make(root, hosts)
    cfg = root / "etc/survivor.yaml"
    store = StateStore(root / "state", FileWriter(FsyncPolicy.NEVER))
    pidfile = PidFile(store.layout.pidfile)
    pidfile.acquire()
    pidfile.write_pid()
    clock = SystemClock()
    keeper = store.keep_overview()
    store.load_checks(clock.now())
    keeper.rescan_silencers()
    outputs: dict[tuple[str, str], bytes] = {}
    print(f"{hosts * CHECKS} pairs, median of {rounds}: wall s, CPU s, peak RSS MiB")
    for source in ("files", "overview.json"):
        for args in COMMANDS:
            runs = []
            for _ in range(rounds):
                now = utc_iso(clock.now())
                daemon = {"version": 1, "pid": os.getpid(), "mood": "running", "updated": now}
                store.write_daemon({**daemon, "started": now, "heartbeat_s": 15.0})
                if source == "files":
                    store.layout.overview.unlink(missing_ok=True)
                else:
                    keeper.write(os.getpid(), now, force=True)
                wall, cpu, rss, out = timed(cfg, args)
                runs.append((wall, cpu, rss))
                outputs[(source, " ".join(args))] = out
            wall, cpu, rss = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{source:14} {' '.join(args):18} {wall:6.2f} {cpu:6.2f} {rss / 1024:7.1f}")
    for args in COMMANDS:
        name = " ".join(args)
        a, b = outputs[("files", name)], outputs[("overview.json", name)]
        if name == "status --json":  # the heartbeat's age differs between the runs
            a, b = (json.loads(x)["checks"] for x in (a, b))  # type: ignore[assignment]
        else:
            a, b = (x.split(b"\n", 1)[1] for x in (a, b))
        print(f"{name}: same output from both: {a == b}")
    pidfile.release()


if __name__ == "__main__":
    main()
