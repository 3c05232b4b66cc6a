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
(`child_rlimits`). They must hold from the module's first instruction, and
posix_spawn, which starts every other module, has no rlimit attribute and
returns only once the child has exec'd: `prlimit(pid)` after it would leave
the module a window to allocate without limit, and lowering the daemon's own
limits around the spawn is no answer (rlimits belong to the whole process:
every thread, and the daemon's own CPU time would meet the module's `cpu`).
So a limited module is started, still by posix_spawn, as util-linux's
`prlimit --as=S:H ... -- MODULE ARGS`, which sets the limits on itself and
execs the module: the same process (pid, process group, signals, exit status
are the module's), no process in between, and no cost to the daemon beyond
the longer argv (`prlimit_argv`). Measured with /bin/true: +0.1 ms of the
daemon's CPU and +1.4 ms of the child's per run, whatever the daemon's size.
Where util-linux is missing (Debian always has it) the runner forks instead,
with `set_in_child` as Popen's `preexec_fn`: correct too, but a fork of the
daemon costs it 4 ms of CPU per run at 46 MiB resident and 11 ms at 218 MiB
(page tables copied, then copy-on-write faults), ten to thirty times a spawn.
"""

from __future__ import annotations

import logging
import os
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
# util-linux's prlimit(1): fixed paths, not the daemon's PATH (usrmerge has both)
PRLIMIT_PATHS = ("/usr/bin/prlimit", "/bin/prlimit")
_PRLIMIT_OPTIONS = {resource.RLIMIT_AS: "--as", resource.RLIMIT_CPU: "--cpu"}
_PRLIMIT_OPTIONS[resource.RLIMIT_NOFILE] = "--nofile"


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


def find_prlimit() -> str | None:
    """The prlimit executable that starts limited modules, or None: fork instead."""
    return next((path for path in PRLIMIT_PATHS if os.access(path, os.X_OK)), None)


def prlimit_argv(prlimit: str, rlimits: Sequence[RLimit], argv: Sequence[str]) -> list[str]:
    """`argv` run by `prlimit` with `rlimits` set: `prlimit --as=S:H ... -- argv...`
    (`--` so that a plugin's `-H` is the plugin's, not prlimit's)."""
    options = [f"{_PRLIMIT_OPTIONS[which]}={soft}:{hard}" for which, soft, hard in rlimits]
    return [prlimit, *options, "--", *argv]
