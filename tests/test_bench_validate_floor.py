"""bench/validate_floor.py times each command it lists, and stops on one that fails."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, load_bench_script

HARNESS = REPO.parent / "shared" / "bench"


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    return load_bench_script("validate_floor")


def test_a_failing_command_stops_the_run_and_is_named(floor: ModuleType) -> None:
    with pytest.raises(SystemExit) as stop:
        floor.median_ms([("fine", ["true"]), ("broken", ["false"])], 2, {})
    assert str(stop.value).startswith("broken: exit status 1")


@pytest.mark.skipif(
    not (HARNESS / "schedbench.py").is_file(), reason="../shared/bench is not beside"
)
def test_survivor_commands_run_on_the_adapters_config(floor: ModuleType, tmp_path: Path) -> None:
    sys.path[:0] = [str(HARNESS), str(REPO / "bench")]
    try:
        from adapter_survivor import SurvivorAdapter
        from schedbench import Workload
    finally:
        del sys.path[:2]
    adapter = SurvivorAdapter(tmp_path, {"python": sys.executable})
    adapter.write_config(Workload(services=50))
    cases = floor.commands(sys.executable, adapter.validate_argv(), ["true"])
    assert [name for name, _ in cases][-2:] == ["survivor validate --no-modules", "nagios4 -v"]
    medians = floor.median_ms(cases, 1, {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert set(medians) == {name for name, _ in cases}
    assert all(ms > 0 for ms in medians.values())
