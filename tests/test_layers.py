"""The map of the package, checked: every module's layer, imports only downward, and the
house rules a grep can keep (STYLE.md): time comes from `clock`, threads start only in
`work` and `daemon`, children only in `proc`, files are written only by `store`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "survivor"

# Every module of the package and its layer, top (1) to bottom (9). A module may import
# modules of a higher number (further down), or modules of its own package at the same
# number; never upward, never sideways into another package (so `checks` and `alerts`
# never import each other: the daemon wires them). README.md "Where things are" and
# docs/architecture.md describe the same map.
LAYERS: dict[str, float] = {
    # 1. the command line
    "__main__": 0,
    "cli": 1,
    "cli.app": 1,
    "cli.calllist_cmds": 1,
    "cli.daemon_cmds": 1,
    "cli.history_cmds": 1,
    "cli.downtime_cmds": 1,
    "cli.ops_cmds": 1,
    "cli.queue_cmds": 1,
    "cli.report_cmds": 1,
    "cli.remote_cmds": 1,
    "cli.status_cmds": 1,
    "cli.web_actions": 1,
    "cli.web_cmds": 1,
    # 1.5 the remote worker: a process of its own, using the daemon's notify and logging
    "remote": 1.5,
    "remote.worker": 1.5,
    # 2. the process: start-up, signals, the main loop, reload, shutdown
    "daemon": 2,
    "daemon.daemon": 2,
    "daemon.detach": 2,
    "daemon.heartbeat": 2,
    "daemon.logsetup": 2,
    "daemon.malloc": 2,
    "daemon.notify": 2,
    "daemon.reload": 2,
    "daemon.requests": 2,
    "daemon.schedulers": 2,
    "daemon.signals": 2,
    "daemon.watch": 2,
    "daemon.wiring": 2,
    # 3. what people do and see: operator actions, and the views of the state files
    "actions": 3,
    "actions.calllists": 3,
    "actions.operator": 3,
    "actions.downtimes": 3,
    "actions.pairs": 3,
    "views": 3,
    "views.availability": 3,
    "views.health": 3,
    "views.metrics": 3,
    "views.rows": 3,
    "views.snapshot": 3,
    "views.workers": 3,
    "views.web": 3,
    "views.web.assets": 3,
    "views.web.auth": 3,
    "views.web.forms": 3,
    "views.web.front": 3,
    "views.web.pages": 3,
    "views.web.plot": 3,
    "views.web.server": 3,
    "views.web.source": 3,
    # 4. the work: checks and alerts, each scheduled, executed and recorded
    "checks": 4,
    "checks.execute": 4,
    "checks.placed": 4,
    "checks.record": 4,
    "checks.scheduler": 4,
    "alerts": 4,
    "alerts.deliver": 4,
    "alerts.fixes": 4,
    "alerts.jobs": 4,
    "alerts.scheduler": 4,
    # 5. where work runs: queues, worker threads, the check loop, steps
    "work": 5,
    "work.loop": 5,
    "work.queue": 5,
    "work.remote": 5,
    "work.steps": 5,
    "work.threads": 5,
    "work.timeouts": 5,
    # 6. the edges: child processes, and everything on disk
    "proc": 6,
    "proc.limits": 6,
    "proc.modules": 6,
    "proc.resolve": 6,
    "proc.runner": 6,
    "proc.session": 6,
    "proc.spawn": 6,
    "proc.spawner": 6,
    "store": 6,
    "store.books": 6,
    "store.fsio": 6,
    "store.health": 6,
    "store.history": 6,
    "store.layout": 6,
    "store.overview": 6,
    "store.passwords": 6,
    "store.pidfile": 6,
    "store.state": 6,
    "store.summary": 6,
    # 7. the core, pure: no threads, children, writes or clock reads
    "remote.brokerconf": 7.25,
    "remote.certs": 7.25,
    "remote.dispatchplan": 7.25,
    "remote.workerconf": 7.25,
    "alertplan": 7.1,
    "calllist": 7.2,
    "protocol": 7.2,
    "protocol.alerts": 7.2,
    "protocol.modules": 7.2,
    "protocol.plugins": 7.2,
    "protocol.remote": 7.2,
    "composite": 7.3,
    "schedule": 7.3,
    "timespec": 7.3,
    "selection": 7.4,
    "downtime": 7.2,
    "config": 7.3,
    "config.build": 7.3,
    "config.build_alerts": 7.3,
    "config.build_checks": 7.3,
    "config.build_deps": 7.3,
    "config.build_downtimes": 7.3,
    "config.build_hosts": 7.3,
    "config.build_web": 7.3,
    "config.build_workers": 7.3,
    "config.convert": 7.3,
    "config.diff": 7.3,
    "config.fields": 7.3,
    "config.load": 7.3,
    "config.marked": 7.3,
    "config.yaml": 7.3,
    # 8. shared data: the config tree, codes, work items, stored documents
    "model": 8,
    "model.codes": 8,
    "model.config": 8,
    "model.documents": 8,
    "model.names": 8,
    "model.words": 8,
    "model.work": 8,
    # 9. leaves
    "__init__": 9,
    "clock": 9,
    "errors": 9,
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def package_of(module: str) -> str:
    return module.split(".")[0] if "." in module else module


def imports(path: Path, module: str) -> set[str]:
    """survivor modules imported anywhere in the file (lazy imports too; TYPE_CHECKING too)."""
    known = set(LAYERS)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                continue
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "survivor" or not name.startswith("survivor."):
                continue
            short = name[len("survivor.") :]
            if short in known and short != module:
                found.add(short)
    return found


def test_every_module_has_a_layer() -> None:
    assert sorted(set(modules()) - set(LAYERS)) == [], "add new modules to LAYERS"
    assert sorted(set(LAYERS) - set(modules())) == [], "remove gone modules from LAYERS"


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_imports_run_downward(module: str) -> None:
    path = modules().get(module)
    if path is None:
        pytest.skip("no such module (test_every_module_has_a_layer says so)")
    mine = LAYERS[module]
    wrong = []
    for other in sorted(imports(path, module)):
        theirs = LAYERS[other]
        if theirs > mine:
            continue
        if theirs == mine and package_of(other) == package_of(module):
            continue
        if other in module.split(".")[0] or module.startswith(other + "."):
            continue  # a package's own __init__
        wrong.append(f"{other} (layer {theirs})")
    assert wrong == [], f"{module} (layer {mine}) imports upward or sideways: {wrong}"


# ----------------------------------------------------------------------------- house rules

# The runner times child processes in real seconds; nothing else reads the clock or sleeps.
TIME_READERS = {"clock.py", "proc/session.py", "proc/runner.py", "proc/resolve.py"}
STRAY_TIME = re.compile(r"\btime\.(time|monotonic|sleep|perf_counter)\(|\bdatetime\.(now|utcnow)\(")


def source_files() -> list[tuple[str, Path]]:
    return sorted((str(p.relative_to(PACKAGE)), p) for p in PACKAGE.rglob("*.py"))


def strays(
    pattern: re.Pattern[str], allowed: set[str], prefixes: tuple[str, ...] = ()
) -> list[str]:
    return [
        f"{name}:{n}: {line.strip()}"
        for name, path in source_files()
        if name not in allowed and not name.startswith(prefixes)
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]


def test_only_clock_reads_time() -> None:
    assert strays(STRAY_TIME, TIME_READERS) == []


def test_threads_start_only_in_work_and_daemon() -> None:
    # and in the remote worker, a process of its own whose runs block on a pool; and the
    # spawner's one thread, which starts children from a descriptor table of its own
    pattern = re.compile(r"\bThread\(|ThreadPoolExecutor\(")
    assert strays(pattern, {"remote/worker.py", "proc/spawner.py"}, ("work/", "daemon/")) == []


def test_children_start_only_in_proc() -> None:
    pattern = re.compile(r"\bsubprocess\b|posix_spawn\(|os\.fork\(|os\.exec\w*\(")
    assert strays(pattern, set(), ("proc/",)) == []


# Files are written only by store/ (STYLE: "files are written only by fsio"); log handlers
# aside, a child's stdin, which is a pipe, and the spawner's /dev/null in place of a closed
# 0, 1 or 2 of its own table.
FILE_WRITES = re.compile(
    r"os\.(write|replace|rename|unlink|open|ftruncate)\(|\.write_(text|bytes)\(|"
    r"\.unlink\(|shutil\.rmtree\(|\.mkdir\(|open\([^)]*[\"'][wax]"
)
WRITERS_ASIDE = {"daemon/logsetup.py", "proc/session.py", "proc/spawner.py"}


def test_files_are_written_only_by_store() -> None:
    assert strays(FILE_WRITES, WRITERS_ASIDE, ("store/",)) == []


def test_core_modules_start_no_threads_or_children() -> None:
    for module, layer in LAYERS.items():
        if layer < 7:
            continue
        path = modules().get(module)
        if path is None:
            continue
        text = path.read_text()
        assert "threading.Thread(" not in text and "subprocess" not in text, module
