"""Issue 23, item 15: the small ones (signalling without permission, a damaged inhibition)."""

from __future__ import annotations

import errno
import json
import signal

import pytest

import survivor.cli.daemon_cmds as daemon_cmds
from tests.cli.conftest import Cli
from tests.viewstate import Tree, write_raw


@pytest.mark.parametrize(("command", "sig"), [("reload", "SIGHUP"), ("stop", "SIGTERM")])
def test_signalling_the_daemon_without_permission_says_who_may(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: str, sig: str
) -> None:
    sent: list[tuple[int, int]] = []

    def refuse(pid: int, signum: int) -> None:
        sent.append((pid, signum))
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(daemon_cmds, "_daemon_pid", lambda app: 4242)
    monkeypatch.setattr(daemon_cmds.os, "kill", refuse)
    result = cli(command)
    assert result.exit_code == 1
    assert sent == [(4242, signal.Signals[sig])]
    assert "None" not in result.output
    assert f"cannot send {sig} to the survivor daemon (pid 4242): permission denied" in (
        result.output
    )


def test_an_inhibition_whose_until_does_not_parse_is_not_shown_as_inhibited(
    cli: Cli, tree: Tree
) -> None:
    path = tree.store.layout.pair_doc("db1", "disk", "inhibit")
    doc = json.loads(path.read_text())
    assert json.loads(cli("status", "--json").output)["checks"][1]["inhibited"] is True
    write_raw(path, {**doc, "until": "tomorrow-ish"})
    checks = json.loads(cli("status", "--json").output)["checks"]
    [row] = [c for c in checks if (c["host"], c["check"]) == ("db1", "disk")]
    assert row["inhibited"] is False  # fail closed: the daemon ignores it and alerts
    assert "not inhibited" in row["error"] and "inhibition" in row["error"]
    assert "INHIBITED" not in cli("status").output
