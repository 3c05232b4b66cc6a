"""CPU of the check loop per 1,000 checks, with many checks in flight or few.

    python3 bench/loop_inflight.py RATE SECONDS NAP [LABEL]

Starts RATE checks a second for SECONDS seconds through survivor's check pool
(survivor.work.loop.LoopPool, two loops, no cap), each check `/bin/sleep NAP`,
and prints the process's own CPU (user + system, children not counted) per
1,000 checks and the most checks seen in flight. About RATE x NAP checks are
in flight; NAP 0 gives the cost of the same starts with almost none in
flight. No parsing or recording: the loop and the runner only. Run it with
PYTHONPATH pointing at the checkout to measure (an old one from `git
archive REV survivor | tar -x -C DIR` for a side-by-side).
"""

from __future__ import annotations

import resource
import sys
import threading
import time

from survivor.clock import SystemClock
from survivor.model.work import WorkItem, WorkKind
from survivor.proc.runner import ModuleRunner
from survivor.work.loop import LoopPool
from survivor.work.queue import WorkContext
from survivor.work.steps import Steps, outcome_of


def main(rate: float, seconds: float, nap: str, label: str) -> None:
    runner = ModuleRunner([], [])
    count = int(rate * seconds)
    finished = [0]
    done = threading.Event()

    def steps(item: WorkItem, ctx: WorkContext) -> Steps[None]:
        yield from outcome_of(runner.start(["/bin/sleep", nap], b"", 60.0, on_start=ctx.set_pid))
        finished[0] += 1
        if finished[0] == count:
            done.set()

    pool = LoopPool("check", 1 << 20, steps, SystemClock(), 0.25, loops=2)
    pool.start()
    first = time.time() + 0.5
    items = [
        WorkItem(
            id=f"i{n}",
            kind=WorkKind.CHECK,
            check="c",
            hosts=(f"h{n}",),
            planned=first + n / rate,
            key=f"c@h{n}",
        )
        for n in range(count)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF)
    pool.submit(items)
    busiest = 0
    while not done.wait(0.2):
        busiest = max(busiest, pool.stats()["busy"])
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"{label} rate={rate:g}/s nap={nap}s checks={count} in_flight_max={busiest} "
        f"cpu={cpu:.2f}s per_1000={cpu / count * 1000:.3f}s"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (3, 4):
        sys.exit(__doc__)
    main(float(args[0]), float(args[1]), args[2], args[3] if len(args) == 4 else "")
