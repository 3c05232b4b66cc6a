"""Logging to stderr (journald), syslog or a file, as `instance.log` says.

Named `logsetup` so it cannot shadow the standard `logging` module.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from survivor.model.config import LogConfig

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(message)s"


def _journal_stderr() -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM=dev:ino)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _JournalFormatter(logging.Formatter):
    """`<N>message`: the journal keeps the level and adds its own timestamps."""

    _PRIORITY = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        prio = self._PRIORITY.get(record.levelno, 6)
        return f"<{prio}>" + super().format(record).replace("\n", "\n" + f"<{prio}>")


def setup_logging(cfg: LogConfig, *, name: str = "survivor") -> logging.Handler:
    """Install the one root handler; returns it (the daemon closes it at exit)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if cfg.target == "stderr":
        handler = logging.StreamHandler(sys.stderr)
        if _journal_stderr():
            handler.setFormatter(_JournalFormatter("%(message)s"))
        else:
            handler.setFormatter(logging.Formatter(_FORMAT))
    elif cfg.target == "syslog":
        address = "/dev/log" if Path("/dev/log").exists() else ("localhost", 514)
        handler = logging.handlers.SysLogHandler(
            address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter(f"{name}[%(process)d]: %(message)s"))
    else:
        path = Path(cfg.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(path)  # logrotate-friendly
        handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(cfg.level, logging.INFO))
    return handler


def reopen_log_files() -> list[str]:
    """Reopen every file the root logger writes to (SIGUSR1, after logrotate moved it).

    Returns the paths reopened. stderr and syslog need nothing: the journal and
    syslogd own their files.
    """
    reopened: list[str] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            old = handler.setStream(handler._open())
            if old is not None:
                old.close()
            reopened.append(handler.baseFilename)
    return reopened
