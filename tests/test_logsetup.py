"""logsetup: SIGUSR1's reopen moves the log file handler to a new file at the same path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from survivor.daemon.logsetup import reopen_log_files, setup_logging
from survivor.model.config import LogConfig


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_reopen_writes_to_a_new_file_after_the_old_one_was_moved(
    tmp_path: Path, restore_root: None
) -> None:
    path = tmp_path / "survivor.log"
    handler = setup_logging(LogConfig(target=str(path), level="info"))
    # A plain FileHandler would keep writing into the moved file: only the reopen helps.
    plain = logging.FileHandler(path)
    logging.getLogger().addHandler(plain)
    logging.getLogger("t").info("before")
    path.rename(tmp_path / "survivor.log.1")
    assert reopen_log_files() == [str(path), str(path)]
    logging.getLogger("t").info("after")
    for h in (handler, plain):
        h.flush()
    assert path.read_text().count("after") == 2
    assert "after" not in (tmp_path / "survivor.log.1").read_text()


def test_reopen_without_log_files_is_a_no_op(restore_root: None) -> None:
    setup_logging(LogConfig(target="stderr", level="info"))
    assert reopen_log_files() == []
