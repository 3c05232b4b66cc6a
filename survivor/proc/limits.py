"""How many checks may run at once: what the machine allows, and what the config caps.

Network checks spend their time waiting (a TCP connect, an HTTP request),
so a small fixed number of slots leaves due checks waiting while the
machine idles. Like Nagios' `max_concurrent_checks = 0`, the default lets
every due check run; what bounds it is the machine: each running check
holds descriptors in the daemon (stdin, stdout and stderr pipes and a
pidfd, and the child's three ends for a moment while it is spawned) and at
least one process of the daemon's user. `raise_limits()` lifts the soft
limits to the hard ones at start; `machine_capacity()` keeps a margin for
the daemon's own files, sockets and the other processes of its user.

`instance.max_running_checks` caps it (DESIGN §3); `check_workers`, the
older name of a fixed number of slots, still caps it when set, and the
smaller of the two wins (`running_cap`).

The other way round, a check's `limits:` lower what one module may take
(`child_rlimits`, set in the child by `set_in_child` between fork and exec;
survivor.proc.session says why there).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Sequence
from dataclasses import dataclass

from survivor.model.config import CPU_KILL_AFTER, ModuleLimits

log = logging.getLogger(__name__)

FDS_PER_CHECK = 7  # 4 held while it runs, 3 more while it is being spawned
FD_RESERVE = 256  # state and history files, sockets, the watcher, the log
PROCS_PER_CHECK = 2  # the module and, often, one thing it runs (a shell's command)
PROC_RESERVE = 128  # the daemon's threads and the user's other processes
UNLIMITED_CHECKS = 1 << 20  # no limit at all still needs a number


@dataclass(frozen=True, slots=True)
class Limits:
    """The soft limits in effect (None: unlimited)."""

    open_files: int | None
    processes: int | None


def _soft(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY or value < 0 else value


def _raise(which: int, name: str) -> int | None:
    soft, hard = resource.getrlimit(which)
    if soft != hard:
        try:
            resource.setrlimit(which, (hard, hard))
        except (ValueError, OSError) as err:  # a hard limit the kernel will not give
            log.warning("limits: cannot raise %s from %s to %s: %s", name, soft, hard, err)
        else:
            soft = hard
    return _soft(soft)


def raise_limits() -> Limits:
    """Raise the open-file and process soft limits to their hard limits; the result."""
    return Limits(
        open_files=_raise(resource.RLIMIT_NOFILE, "open files"),
        processes=_raise(resource.RLIMIT_NPROC, "processes"),
    )


def current_limits() -> Limits:
    """The soft limits as they are (for a process that must not change them)."""
    return Limits(
        open_files=_soft(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        processes=_soft(resource.getrlimit(resource.RLIMIT_NPROC)[0]),
    )


def machine_capacity(limits: Limits) -> int:
    """How many checks may run at once within `limits`, keeping the margins (at least 1)."""
    caps = [UNLIMITED_CHECKS]
    if limits.open_files is not None:
        caps.append((limits.open_files - FD_RESERVE) // FDS_PER_CHECK)
    if limits.processes is not None:
        caps.append((limits.processes - PROC_RESERVE) // PROCS_PER_CHECK)
    return max(1, min(caps))


def running_cap(machine: int, max_running_checks: int | None, check_workers: int | None) -> int:
    """The number of checks that may run at once: the machine's capacity, lowered by
    whichever of the two settings are set."""
    caps = [machine] + [c for c in (max_running_checks, check_workers) if c is not None]
    return max(1, min(caps))


# --------------------------------------------------------------------------- one module's


RLimit = tuple[int, int, int]  # (resource, soft, hard) for setrlimit


def child_rlimits(limits: ModuleLimits) -> tuple[RLimit, ...]:
    """What `set_in_child` sets for `limits`, within the daemon's own hard limits.

    `memory` is RLIMIT_AS, soft and hard: an allocation past it fails (ENOMEM,
    a MemoryError in Python). `cpu` is RLIMIT_CPU: at the soft limit the kernel
    sends SIGXCPU (which ends the process unless it is caught), and SIGKILL at
    the hard one CPU_KILL_AFTER seconds later. `files` is RLIMIT_NOFILE. An
    unprivileged child cannot raise a hard limit past the daemon's, so each is
    cut to the daemon's hard limit here rather than failing in the child.
    """
    wanted: list[tuple[int, int, int]] = []
    if limits.memory is not None:
        wanted.append((resource.RLIMIT_AS, limits.memory, limits.memory))
    if limits.cpu is not None:
        wanted.append((resource.RLIMIT_CPU, limits.cpu, limits.cpu + CPU_KILL_AFTER))
    if limits.files is not None:
        wanted.append((resource.RLIMIT_NOFILE, limits.files, limits.files))
    out: list[RLimit] = []
    for which, soft, hard in wanted:
        ceiling = resource.getrlimit(which)[1]
        if ceiling != resource.RLIM_INFINITY and ceiling >= 0:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        out.append((which, soft, hard))
    return tuple(out)


def set_in_child(rlimits: Sequence[RLimit]) -> None:
    """Set `rlimits` on the calling process: the `preexec_fn` of a limited module.

    It runs in the forked child of a threaded daemon, so it does nothing but
    setrlimit(2) calls: no import, no lock, no logging (a lock another thread
    held at the fork would never be released in the child).
    """
    for which, soft, hard in rlimits:
        resource.setrlimit(which, (soft, hard))
