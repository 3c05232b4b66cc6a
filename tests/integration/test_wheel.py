"""`pip install` of the built wheel runs the shipped example: the bundled modules come along.

Builds the wheel from a copy of the source (nothing is written into the checkout),
installs it into a fresh venv (dependencies from the configured index), then runs
`survivor validate` and a daemon minute on a copy of etc/ that has no mod/ beside it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.daemonproc import REPO, history_lines

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SOURCE = ("pyproject.toml", "MANIFEST.in", "README.md", "survivor", "etc", "sbin", "docs")
PLUGINS = ("check_load", "check_ping", "check_disk", "check_ssh")  # etc/conf.d/plugins.yaml
PIP_ENV = ("HOME", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
PLUGIN_DIRS = (
    "/usr/lib/nagios/plugins",
    "/usr/lib/monitoring-plugins",
    "/usr/local/nagios/libexec",
)


def run(argv: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    # Whatever tells pip where packages come from (the index the dev extra came from).
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in PIP_ENV})
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCE:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, src / name)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), "."], src
    )
    wheels = list((tmp / "dist").glob("survivor-*.whl"))
    assert len(wheels) == 1, wheels
    run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp)
    run([str(tmp / "venv" / "bin" / "pip"), "install", "-q", str(wheels[0])], tmp)
    return tmp / "venv" / "bin"


def example(tmp_path: Path) -> Path:
    """etc/ of the checkout, alone: no mod/ beside it, as in /etc/survivor."""
    shutil.copytree(REPO / "etc", tmp_path / "etc")
    if not all(any(Path(d, p).exists() for d in PLUGIN_DIRS) for p in PLUGINS):
        # Without monitoring-plugins installed validate rightly fails those checks;
        # what this test is about is the bundled modules.
        (tmp_path / "etc" / "conf.d" / "plugins.yaml").unlink()
    return tmp_path / "etc" / "survivor.yaml"


def test_the_installed_wheel_validates_and_runs_the_example(
    installed: Path, tmp_path: Path
) -> None:
    config = example(tmp_path)
    survivor = str(installed / "survivor")
    done = run([survivor, "--config", str(config), "validate"], tmp_path)
    assert "OK" in done.stdout and "FAILED" not in done.stdout
    bundled = next((installed.parent / "lib").glob("python3*/site-packages/survivor/mod"))
    assert all(os.access(f, os.X_OK) for f in bundled.glob("*/*")), "modules lost their mode"

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "SURVIVOR_TEST_CLOCK_SPEED": "60",  # a minute a second
        "SURVIVOR_TEST_CLOCK_ORIGIN": str(time.time()),
    }
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [survivor, "--config", str(config), "run"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    try:
        disk = tmp_path / "var" / "history" / "host" / "localhost" / "disk"
        wait_until(lambda: history_lines(disk), 60, "the disk check to run")
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        record = history_lines(disk)[0]
        assert record["code"] in ("OK", "WARNING", "PROBLEM"), record  # not MISCONFIG
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
