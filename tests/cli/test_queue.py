"""`survivor queue` and `survivor queue cancel ID`, against a stand-in for the daemon."""

from __future__ import annotations

import json
import os
import pwd
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from survivor.clock import utc_iso
from survivor.model.documents import Request
from survivor.store.fsio import read_document
from tests.cli.conftest import Cli
from tests.viewstate import Tree, write_raw

ME = pwd.getpwuid(os.getuid()).pw_name


def test_queue_per_host(cli: Cli) -> None:
    result = cli("queue")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "queue.json: updated" in out and "1 running, 1 queued" in out
    assert "the daemon is NOT RUNNING" in out  # the fixture holds no pidfile
    web1 = out[out.index("web1: ") :]
    assert web1.startswith("web1: 1 running, 1 queued")
    assert "running  c1f2a" in web1 and "worker check-2  pid 4242" in web1
    assert "queued   c1f2b" in web1 and "(retry)" in web1
    assert "web2: 1 queued" in out  # the batched ping item covers web2 too
    assert "db1: idle" in out and "last ran: disk" in out


def test_queue_one_host_lists_every_check(cli: Cli) -> None:
    out = cli("queue", "--host", "db1").output
    assert "db1: idle" in out and "ran: disk" in out and "never ran: ping" in out
    assert "web1" not in out


def test_queue_json(cli: Cli) -> None:
    data = json.loads(cli("queue", "--json").output)
    hosts = {h["host"]: h for h in data["hosts"]}
    assert set(hosts) == {"web1", "web2", "db1"}
    assert [i["id"] for i in hosts["web1"]["items"]] == ["c1f2a", "c1f2b"]
    assert hosts["web1"]["items"][0]["worker"] == "check-2"
    assert sorted(r["check"] for r in hosts["web1"]["ran"]) == ["http", "ping"]
    assert hosts["db1"]["never_ran"] == ["ping"]
    assert data["daemon"]["running"] is False


def test_queue_unknown_and_unsafe_host(cli: Cli) -> None:
    unknown = cli("queue", "--host", "nohost")
    assert unknown.exit_code == 1 and "no host named 'nohost'" in unknown.output
    unsafe = cli("queue", "--host", "../x")
    assert unsafe.exit_code == 2


def test_queue_on_an_empty_or_damaged_state_dir(bare: Tree) -> None:
    empty = Cli(bare)("queue")
    assert empty.exit_code == 0
    assert "queue.json: absent" in empty.output and "web1: idle" in empty.output
    write_raw(bare.state / "queue.json", {"version": 1, "items": [{"id": "z9", "hosts": 5}, 3]})
    damaged = Cli(bare)("queue")
    assert damaged.exit_code == 0 and "warning: queue.json: item 1" in damaged.output
    write_raw(bare.state / "queue.json", "{")
    torn = Cli(bare)("queue", "--json")
    assert torn.exit_code == 0 and json.loads(torn.output)["errors"]


# --------------------------------------------------------------------------- cancel


class FakeDaemon:
    """Holds the pidfile and, like the daemon, applies cancel requests to queue.json."""

    def __init__(self, tree: Tree, *, obey: bool = True) -> None:
        self.tree = tree
        self.obey = obey
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for req in self.tree.store.take_requests(datetime.now(UTC)):
                self.requests.append(req.to_dict())
                if self.obey and req.action == "cancel":
                    doc = read_document(self.tree.store.layout.queue) or {}
                    doc["items"] = [i for i in doc.get("items", []) if i["id"] != req.target]
                    doc["updated"] = utc_iso(datetime.now(UTC))
                    self.tree.store.write_queue(doc)
            self.stop.wait(0.02)


@pytest.fixture
def daemon(tree: Tree) -> Iterator[FakeDaemon]:
    from survivor.store.pidfile import PidFile

    pidfile = PidFile(tree.state / "survivor.pid")
    pidfile.acquire()
    pidfile.write_pid()
    fake = FakeDaemon(tree)
    fake.thread.start()
    yield fake
    fake.stop.set()
    fake.thread.join(5)
    pidfile.release()


def command_history(tree: Tree, host: str, check: str) -> list[dict[str, Any]]:
    """The `queue cancel` records of a pair (the fixture has an `ack` record too)."""
    records = tree.hist.read(host, check, "command")
    return [r for r in records if r.get("command") == "queue cancel"]


def test_cancel_a_queued_item(cli: Cli, tree: Tree, daemon: FakeDaemon) -> None:
    start = time.monotonic()
    result = cli("queue", "cancel", "c1f2b", "--comment", "not now")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "c1f2b: cancelled (check ping on web1, web2)"
    assert time.monotonic() - start < 5
    [req] = daemon.requests
    assert req["action"] == "cancel" and req["target"] == "c1f2b" and req["user"] == ME
    assert req["comment"] == "not now"
    Request.from_dict(req)
    for host in ("web1", "web2"):
        [record] = command_history(tree, host, "ping")
        assert record["user"] == ME and record["command"] == "queue cancel"
        assert record["item"] == "c1f2b" and record["comment"] == "not now"
    assert "c1f2b" not in (tree.state / "queue.json").read_text()


def test_cancel_a_running_item_json(cli: Cli, tree: Tree, daemon: FakeDaemon) -> None:
    result = cli("queue", "cancel", "c1f2a", "--json", "-m", "stuck")  # -m as on other actions
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["gone"] is True and data["was"] == "running" and data["hosts"] == ["web1"]
    assert [r["item"] for r in command_history(tree, "web1", "http")] == ["c1f2a"]
    assert [r["comment"] for r in command_history(tree, "web1", "http")] == ["stuck"]


def test_cancel_that_the_daemon_does_not_apply_in_time(
    cli: Cli, tree: Tree, daemon: FakeDaemon
) -> None:
    daemon.obey = False
    result = cli("queue", "cancel", "c1f2a", "--timeout", "0.3")
    assert result.exit_code == 3
    assert "still in the queue after 0.3 s" in result.output
    assert len(command_history(tree, "web1", "http")) == 1  # the request was made and recorded


def test_cancel_unknown_or_finished_id(cli: Cli, daemon: FakeDaemon) -> None:
    result = cli("queue", "cancel", "c999")
    assert result.exit_code == 1
    assert "no queued or running item 'c999'" in result.output
    assert "finished already" in result.output
    assert daemon.requests == []


def test_cancel_without_a_daemon(cli: Cli, tree: Tree) -> None:
    result = cli("queue", "cancel", "c1f2a")
    assert result.exit_code == 1 and "the daemon is not running" in result.output
    assert not (tree.state / "requests").exists()
    assert command_history(tree, "web1", "http") == []


def test_cancel_without_queue_json_or_with_a_bad_id(bare: Tree) -> None:
    missing = Cli(bare)("queue", "cancel", "c1")
    assert missing.exit_code == 1 and "queue.json" in missing.output
    bad = Cli(bare)("queue", "cancel", "../../etc")
    assert bad.exit_code == 2 and "not a queue item ID" in bad.output


def test_sudo_user_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from survivor.cli import queue_cmds

    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    assert queue_cmds.operator_name().split()[0] == ME  # the uid decides, not $USER
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "alice")
    assert queue_cmds.operator_name() == "root (sudo by alice)"
