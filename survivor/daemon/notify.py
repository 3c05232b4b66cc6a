"""systemd's sd_notify() in a few lines of stdlib socket code (no libsystemd).

The protocol is one datagram of newline-separated KEY=VALUE lines sent to the
AF_UNIX socket named by $NOTIFY_SOCKET ('@' = abstract namespace). Outside
systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)
_failed: set[str] = set()  # sockets that refused a message (warned about once)


def sd_notify(*fields: str) -> bool:
    """Send `fields` (e.g. "READY=1", "STATUS=...") to systemd; False if not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # a receiver that does not read must never stall the daemon
            sock.connect(addr)
            sock.send("\n".join(fields).encode())
    except BlockingIOError:
        log.debug("sd_notify to %s: receiver busy; dropped %s", addr.lstrip("\0"), fields)
        return False
    except OSError as err:
        # start-stop-daemon --notify-await removes its socket after READY=1: say so once.
        if addr not in _failed:
            _failed.add(addr)
            log.warning("sd_notify to %s failed: %s (not repeated)", addr.lstrip("\0"), err)
        return False
    return True


def reloading() -> bool:
    """RELOADING=1 with MONOTONIC_USEC, which Type=notify-reload requires."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return sd_notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
