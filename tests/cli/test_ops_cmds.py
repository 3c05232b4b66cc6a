"""The operator commands through click: exit codes, one-line reports, refusals on stderr."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from survivor.actions import operator
from survivor.cli import main
from survivor.model.documents import CheckState
from tests.test_ops import CONFIG


class Sc:
    """`survivor --config CONFIG ...` on a scratch tree, at the real time (the CLI reads it)."""

    def __init__(self, tmp_path: Path, scratch: Path) -> None:
        self.config_path = tmp_path / "survivor.yaml"
        self.config_path.write_text(CONFIG.format(mod=scratch / "mod"))
        self.state = tmp_path / "state"
        self.history = tmp_path / "history"
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            main, ["--config", str(self.config_path), *args], catch_exceptions=False
        )

    def set_check(self, host: str, check: str, rc: int) -> None:
        from survivor.model.config import FsyncPolicy
        from survivor.store.fsio import FileWriter
        from survivor.store.state import StateStore

        now = datetime.now(UTC)
        StateStore(self.state, FileWriter(FsyncPolicy.NEVER)).write_check(
            host,
            check,
            CheckState(rc=rc, since=now - timedelta(minutes=5), consecutive=2, last_start=now),
        )

    def pair_file(self, host: str, check: str, name: str) -> Path:
        return self.state / "host" / host / check / f"{name}.json"

    def commands(self, host: str, check: str) -> list[dict[str, object]]:
        files = sorted((self.history / "host" / host / check).glob("command-*.jsonl"))
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]

    def requests(self) -> list[dict[str, object]]:
        d = self.state / "requests"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []


@pytest.fixture
def sc(tmp_path: Path, scratch: Path) -> Sc:
    return Sc(tmp_path, scratch)


def test_ack_prints_what_was_done_and_records_the_user(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    result = sc("ack", "http@web1", "-m", "on it")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("acknowledged web1/http (PROBLEM since ")
    assert result.stdout.rstrip().endswith(": on it")
    assert sc.pair_file("web1", "http", "ack").exists()
    [record] = sc.commands("web1", "http")
    assert (record["user"], record["command"], record["comment"]) == (
        operator.current_user(),
        "ack",
        "on it",
    )


def test_a_refused_ack_exits_1_with_the_reason(sc: Sc) -> None:
    sc.set_check("web1", "http", 0)
    result = sc("ack", "web1/http")
    assert result.exit_code == 1
    assert "web1/http is OK; nothing to acknowledge" in result.stderr
    assert not sc.pair_file("web1", "http", "ack").exists()


def test_several_targets_each_get_a_line_and_a_refusal_is_reported(sc: Sc) -> None:
    # Issue 22: exit 0 when at least one pair was acted on, 1 when none was.
    sc.set_check("web1", "http", 1)
    sc.set_check("web2", "http", 0)
    result = sc("ack", "web1/http", "web2/http")
    assert result.exit_code == 0
    assert result.stdout.startswith("acknowledged web1/http")
    assert "web2/http is OK" in result.stderr
    assert "1 of 2 pairs acted on" in result.stderr
    assert not sc.pair_file("web2", "http", "ack").exists()


def test_bad_target_syntax_is_a_usage_error(sc: Sc) -> None:
    result = sc("ack", "web1/../x")
    assert result.exit_code == 2
    assert "is not a valid check name" in result.stderr
    assert sc("ack").exit_code == 2  # no selection at all


def test_unknown_host_is_refused(sc: Sc) -> None:
    result = sc("reschedule", "nosuch/http")
    assert result.exit_code == 1
    assert "no host named 'nosuch'" in result.stderr


def test_unack_removes_the_ack_and_reschedules(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    assert sc("ack", "web1/http").exit_code == 0
    result = sc("unack", "web1/http")
    assert result.exit_code == 0, result.output
    assert not sc.pair_file("web1", "http", "ack").exists()
    assert [r["action"] for r in sc.requests()] == ["reschedule"]


def test_inhibit_until_a_relative_time_and_uninhibit(sc: Sc) -> None:
    result = sc("inhibit", "web1/http", "--until", "+2h", "-m", "maintenance")
    assert result.exit_code == 0, result.output
    assert " until " in result.stdout and result.stdout.rstrip().endswith(": maintenance")
    doc = json.loads(sc.pair_file("web1", "http", "inhibit").read_text())
    until = datetime.fromisoformat(doc["until"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)
    result = sc("uninhibit", "web1/http")
    assert result.exit_code == 0, result.output
    assert not sc.pair_file("web1", "http", "inhibit").exists()


@pytest.mark.parametrize(
    ("until", "words"), [("soonish", "is not a time"), ("2001-01-01", "future")]
)
def test_inhibit_with_a_bad_until_is_a_usage_error(sc: Sc, until: str, words: str) -> None:
    result = sc("inhibit", "web1/http", "--until", until)
    assert result.exit_code == 2
    assert "--until" in result.stderr and words in result.stderr
    assert not sc.pair_file("web1", "http", "inhibit").exists()


def test_escalate_to_the_top_and_no_further(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    assert sc("escalate", "web1/http").exit_code == 0
    assert sc("escalate", "web1/http").exit_code == 0
    result = sc("escalate", "web1/http")
    assert result.exit_code == 1
    assert "Already at maximum escalation level" in result.stderr


def test_reschedule_drops_a_request(sc: Sc) -> None:
    result = sc("reschedule", "web1/ping", "web2/ping")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert sorted(str(r["host"]) for r in sc.requests()) == ["web1", "web2"]


def test_fix_runs_the_fix_and_reschedules_a_failing_check(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    result = sc("fix", "web1/http", "-m", "restart it")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("fix restart on web1/http: OK: fixed web1")
    assert "rescheduled" in result.stdout
    assert len(sc.requests()) == 1


def test_a_failing_fix_exits_1(sc: Sc) -> None:
    result = sc("fix", "web1/smtp")
    assert result.exit_code == 1
    assert "PROBLEM: service would not start" in result.stderr


def test_fix_without_a_fix_is_refused(sc: Sc) -> None:
    result = sc("fix", "web1/ping")
    assert result.exit_code == 1
    assert "check ping has no fix defined" in result.stderr


def test_calllist_substitute_and_show(sc: Sc) -> None:
    result = sc(
        "calllist", "substitute", "oncall", "carol", "--for", "alice", "--until", "+1d", "-m", "x"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("call list oncall: carol replaces alice until ")
    result = sc("calllist", "show", "oncall")
    assert result.exit_code == 0, result.output
    assert "call list oncall (rotating at the times of rotate-monday, via mail)" in result.stdout
    assert "members: alice, bob" in result.stdout
    assert "on call now: alice (the first alert through the list starts the rotation)" in (
        result.stdout
    )
    assert "carol for alice until " in result.stdout
    view = json.loads(sc("calllist", "show", "oncall", "--json").stdout)
    assert view["on_call"] == "alice"
    assert [r["person"] for r in view["recipients_now"]] == ["carol"]


def test_calllist_substitute_refusals(sc: Sc) -> None:
    result = sc("calllist", "substitute", "oncall", "carol", "--for", "dave", "--until", "+1d")
    assert result.exit_code == 1
    assert "dave is not a member" in result.stderr
    result = sc("calllist", "substitute", "oncall", "carol", "--for", "alice")
    assert result.exit_code == 2
    assert "--until" in result.stderr
    result = sc("calllist", "show", "nope")
    assert result.exit_code == 1
    assert "no call list named 'nope'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["ack"],
        ["unack"],
        ["inhibit"],
        ["uninhibit"],
        ["escalate"],
        ["reschedule"],
        ["fix"],
        ["calllist"],
        ["calllist", "show"],
        ["calllist", "substitute"],
    ],
)
def test_every_command_has_help(sc: Sc, args: list[str]) -> None:
    result = sc(*args, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.stdout
    if args[0] != "calllist":
        assert "CHECK@HOST" in result.stdout and "--comment" in result.stdout


# --------------------------------------------------------------------------- selections (issue 22)


def test_a_host_acks_every_failing_check_and_reports_the_ok_one(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    sc.set_check("web1", "smtp", 2)
    sc.set_check("web1", "ping", 0)
    result = sc("ack", "web1", "-m", "maintenance")
    assert result.exit_code == 0, result.output
    http, smtp = result.stdout.splitlines()
    assert http.startswith("acknowledged web1/http (PROBLEM since ")
    assert smtp.startswith("acknowledged web1/smtp (WARNING since ")
    assert "web1/ping is OK; nothing to acknowledge" in result.stderr
    assert not sc.pair_file("web1", "ping", "ack").exists()
    records = [*sc.commands("web1", "http"), *sc.commands("web1", "smtp")]
    assert [r["command"] for r in records] == ["ack", "ack"]
    assert sc.commands("web1", "ping") == []
    op_ids = {r["op_id"] for r in records}
    assert len(op_ids) == 1 and all(isinstance(i, str) and i for i in op_ids)


def test_each_invocation_has_its_own_operation_id(sc: Sc) -> None:
    assert sc("reschedule", "web1/http").exit_code == 0
    assert sc("reschedule", "web1/http").exit_code == 0
    first, second = sc.commands("web1", "http")
    assert first["op_id"] != second["op_id"]


def test_star_check_and_group_select_pairs_on_several_hosts(sc: Sc) -> None:
    result = sc("reschedule", "*/http", "--group", "db")
    assert result.exit_code == 0, result.output
    assert sorted((r["host"], r["check"]) for r in sc.requests()) == [
        ("db1", "ping"),
        ("web1", "http"),
        ("web2", "http"),
    ]


def test_dry_run_lists_the_pairs_and_changes_nothing(sc: Sc) -> None:
    sc.set_check("web2", "http", 1)
    result = sc("ack", "web2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["web2/http", "web2/ping"]
    assert not sc.pair_file("web2", "http", "ack").exists()
    assert sc.commands("web2", "http") == []


def test_when_no_pair_accepts_the_action_the_exit_code_is_1(sc: Sc) -> None:
    sc.set_check("web1", "http", 0)
    sc.set_check("web2", "http", 0)
    result = sc("ack", "*/http")
    assert result.exit_code == 1
    assert "0 of 2 pairs acted on" in result.stderr


def test_a_selection_matching_nothing_says_what_and_suggests(sc: Sc) -> None:
    result = sc("inhibit", "wbe1", "web2/http")
    assert result.exit_code == 1
    assert "nothing configured matches 'wbe1'" in result.stderr
    assert "did you mean 'web1'?" in result.stderr
    assert not sc.pair_file("web2", "http", "inhibit").exists()  # nothing done at all


def test_escalate_takes_a_selection(sc: Sc) -> None:
    sc.set_check("web1", "http", 1)
    sc.set_check("web2", "http", 1)
    result = sc("escalate", "*/http")
    assert result.exit_code == 0, result.output
    assert sc.pair_file("web1", "http", "escalate").exists()
    assert sc.pair_file("web2", "http", "escalate").exists()
