"""The `survivor` group: every command is reachable, and only the one used is imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

from click.testing import CliRunner

from survivor.cli import COMMAND_MODULES, main
from tests.integration.daemonproc import REPO


def test_command_map_matches_what_each_module_defines() -> None:
    defined = {
        command.name: module_name
        for module_name in set(COMMAND_MODULES.values())
        for command in importlib.import_module(f"survivor.cli.{module_name}").COMMANDS
    }
    assert defined == COMMAND_MODULES


def test_help_lists_every_command_with_its_summary() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1]
    for name in COMMAND_MODULES:
        assert f"\n  {name} " in listed
    assert "Run the scheduler daemon." in listed


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["statsu"])
    assert result.exit_code == 2
    assert "No such command 'statsu'" in result.output


def test_unknown_command_suggests_the_nearest_one() -> None:
    # A fresh process: in this one, other tests have loaded commands click could suggest from.
    result = subprocess.run(
        [sys.executable, "-m", "survivor", "stauts"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert result.returncode == 2
    assert "No such command 'stauts'. Did you mean 'status'?" in result.stderr


def test_a_command_imports_only_its_own_module() -> None:
    probe = (
        "import sys; from survivor.cli import main; sys.argv[0] = 'survivor'\n"
        "try:\n    main(['validate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('survivor.cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip().splitlines()[-1] == "['survivor.cli.app', 'survivor.cli.daemon_cmds']"
