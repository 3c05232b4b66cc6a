"""`module_dir` and `plugin_dirs`: one path or a list; the messages say what is wrong (issue 23,
item 15)."""

from __future__ import annotations

from pathlib import Path

from survivor.config import load_config
from tests.config.test_build import load_problems, write


def test_an_empty_plugin_dirs_means_no_plugin_directories(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "instance: {state_dir: s, history_dir: h, plugin_dirs: []}\n")
    )
    assert config.instance.plugin_dirs == ()


def test_an_empty_module_dir_says_so(tmp_path: Path) -> None:
    [problem] = load_problems(
        write(tmp_path, "instance: {state_dir: s, history_dir: h, module_dir: []}\n")
    )
    assert problem.line == 1
    assert problem.message.endswith("expected at least one path, got an empty list")
    assert "got a list" not in problem.message
