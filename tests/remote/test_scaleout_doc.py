"""docs/scaleout.md's openssl commands work as written, and make what the broker and the
workers need (the subjects survivor reads; certificates the CA verifies)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from survivor.remote.certs import certificate_subject

DOC = Path(__file__).resolve().parents[2] / "docs" / "scaleout.md"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_certificate_commands_run_as_written(tmp_path: Path) -> None:
    section = DOC.read_text().split("## Certificates (openssl)", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S)
    assert script is not None
    done = subprocess.run(
        ["bash", "-c", script.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for name in ("nats1", "scheduler", "dc1-a", "web1"):
        assert certificate_subject(tmp_path / f"{name}.pem") == f"CN={name}"
        assert (tmp_path / f"{name}.key").stat().st_mode & 0o777 == 0o600
    assert "nats1.pem: OK" in done.stdout


def yaml_block(heading: str) -> str:
    section = DOC.read_text().split(heading, 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)


def test_the_scheduler_example_loads(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("ca.pem", "scheduler.pem", "scheduler.key"):
        (tmp_path / "pki" / name).write_text("x")
    (tmp_path / "survivor.yaml").write_text(
        "instance: {name: main, state_dir: state, history_dir: history}\n"
        + yaml_block("## The scheduler's configuration")
    )
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "site.yaml").write_text(
        "hosts: {web1: {}, gw: {}}\n"
        "classes: {web: {hosts: [web1], schedule: s}, edge: {hosts: [gw], schedule: s}}\n"
        "groups: {dmz: {classes: [edge]}}\n"
        "schedules: {s: [{every: 5m}]}\n"
    )
    from survivor.config import load_config

    config = load_config(tmp_path / "survivor.yaml")
    web1, gw = config.hosts["web1"], config.hosts["gw"]
    assert config.targets_for(config.checks["root-disk"], web1) == ("on-web1",)
    assert config.targets_for(config.checks["heartbeat"], gw) == ("local",)
