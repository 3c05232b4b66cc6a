"""Unchanged Nagios plugins from Debian's monitoring-plugins, run the way the daemon runs them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from survivor.checks.execute import CheckRunner
from survivor.config import load_config
from survivor.model.config import Config
from survivor.model.work import CheckResult
from survivor.proc.runner import ModuleRunner

PLUGINS = Path("/usr/lib/nagios/plugins")
needs_plugins = pytest.mark.skipif(
    not (PLUGINS / "check_dummy").exists(),
    reason="monitoring-plugins-basic is not installed (apt-get install monitoring-plugins-basic)",
)
pytestmark = needs_plugins


def config_with(tmp_path: Path, checks: str, host_vars: str = "{}") -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(f"""\
instance:
  name: plugins
  state_dir: state
  history_dir: history
  module_dir: {tmp_path / "mod"}
  plugin_dirs: [{PLUGINS}]
hosts:
  local: {{address: 127.0.0.1, vars: {host_vars}}}
classes:
  all-hosts: {{hosts: [local], schedule: s}}
schedules:
  s: [{{every: 1m}}]
checks:
{on_local(checks)}
""")
    (tmp_path / "mod" / "check").mkdir(parents=True, exist_ok=True)
    return load_config(path)


def on_local(checks: str) -> str:
    return checks.replace("{plugin:", "{hosts: [local], plugin:")


def run(config: Config, check: str) -> CheckResult:
    runner = CheckRunner(ModuleRunner(config.instance.module_dirs, config.instance.plugin_dirs))
    [result] = runner.run(config, config.checks[check], [config.hosts["local"]])
    return result


@pytest.mark.parametrize(
    ("status", "rc", "code"),
    [(0, 0, "OK"), (1, 2, "WARNING"), (2, 1, "PROBLEM"), (3, 4, "MISCONFIG")],
)
def test_check_dummy_exit_codes_map_to_survivor_codes(
    tmp_path: Path, status: int, rc: int, code: str
) -> None:
    config = config_with(
        tmp_path, f'  d: {{plugin: check_dummy, argv: ["{status}", "said {{host}}"]}}\n'
    )
    result = run(config, "d")
    assert (result.rc, result.code) == (rc, code)
    assert result.comment.endswith("said local")


def test_check_dummy_out_of_range_status_is_misconfig(tmp_path: Path) -> None:
    config = config_with(tmp_path, '  d: {plugin: check_dummy, argv: ["7", "x"]}\n')
    result = run(config, "d")
    assert result.rc == 4


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        yield srv.getsockname()[1]


def test_check_tcp_open_and_closed_ports(tmp_path: Path, listening_port: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = config_with(
        tmp_path,
        '  open: {plugin: check_tcp, argv: ["-H", "{address}", "-p", "{vars.port}"]}\n'
        f'  closed: {{plugin: check_tcp, argv: ["-H", "{{address}}", "-p", "{closed}"]}}\n',
        host_vars=f"{{port: {listening_port}}}",
    )
    ok = run(config, "open")
    assert ok.rc == 0, ok.comment
    assert ok.perfdata and ok.perfdata[0].label == "time" and ok.perfdata[0].uom == "s"
    assert ok.scalar == ok.perfdata[0].value
    refused = run(config, "closed")
    assert refused.rc == 1 and "refused" in refused.comment.lower()


def test_check_disk_perfdata_is_parsed(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        f'  disk: {{plugin: check_disk, argv: ["-w", "1%", "-c", "1%", "-p", "{tmp_path}"]}}\n'
        f'  full: {{plugin: check_disk, argv: ["-w", "100%", "-c", "100%", "-p", "{tmp_path}"]}}\n',
    )
    ok = run(config, "disk")
    assert ok.rc == 0, ok.comment
    assert ok.perfdata, ok
    datum = ok.perfdata[0]
    assert datum.uom in ("B", "KB", "MB", "GB", "TB", "%") and datum.value is not None
    assert datum.max is not None and datum.min == 0
    assert ok.scalar == datum.value
    assert run(config, "full").rc == 1


def test_plugin_timeout_is_timedout(tmp_path: Path) -> None:
    sleeper = tmp_path / "mod" / "check" / "slow-plugin"
    config = config_with(tmp_path, "  slow: {plugin: slow-plugin, timeout: 1s}\n")
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    result = run(config, "slow")
    assert result.rc == 5 and "timed out" in result.comment
