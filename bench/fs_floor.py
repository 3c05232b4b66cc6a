"""The floor of DESIGN §5 per host result, without survivor: how many results a second
the machine can write as one atomic check.json replace plus one history line each.

    python3 bench/fs_floor.py DIR [PAIRS] [WRITERS]

Bare system calls from Python (no JSON, no state logic), in DIR (use the
filesystem the state dir lives on; DIR is created and left for you to remove).
WRITERS processes (default 1) each write their share of the PAIRS pairs,
all at once; the figure is their sum, with how busy the whole machine was
(the kernel's journal and writeback threads count too).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

ROUNDS = 3
DOC = b'{"version":1,"rc":0,"code":"OK","consecutive":3,"comment":"' + b"y" * 200 + b'"}'
LINE = b'{"v":1,"t":"2026-12-06T10:05:00.412Z","rc":0,"comment":"ok","fp":"3f9a1c0e7b2d"}\n'
TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC

Target = tuple[str, str]  # (state directory, history file) of one pair


def write_result(state_dir: str, history_file: str) -> None:
    tmp = f"{state_dir}/.check.json.tmp"
    fd = os.open(tmp, TMP_FLAGS, 0o644)
    os.write(fd, DOC)
    os.close(fd)
    os.replace(tmp, f"{state_dir}/check.json")
    fd = os.open(history_file, APPEND_FLAGS, 0o644)
    os.write(fd, LINE)
    os.close(fd)


def make_targets(root: str, pairs: int) -> list[Target]:
    targets = []
    for i in range(pairs):
        pair = f"h{i // 10:06d}/s{i % 10:03d}"
        for kind in ("state", "history"):
            os.makedirs(f"{root}/{kind}/host/{pair}", exist_ok=True)
        targets.append((f"{root}/state/host/{pair}", f"{root}/history/host/{pair}/check.jsonl"))
    return targets


def write_rounds(targets: list[Target], start: Barrier, out: Queue[tuple[float, float]]) -> None:
    """Put the wall and CPU seconds of ROUNDS results per target, once every writer is ready."""
    start.wait()
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(ROUNDS):
        for state_dir, history_file in targets:
            write_result(state_dir, history_file)
    wall, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
    out.put((wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime))


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(f) for f in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def main() -> None:
    root = sys.argv[1]
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    writers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    targets = make_targets(root, pairs)
    for state_dir, history_file in targets:  # the first writes create the files
        write_result(state_dir, history_file)
    os.sync()
    shares = [targets[k::writers] for k in range(writers)]
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=write_rounds, args=(share, start, out)) for share in shares]
    for proc in procs:
        proc.start()
    start.wait()
    busy0, total0 = cpu_ticks()
    measured = [out.get() for _ in procs]
    busy1, total1 = cpu_ticks()
    for proc in procs:
        proc.join()
    n = ROUNDS * pairs
    wall = max(w for w, _ in measured)
    cpu = sum(c for _, c in measured)
    busy = 100 * (busy1 - busy0) / max(1, total1 - total0)
    print(
        f"{n} results by {writers} writer(s): {1e6 * cpu / n:.0f} µs CPU per result in the writers;"
        f" {n / wall:.0f} results/s; machine {busy:.0f} % busy (all {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
