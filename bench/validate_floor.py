"""What `survivor validate` is made of, side by side with Nagios' `-v` of the same workload.

    python3 bench/validate_floor.py BENCH DIR [SERVICES] [ROUNDS] [PYTHON]

BENCH is the shared harness directory (schedbench.py, adapter_nagios.py); the
configs for SERVICES services (default 20,000) are written into DIR by the two
adapters, as the harness writes them. Then ROUNDS rounds (default 20) run, one
after another in each round: the bare interpreter, the imports of the stack
(click, PyYAML), survivor's imports, `survivor validate --no-modules`, and
`nagios4 -v`. Prints a Markdown table of median wall milliseconds and the
ratio to Nagios. PYTHON (default: this interpreter) should hold survivor's
dependencies only, as for the pair (bench/README.md).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def commands(
    python: str, survivor_validate: list[str], nagios_validate: list[str]
) -> list[tuple[str, list[str]]]:
    def importing(modules: str) -> list[str]:
        return [python, "-c", f"import {modules}"]

    return [
        ("python -c pass", [python, "-c", "pass"]),
        ("import yaml", importing("yaml")),
        ("import click", importing("click")),
        ("import click, yaml", importing("click, yaml")),
        ("import survivor.cli, survivor.config", importing("survivor.cli, survivor.config")),
        ("survivor validate --no-modules", survivor_validate),
        ("nagios4 -v", nagios_validate),
    ]


def median_ms(
    cases: list[tuple[str, list[str]]], rounds: int, env: dict[str, str]
) -> dict[str, float]:
    walls: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(rounds):
        for name, argv in cases:
            began = time.perf_counter()
            done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            walls[name].append(1000 * (time.perf_counter() - began))
            if done.returncode != 0:
                sys.exit(
                    f"{name}: exit status {done.returncode}: {done.stderr.decode(errors='replace')}"
                )
    return {name: statistics.median(ms) for name, ms in walls.items()}


def main() -> None:
    bench, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    services = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    python = sys.argv[5] if len(sys.argv) > 5 else sys.executable
    sys.path[:0] = [str(bench), str(REPO_ROOT / "bench")]
    from adapter_nagios import NagiosAdapter  # the harness's, beside schedbench
    from adapter_survivor import SurvivorAdapter
    from schedbench import Workload

    workload = Workload(services=services)
    survivor = SurvivorAdapter(workdir / "survivor", {"python": python})
    nagios = NagiosAdapter(workdir / "nagios", {})
    for adapter in (survivor, nagios):
        adapter.workdir.mkdir(parents=True, exist_ok=True)
        adapter.write_config(workload)  # the survivor adapter also byte-compiles the package
    nagios_validate = nagios.validate_argv()
    assert nagios_validate is not None
    cases = commands(python, survivor.validate_argv(), nagios_validate)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    medians = median_ms(cases, rounds, env)
    nagios_ms = medians["nagios4 -v"]
    print(f"| command ({services} services, median of {rounds}) | ms | of `nagios4 -v` |")
    print("| --- | ---: | ---: |")
    for name, _ in cases:
        print(f"| `{name}` | {medians[name]:.1f} | {medians[name] / nagios_ms:.2f}x |")


if __name__ == "__main__":
    main()
