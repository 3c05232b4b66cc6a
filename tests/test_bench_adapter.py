"""bench/adapter_survivor.py writes a config survivor accepts, for both protocols."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, load_bench_script

HARNESS = REPO.parent / "shared" / "bench" / "schedbench.py"

pytestmark = pytest.mark.skipif(not HARNESS.is_file(), reason="../shared/bench is not beside")


@pytest.fixture(scope="module")
def adapter_module() -> ModuleType:
    sys.path.insert(0, str(HARNESS.parent))  # the adapter imports schedbench by name
    try:
        return load_bench_script("adapter_survivor")
    finally:
        sys.path.remove(str(HARNESS.parent))


@pytest.mark.parametrize("protocol", ["plugin", "survivor"])
def test_generated_config_validates(
    adapter_module: ModuleType, tmp_path: Path, protocol: str
) -> None:
    adapter = adapter_module.SurvivorAdapter(
        tmp_path, {"python": sys.executable, "protocol": protocol}
    )
    adapter.write_config(
        adapter_module.Workload(services=95)
    )  # schedbench's, as imported  # the last host has 5 services
    done = subprocess.run(
        adapter.validate_argv(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "95 check@host pairs" in done.stdout
    assert (REPO / "survivor" / "__pycache__").is_dir()  # byte-compiled, as an install is


def test_results_lines_give_latency_and_duration(
    adapter_module: ModuleType, tmp_path: Path
) -> None:
    adapter = adapter_module.SurvivorAdapter(tmp_path, {"python": sys.executable})
    line = '{"check":"s000","host":"h000000","planned":100.0,"start":100.25,"duration_ms":3}'
    assert adapter.parse_result(line) == (0.25, 0.003)
    assert adapter.parse_result("not json") is None


def _instance_lines(adapter_module: ModuleType, tmp_path: Path, options: dict[str, str]) -> str:
    adapter = adapter_module.SurvivorAdapter(tmp_path, {"python": sys.executable, **options})
    adapter.write_config(adapter_module.Workload(services=10))
    text = (tmp_path / "etc" / "survivor.yaml").read_text()
    return text.split("schedules:")[0]


def test_workers_default_writes_no_concurrency_setting(
    adapter_module: ModuleType, tmp_path: Path
) -> None:
    for options in ({}, {"workers": "default"}):  # no option means the default
        instance = _instance_lines(adapter_module, tmp_path, options)
        assert "check_workers" not in instance and "max_running_checks" not in instance


def test_workers_n_caps_the_checks(adapter_module: ModuleType, tmp_path: Path) -> None:
    assert "  check_workers: 16\n" in _instance_lines(adapter_module, tmp_path, {"workers": "16"})
    with pytest.raises(ValueError, match="workers='many'"):
        adapter_module.SurvivorAdapter(tmp_path, {"workers": "many"})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make certificates")
def test_remote_places_every_service_on_local_workers(
    adapter_module: ModuleType, tmp_path: Path
) -> None:
    adapter = adapter_module.SurvivorAdapter(tmp_path, {"python": sys.executable, "remote": "2"})
    adapter.write_config(adapter_module.Workload(services=95))
    text = (tmp_path / "etc" / "survivor.yaml").read_text()
    assert "placement:\n  bench: [local-workers]\n  bench-part: [local-workers]\n" in text
    assert 'local-workers: {workers: ["w1", "w2"]}' in text
    for name in ("ca", "scheduler", "server", "w1", "w2"):
        assert (tmp_path / "pki" / f"{name}.pem").is_file()
    done = subprocess.run(
        adapter.validate_argv(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "95 check@host pairs" in done.stdout
