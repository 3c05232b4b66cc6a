"""The `survivor` click group on a scratch state tree."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from survivor.cli import main
from tests.viewstate import Tree, empty_tree, full_tree

# The real `python -m survivor` entry point, for tests that need a separate process.
ENTRY = "import sys; from survivor.cli import main; sys.argv[0] = 'survivor'; main()"


class Cli:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            main, ["--config", str(self.tree.config), *args], catch_exceptions=False
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
