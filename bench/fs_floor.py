"""The floor of DESIGN §5 per host result, without survivor: how many results a second
one core can write as one atomic check.json replace plus one history line each.

    python3 bench/fs_floor.py DIR [PAIRS]

Bare system calls from Python (no JSON, no state logic), in DIR (use the
filesystem the state dir lives on; DIR is created and left for you to remove).
"""

from __future__ import annotations

import os
import resource
import sys
import time

ROUNDS = 3
DOC = b'{"version":1,"rc":0,"code":"OK","consecutive":3,"comment":"' + b"y" * 200 + b'"}'
LINE = b'{"v":1,"t":"2026-12-06T10:05:00.412Z","rc":0,"comment":"ok","fp":"3f9a1c0e7b2d"}\n'
TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def write_result(state_dir: str, history_file: str) -> None:
    tmp = f"{state_dir}/.check.json.tmp"
    fd = os.open(tmp, TMP_FLAGS, 0o644)
    os.write(fd, DOC)
    os.close(fd)
    os.replace(tmp, f"{state_dir}/check.json")
    fd = os.open(history_file, APPEND_FLAGS, 0o644)
    os.write(fd, LINE)
    os.close(fd)


def main() -> None:
    root, pairs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    targets = []
    for i in range(pairs):
        pair = f"h{i // 10:06d}/s{i % 10:03d}"
        for kind in ("state", "history"):
            os.makedirs(f"{root}/{kind}/host/{pair}", exist_ok=True)
        targets.append((f"{root}/state/host/{pair}", f"{root}/history/host/{pair}/check.jsonl"))
    for state_dir, history_file in targets:  # the first writes create the files
        write_result(state_dir, history_file)
    os.sync()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(ROUNDS):
        for state_dir, history_file in targets:
            write_result(state_dir, history_file)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    n = ROUNDS * pairs
    print(
        f"{n} results: {1e6 * wall / n:.0f} µs wall, {1e6 * cpu / n:.0f} µs CPU per result;"
        f" {n / wall:.0f} results/s on one core"
    )


if __name__ == "__main__":
    main()
