"""Notice edits to the config files and to mod/ (a hint, never a trigger to apply config).

watchdog's observer thread only records which paths changed and wakes the
main loop; the daemon decides what to do after a quiet period (debounce), so
an editor's save dance or a `git checkout` of mod/ becomes one event. Config
changes are only *reported* (daemon.json says the running config is stale);
SIGHUP stays the one trigger that applies config. Module changes need no
action (the runner resolves a module at each run); they are logged.

Without inotify (NFS, limits) watchdog's polling observer is used; and the
daemon also compares file stamps on its heartbeat, so nothing depends on
events arriving.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = (
    "~",
    ".swp",
    ".swx",
    ".swo",
    ".tmp",
    ".part",
    ".bak",
    ".orig",
    ".rej",
    ".dpkg-new",
    ".dpkg-old",
    ".dpkg-tmp",
    ".dpkg-dist",
    ".rpmnew",
    ".rpmsave",
)


def is_interesting(path: str) -> bool:
    """False for editor and package-manager temp files and hidden files."""
    name = os.path.basename(path)
    if not name or name.startswith((".", "#")) or name.startswith("sed"):
        return False
    return not name.endswith(IGNORED_SUFFIXES)


class ChangeInbox:
    """Paths that changed, split into config and module changes; filled by watchdog's thread."""

    def __init__(
        self, config_dirs: Iterable[Path], module_dirs: Iterable[Path], wake: threading.Event
    ) -> None:
        self.config_dirs = [str(d) for d in config_dirs]
        self.module_dirs = [str(d) for d in module_dirs]
        self.wake = wake
        self._lock = threading.Lock()
        self.config_paths: set[str] = set()
        self.module_paths: set[str] = set()
        self.last_event = 0.0

    def record(self, path: str, now: float) -> None:
        if not is_interesting(path):
            return
        with self._lock:
            if any(path.startswith(d + os.sep) for d in self.module_dirs):
                self.module_paths.add(path)
            elif path.endswith((".yaml", ".yml")) and any(
                os.path.dirname(path) == d or path.startswith(d + os.sep) for d in self.config_dirs
            ):
                self.config_paths.add(path)
            else:
                return
            self.last_event = now
        self.wake.set()

    def take_if_quiet(self, now: float, quiet: float) -> tuple[set[str], set[str]]:
        """The changed (config, module) paths once nothing happened for `quiet` seconds."""
        with self._lock:
            if not (self.config_paths or self.module_paths) or now - self.last_event < quiet:
                return set(), set()
            config, self.config_paths = self.config_paths, set()
            modules, self.module_paths = self.module_paths, set()
            return config, modules


class FileWatcher:
    """Owns the watchdog observer; `start()` never raises (no events is a degraded mode)."""

    def __init__(self, inbox: ChangeInbox, monotonic: Any) -> None:
        self.inbox = inbox
        self.monotonic = monotonic
        self.observer: Any = None
        self.mode = "off"

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        inbox, monotonic = self.inbox, self.monotonic

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                for attr in ("src_path", "dest_path"):
                    path = getattr(event, attr, "")
                    if path:
                        inbox.record(os.fsdecode(path), monotonic())

        dirs = sorted({d for d in (*inbox.config_dirs, *inbox.module_dirs) if os.path.isdir(d)})
        for kind in ("native", "polling"):
            try:
                if kind == "native":
                    from watchdog.observers import Observer

                    observer = Observer()
                else:
                    from watchdog.observers.polling import PollingObserver

                    observer = PollingObserver(timeout=5)
                for d in dirs:
                    observer.schedule(Handler(), d, recursive=d in inbox.module_dirs)
                observer.daemon = True
                observer.start()
            except Exception as err:
                log.warning("watch: %s file watching unavailable (%s)", kind, err)
                continue
            self.observer, self.mode = observer, kind
            log.debug("watch: %s observer on %d directories", kind, len(dirs))
            return
        log.warning("watch: no file watching; config staleness is checked on the heartbeat")

    def stop(self) -> None:
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(2.0)
            except Exception:
                log.debug("watch: observer did not stop cleanly", exc_info=True)
            self.observer = None


def file_stamps(paths: Iterable[Path]) -> dict[str, tuple[int, int] | None]:
    """(mtime_ns, size) of each path, None when missing: a cheap "did anything change" check."""
    stamps: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        try:
            st = path.stat()
            stamps[str(path)] = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamps[str(path)] = None
    return stamps
