"""Failover times of dispatch (DESIGN §7b), on this machine, with a real nats-server and workers.

    .venv/bin/python bench/failover.py [--runs 20]

Builds what tests/remote/test_dispatch.py builds (a CA and certificates made
with openssl, the broker configuration `survivor broker-config` renders, real
`survivor worker` processes; the scheduler's own parts with the real clock)
and times whole runs of a placed check (dispatch, the worker's run, recording):

- direct: the first group serves;
- no responders: the first group has no live member, the second serves;
- hung: a member of the first group takes the request and never answers
  (check timeout 2 s + dispatch_grace 1 s), the second serves; then the same
  with the first group's breaker open (`breaker: {after: 1}`).

Prints the median and the largest of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.remote.test_dispatch import (  # noqa: E402  (the test kit, used as is)
    Scheduler,
    Site,
    hung_member,
    make_scheduler_in,
    site_in,
    start_worker,
)


def timed(run: Callable[[], None], times: int) -> list[float]:
    out = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        out.append((time.perf_counter() - began) * 1000)
    return out


def show(what: str, ms: list[float]) -> None:
    print(
        f"{what:<44} median {statistics.median(ms):8.1f} ms   max {max(ms):8.1f} ms  (n={len(ms)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        root = Path(tmp)
        with site_in(root / "site") as site:
            return measure(site, root, args.runs)


def measure(site: Site, root: Path, runs: int) -> int:
    with make_scheduler_in(site, root) as make:
        sched: Scheduler = make()
        dc2 = start_worker(site, sched, "dc2-a", ["dc2"])
        show(
            "dc2 serves (br1: [dc2, local: false])",
            timed(lambda: sched.run("disk", ("br1",)), runs),
        )
        show(
            "no responders in dc1, then dc2 serves",
            timed(lambda: sched.run("disk", ("web1",)), runs),
        )
        assert sched.parts.dispatcher is not None
        sched.parts.dispatcher.breakers.after = 1
        # After a timeout the next group is tried only while the run's minute lasts.
        while time.time() % 60 > 45:
            time.sleep(0.5)
        with hung_member(site, "dc1-a", "dc1"):
            show(
                "hung member in dc1 (timeout 2 s + grace 1 s)",
                timed(lambda: sched.run("disk", ("web1",)), 1),
            )
            show("  then, dc1's breaker open", timed(lambda: sched.run("disk", ("web1",)), runs))
        dc2.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
