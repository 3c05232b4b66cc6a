"""The modules a configuration uses: a runner for them, and `NAME -v` validation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from survivor.errors import ModuleError
from survivor.model.config import CheckKind, Config
from survivor.proc.runner import ModuleRunner

VALIDATE_TIMEOUT = 15.0


def runner_for(config: Config) -> ModuleRunner:
    inst = config.instance
    return ModuleRunner(
        inst.module_dirs,
        inst.plugin_dirs,
        output_cap=inst.output_cap,
        extra_env={"SURVIVOR_INSTANCE": inst.name},
    )


def modules_in_use(config: Config) -> list[tuple[str, str, bool]]:
    """(kind, name, speaks the Survivor protocol) for every module the config names, once each."""
    seen: dict[tuple[str, str], bool] = {}
    for check in config.checks.values():
        if check.kind is CheckKind.MODULE and check.module:
            seen[("check", check.module)] = True
        elif check.kind is CheckKind.PLUGIN and check.plugin:
            seen.setdefault(("check", check.plugin), False)
    for fix in config.fixes.values():
        seen[("fix", fix.module)] = True
    for method in config.alerts.values():
        seen[("format", method.format)] = True
        seen[("transmit", method.transmit)] = True
    return [(kind, name, survivor) for (kind, name), survivor in seen.items()]


def validate_modules(config: Config) -> Iterator[tuple[str, bool]]:
    """One line per module: found and executable; Survivor-protocol ones also pass `-v`."""
    runner = runner_for(config)
    for kind, name, survivor_protocol in modules_in_use(config):
        label = f"{kind}/{name}"
        try:
            path = runner.resolve_plugin(name) if kind == "check" else runner.resolve(kind, name)
        except ModuleError as err:
            yield f"{label}: FAILED: {err}", False
            continue
        if not survivor_protocol:
            yield f"{label}: OK (plugin {path}; not run, -v means verbose to plugins)", True
            continue
        outcome = runner.run([str(path), "-v"], b"", VALIDATE_TIMEOUT)
        first = outcome.stdout.decode(errors="replace").strip().splitlines()[:1]
        text = first[0] if first else ""
        try:
            doc = json.loads(text)
            text = str(doc.get("comment", text)) if isinstance(doc, dict) else text
        except ValueError:
            pass
        if outcome.exit_status == 0 and not outcome.timed_out:
            yield f"{label}: OK ({text or 'validated'})", True
        else:
            why = "timed out" if outcome.timed_out else f"exit {outcome.exit_status}"
            yield f"{label}: FAILED -v ({why}): {text}", False


class ModuleHashes:
    """SHA-256 of module files, recomputed only when a file changes (stat identity)."""

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[int, int, int], str]] = {}

    def of(self, path: Path) -> str:
        st = path.stat()
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == key:
            return known[1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self._known[path] = (key, digest)
        return digest
