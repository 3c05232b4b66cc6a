"""The `survivor` click group with this package's read commands, and a scratch state tree."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tests.viewstate import Tree, empty_tree, full_tree

# Launches the real `python -m survivor` entry point with the queue and web
# commands added, whether or not survivor/cli/__init__.py registers them yet.
ENTRY = (
    "import sys; from survivor.cli import main; "
    "from survivor.cli import queue_cmds, web_cmds; "
    "[main.add_command(c) for m in (queue_cmds, web_cmds) for c in m.COMMANDS "
    "if c.name not in main.commands]; "
    "sys.argv[0] = 'survivor'; main()"
)


def survivor_group() -> click.Group:
    from survivor.cli import main, queue_cmds, status_cmds, web_cmds

    for module in (status_cmds, queue_cmds, web_cmds):
        for command in module.COMMANDS:
            if command.name not in main.commands:
                main.add_command(command)
    return main


class Cli:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            survivor_group(), ["--config", str(self.tree.config), *args], catch_exceptions=False
        )


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """The full tree at the real time: the commands read the system clock."""
    return full_tree(tmp_path / "tree", datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def bare(tmp_path: Path) -> Tree:
    return empty_tree(tmp_path / "bare")


@pytest.fixture
def cli(tree: Tree) -> Cli:
    return Cli(tree)
