"""The signal inbox: handlers only record; the main loop acts (STYLE habit 3).

TERM, INT and QUIT stop the daemon; a second INT stops it at once. HUP
reloads the configuration (ignored once stopping has begun). USR1 reopens the
log file and `results_log` (logrotate's `postrotate` habit). Stray signals
whose default action would kill the daemon silently (USR2, ALRM, ...) are
recorded too, so the main loop logs and ignores them. SIGPIPE stays ignored
as Python sets it: a closed pipe is an EPIPE error on the write.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
REOPEN_SIGNAL = signal.SIGUSR1
# Signals whose default action terminates the process and which nothing here uses.
STRAY_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR")
    if hasattr(signal, name)
)


class SignalInbox:
    """Signal handlers append here and return; the main loop takes them."""

    def __init__(self) -> None:
        self._received: deque[signal.Signals] = deque()
        self._stopping = False
        self.wake = threading.Event()

    def record(self, signum: int, frame: FrameType | None) -> None:
        # Runs between any two bytecodes of the main thread: append, wake, return.
        sig = signal.Signals(signum)
        if sig == signal.SIGINT and self._stopping:
            # A second SIGINT means "now". State files are replaced atomically and history
            # lines are single writes, so exiting here tears nothing.
            os._exit(1)
        if sig in STOP_SIGNALS:
            self._stopping = True
        self._received.append(sig)
        self.wake.set()

    def take(self) -> signal.Signals | None:
        return self._received.popleft() if self._received else None

    def install(self) -> None:
        for sig in (*STOP_SIGNALS, signal.SIGHUP, REOPEN_SIGNAL, *STRAY_SIGNALS):
            signal.signal(sig, self.record)
