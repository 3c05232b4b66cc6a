"""Finding a module or plugin by name, and refusing what is unsafe to run (DESIGN §4).

A name is a single safe path component; symlinks in module_dir must stay
inside it, while plugin dirs may link anywhere (distributions fill
/usr/lib/nagios/plugins with links, and the directory is as trusted as the
package manager). In both, the file run must be a regular, executable, not
world-writable file in a directory that is not world-writable. A found path
is reused for RESOLVE_TTL seconds of real time.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from survivor.errors import ModuleError
from survivor.model.names import NAME_PATTERN, is_safe_name

KINDS = ("check", "fix", "format", "transmit")
RESOLVE_TTL = 1.0  # seconds a module lookup is reused
# The modules shipped inside the package (plain, file, disk, ...): searched after the
# configured module dirs, so an installed survivor runs its own example without a
# module_dir, and a site's module of the same name wins.
BUNDLED_MODULE_DIR = Path(__file__).resolve().parents[1] / "mod"


def with_bundled(module_dirs: Sequence[Path]) -> tuple[Path, ...]:
    """`module_dirs` (absolute), then the bundled modules unless one of them is that very
    directory (the checkout's mod/ links to it)."""
    dirs = tuple(Path(d).absolute() for d in module_dirs)
    bundled = os.path.realpath(BUNDLED_MODULE_DIR)
    if any(os.path.realpath(d) == bundled for d in dirs):
        return dirs
    return (*dirs, BUNDLED_MODULE_DIR)


class ModuleFinder:
    """module_dir/<kind>/<name> in each module dir, then the bundled modules, then (checks)
    each plugin dir."""

    def __init__(self, module_dirs: Sequence[Path], plugin_dirs: Sequence[Path]) -> None:
        # Absolute (modules run with cwd "/") but not resolved: a symlinked module dir may be
        # switched to a new release while the daemon runs.
        self.module_dirs = with_bundled(module_dirs)
        self.plugin_dirs = tuple(Path(d).absolute() for d in plugin_dirs)
        self._resolved: dict[tuple[str, ...], tuple[float, Path]] = {}  # key -> (until, path)

    def resolve(self, kind: str, name: str) -> Path:
        """The executable for `name` of `kind`, looked up at most once a second.

        module_dir/<kind>/<name> in each module dir in order (the bundled
        modules last), then (for checks) <plugin_dir>/<name>. The first file found is the one: if it
        is unsafe to run, ModuleError says why rather than falling through.
        A found path is reused for RESOLVE_TTL seconds (a lookup is five
        stat-type calls, each a GIL hand-off between busy workers): a file
        replaced at that path runs at once, while a new, removed or newly
        unsafe module is noticed within the second. Failures are not reused.
        """
        return self._cached(("module", kind, name), lambda: self._lookup(kind, name))

    def _cached(self, key: tuple[str, ...], lookup: Callable[[], Path]) -> Path:
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        path = lookup()
        self._resolved[key] = (now + RESOLVE_TTL, path)
        return path

    def _lookup(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise ModuleError(f"unknown module kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not is_safe_name(name):
            raise ModuleError(
                f"{kind} module name {name!r} is not allowed: names must match"
                f" {NAME_PATTERN} and contain no '..'"
            )
        looked: list[str] = []
        for base in self.module_dirs:
            candidate = base / kind / name
            if self._vet(kind, candidate, confine_to=base):
                return candidate
            looked.append(str(candidate))
        if kind == "check":
            for base in self.plugin_dirs:
                candidate = base / name
                if self._vet(kind, candidate, confine_to=None):
                    return candidate
                looked.append(str(candidate))
        raise ModuleError(
            f"{kind} module {name!r} not found; looked for {', '.join(looked)};"
            " install an executable file (mode 755) at one of these paths"
        )

    def resolve_plugin(self, plugin: str) -> Path:
        """A `plugin:` value: a name looked up like a check module, or an absolute path."""
        if not plugin.startswith("/"):
            return self.resolve("check", plugin)
        return self._cached(("plugin", plugin), lambda: self._vet_plugin_path(plugin))

    def _vet_plugin_path(self, plugin: str) -> Path:
        path = Path(plugin)
        if ".." in path.parts:
            raise ModuleError(f"plugin path {plugin!r} must not contain '..'")
        if not self._vet("check", path, confine_to=None):
            raise ModuleError(f"plugin {plugin} not found; install it or fix the path")
        return path

    @staticmethod
    def _vet(kind: str, path: Path, *, confine_to: Path | None) -> bool:
        """False when absent; True when safe to run; ModuleError when present but unsafe."""
        try:
            st = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                raise ModuleError(
                    f"{kind} module {path} is a symlink to {str(path.readlink())!r}, which does not"
                    " exist; fix or remove the link"
                ) from None
            return False
        except OSError as exc:
            raise ModuleError(f"{kind} module {path} cannot be examined: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ModuleError(
                f"{kind} module {path} is not a regular file; put an executable file there"
            )
        if st.st_mode & stat.S_IWOTH:
            raise ModuleError(
                f"{kind} module {path} is world-writable, so anyone could change what survivor"
                f" runs; run: chmod o-w {path}"
            )
        if not os.access(path, os.X_OK):
            raise ModuleError(f"{kind} module {path} is not executable; run: chmod 755 {path}")
        parent = path.parent
        if parent.stat().st_mode & stat.S_IWOTH:
            raise ModuleError(
                f"{kind} module {path} is in the world-writable directory {parent}, where anyone"
                f" could replace it; run: chmod o-w {parent}"
            )
        if confine_to is not None:
            real = os.path.realpath(path)
            root = os.path.realpath(confine_to)
            if not real.startswith(root.rstrip(os.sep) + os.sep):
                raise ModuleError(
                    f"{kind} module {path} resolves to {real}, outside the module dir {root};"
                    f" copy the file into {parent} instead of linking to it"
                )
        return True
