"""What a child costs when the daemon holds many descriptors (issue 20).

    python3 bench/spawn_fds.py [COUNT ...]

Starts `/bin/true` with survivor's `spawn` (posix_spawn) while COUNT other
descriptors (pipes) are open, and prints the parent's CPU per spawn and the
child's CPU per run (getrusage). posix_spawn's clone copies the descriptor
table into the child and exec closes every close-on-exec descriptor in it, so
both grow with the descriptors open: with checks in flight, each holds two
pipes and a pidfd (docs/benchmarks.md, "Issue 20 again").

Each count is measured twice: spawned by the calling thread, as the check
loops did, and by survivor.proc.spawner's thread, whose descriptor table is
its own and nearly empty (the pipes come back over a Unix socket).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from survivor.proc.spawn import spawn
from survivor.proc.spawner import Spawner

RUNS = 500


def measure(count: int, helper: Spawner | None) -> tuple[float, float]:
    """(parent µs per spawn, child µs per run) with `count` extra descriptors open, spawned
    by this thread or by `helper`."""
    held: list[int] = []
    for _ in range(count // 2):
        held.extend(os.pipe())
    try:
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(RUNS):
            if helper is not None:
                started = helper.spawn("/bin/true", ["/bin/true"], {}, with_stdin=False)
                assert started is not None, helper.why_not
                os.close(started.stdout_fd)
                os.close(started.stderr_fd)
                os.waitpid(started.pid, 0)
                continue
            r, w = os.pipe()
            pid = spawn("/bin/true", ["/bin/true"], {}, stdin=None, stdout=w, stderr=w)
            os.close(w)
            os.close(r)
            os.waitpid(pid, 0)
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for fd in held:
            os.close(fd)
    parent = self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    child = child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime
    return parent / RUNS * 1e6, child / RUNS * 1e6


def main(argv: list[str]) -> int:
    counts = [int(a) for a in argv] or [10, 2000, 7000]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.chdir("/")
    helper = Spawner()
    for count in counts:
        for name, by in (("this thread", None), ("the spawner", helper)):
            if by is not None and not by.working:
                print(f"{count:6d} descriptors, the spawner: not available ({by.why_not})")
                continue
            parent, child = measure(count, by)
            print(
                f"{count:6d} descriptors, {name:11}: parent {parent:6.0f} µs per spawn,"
                f" child {child:6.0f} µs"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
