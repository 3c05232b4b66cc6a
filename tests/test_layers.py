"""House rules that a grep can keep (STYLE.md): time comes from `clock`, layers import downward."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "survivor"

# The runner times child processes in real seconds; nothing else reads the clock or sleeps.
TIME_READERS = {"clock.py", "runner.py"}
STRAY = re.compile(r"\btime\.(time|monotonic|sleep|perf_counter)\(|\bdatetime\.(now|utcnow)\(")


def test_only_clock_reads_time() -> None:
    strays = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.name not in TIME_READERS
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if STRAY.search(line)
    ]
    assert strays == []


def runtime_imports(path: Path) -> set[str]:
    """Modules imported at import time (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_work_layer_modules_do_not_import_each_other() -> None:
    work = {"checks", "alerts", "pool"}
    for name in work:
        imported = runtime_imports(PACKAGE / f"{name}.py")
        others = {f"survivor.{o}" for o in work - {name}}
        assert not imported & others, f"{name} imports {imported & others}"


def test_core_modules_start_no_threads_or_children() -> None:
    core = [
        "model.py",
        "schedule.py",
        "alertplan.py",
        "calllist.py",
        "composite.py",
        "config/load.py",
        "config/convert.py",
        "config/build.py",
        "config/diff.py",
    ]
    for name in core:
        text = (PACKAGE / name).read_text()
        assert "threading.Thread(" not in text and "subprocess" not in text, name
