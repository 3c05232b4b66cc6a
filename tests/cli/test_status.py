"""`survivor status`: problems first, filters, JSON, daemon health, and state in any shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survivor.cli.app import App, echo_json, echo_json_rows, indented_json
from survivor.cli.status_cmds import StatusQuery, watch_screen
from survivor.clock import utc_iso
from survivor.model.codes import ReturnCode
from tests.cli.conftest import Cli
from tests.viewstate import Tree, daemon_doc, hold_pidfile, state, write_raw


def body(output: str) -> list[str]:
    """The pair lines, without the daemon's lines."""
    return [line for line in output.splitlines() if not line.startswith(("daemon", "pool"))]


def test_problems_first_then_the_rest(cli: Cli) -> None:
    result = cli("status")
    assert result.exit_code == 0, result.output
    lines = body(result.output)
    assert [line.split()[:3] for line in lines] == [
        ["web1", "http", "PROBLEM"],
        ["db1", "disk", "WARNING"],
        ["db1", "ping", "NOTYET"],
        ["web1", "ping", "OK"],
        ["web2", "http", "OK"],
        ["web2", "ping", "OK"],
    ]
    assert " ACK " in lines[0] and " INHIBITED " in lines[1]
    assert result.output.startswith("daemon: NOT RUNNING (last seen")


def test_problems_only_and_targets(cli: Cli, tree: Tree) -> None:
    problems = body(cli("status", "--problems").output)
    assert [line.split()[:2] for line in problems] == [["web1", "http"], ["db1", "disk"]]
    host = body(cli("status", "web2").output)
    assert {line.split()[0] for line in host} == {"web2"} and len(host) == 2
    pair = body(cli("status", "http@web1").output)
    assert pair[0].startswith("web1  http  PROBLEM")
    assert all(line.startswith("  ") for line in pair[1:])  # the pair's alerting detail
    with hold_pidfile(tree.state):  # a healthy daemon: --problems exits 1 otherwise
        quiet = cli("status", "web2", "--problems")
    assert quiet.exit_code == 0 and body(quiet.output) == ["no problems"]


def test_problems_exits_1_while_anything_needs_attention(cli: Cli, tree: Tree) -> None:
    # issue 19: `status --problems` exited 0 with problems listed.
    with hold_pidfile(tree.state):
        assert cli("status", "--problems").exit_code == 1  # web1/http PROBLEM
        assert cli("status", "--problems", "--json").exit_code == 1
        assert cli("status", "web2", "--problems").exit_code == 0
        assert cli("status", "web2", "--problems", "--json").exit_code == 0
        assert cli("status").exit_code == 0  # without --problems: 0 whatever it shows
    stopped = cli("status", "web2", "--problems")  # nothing failing, but no daemon
    assert stopped.exit_code == 1 and "NOT RUNNING" in stopped.output


def test_a_pair_held_back_by_a_dependency_is_not_a_problem(cli: Cli) -> None:
    """DEPEND needs nobody (its dependency's pair is the problem), and `ack` refuses it:
    `status --problems` must not list what an operator cannot acknowledge."""
    now = datetime.now(UTC)
    cli.tree.store.write_check("web2", "http", state(6, now=now, minutes_ago=1))
    listed = body(cli("status").output)
    assert ["web2", "http", "DEPEND"] in [line.split()[:3] for line in listed]
    problems = body(cli("status", "--problems").output)
    assert [line.split()[:2] for line in problems] == [["web1", "http"], ["db1", "disk"]]
    refused = cli("ack", "web2/http")
    assert refused.exit_code != 0 and "nothing to acknowledge" in refused.output


def test_unknown_or_unsafe_target(cli: Cli) -> None:
    unknown = cli("status", "nohost")
    assert unknown.exit_code == 1 and "nothing configured matches 'nohost'" in unknown.output
    typo = cli("status", "nohost", "--problems")
    assert typo.exit_code == 1
    unsafe = cli("status", "../etc")
    assert unsafe.exit_code == 2 and "not a valid host name" in unsafe.output


def test_json_output(cli: Cli) -> None:
    result = cli("status", "--json")
    data = json.loads(result.output)
    assert data["daemon"]["running"] is False and data["daemon"]["instance"] == "viewtest"
    assert data["daemon"]["pid_alive"] is False and data["daemon"]["live_pid"] is None
    assert data["daemon"]["summary"]["level"] == "problem"
    checks = data["checks"]
    assert [(c["host"], c["check"], c["code"]) for c in checks][:2] == [
        ("web1", "http", "PROBLEM"),
        ("db1", "disk", "WARNING"),
    ]
    assert checks[0]["acked"] is True and checks[0]["consecutive"] == 30
    assert checks[0]["fingerprint"] == "bbbbbbbbbbbb" and checks[0]["error"] is None


def test_running_daemon_with_stale_config_and_failed_reload(cli: Cli, tree: Tree) -> None:
    now = datetime.now(UTC)
    doc = daemon_doc(
        now, last_reload={"at": utc_iso(now), "ok": False, "errors": ["a.yaml:1: broken"]}
    )
    doc["config"]["stale"] = True
    tree.store.write_daemon(doc)
    with hold_pidfile(tree.state, 4321):
        out = cli("status").output
    assert out.startswith("daemon: running, pid 4321, generation 3, heartbeat")
    assert "config: CHANGED ON DISK since it was loaded" in out
    assert "config: last reload FAILED" in out and "  a.yaml:1: broken" in out


def test_empty_state_dir(bare: Tree) -> None:
    result = Cli(bare)("status")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "daemon: NOT RUNNING"
    assert sum("NOTYET" in line for line in result.output.splitlines()) == 6
    assert Cli(bare)("status", "--problems").output.splitlines()[-1] == "no problems"


def test_damaged_and_old_state(bare: Tree) -> None:
    state = bare.state
    write_raw(state / "daemon.json", "{")
    write_raw(state / "host" / "web1" / "ping" / "check.json", "[]")
    write_raw(state / "host" / "web1" / "http" / "check.json", {"version": 0, "code": "PROBLEM"})
    write_raw(state / "host" / "db1" / "disk" / "inhibit.json", "nonsense")
    result = Cli(bare)("status")
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "daemon.json: unreadable" in result.output
    lines = body(result.output)
    assert lines[0].startswith("web1  http  PROBLEM") and "version 0" in lines[0]
    assert any("web1  ping  NOTYET" in line and "unreadable" in line for line in lines)
    data = json.loads(Cli(bare)("status", "--json").output)
    assert data["daemon"]["error"]


def test_watch_and_json_do_not_mix(cli: Cli) -> None:
    result = cli("status", "--watch", "--json")
    assert result.exit_code == 2 and "--watch and --json" in result.output


def test_watch_frame_fits_the_terminal(tree: Tree) -> None:
    query = StatusQuery(App(tree.config), None, False)
    now = datetime.now(UTC)
    frame = watch_screen(query, now, (60, 8))
    lines = frame.splitlines()
    assert len(lines) <= 8 and all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("survivor viewtest:")
    assert any(
        line.startswith("checks: 6 (1 PROBLEM, 1 WARNING, 1 NOTYET, 3 OK)") for line in lines
    )
    assert lines[-1].startswith("... ") and "more" in lines[-1]
    assert any(line.startswith("web1  http  PROBLEM") for line in lines)
    full = watch_screen(query, now, None).splitlines()
    assert sum(1 for line in full if "  OK  " in line or " OK " in line) >= 3


def test_one_pair_shows_who_acknowledged_and_who_was_alerted(example_tree: Path) -> None:
    from click.testing import CliRunner

    from survivor.cli import main

    config = str(example_tree / "etc" / "survivor.yaml")
    out = CliRunner().invoke(main, ["--config", config, "status", "db1/disk"])
    assert out.exit_code == 0, out.output
    assert "acknowledged by alice" in out.output and "TICKET-4411" in out.output
    assert "2 sent" in out.output and "alice (mail)" in out.output
    inhibited = CliRunner().invoke(main, ["--config", config, "status", "web2/http", "--json"])
    import json

    [row] = json.loads(inhibited.output)["checks"]
    assert row["alerting"]["inhibit"]["user"] == "bob"
    assert row["alerting"]["ack"] is None


ESCAPES = "banner \x1b]0;pwned\x07\x1b[2J\x00 \x9b31m done"


def test_control_characters_are_shown_not_obeyed(cli: Cli) -> None:
    """A check_ssh banner or an ack comment can carry ESC, BEL, NUL or a C1 CSI: shown on a
    terminal as ^[, ^G, ^@, \\x9b, and kept raw (escaped by JSON) in --json output."""
    now = datetime.now(UTC)
    cli.tree.store.write_check("web2", "http", state(1, now=now, minutes_ago=1, comment=ESCAPES))
    cli.tree.hist.append(
        "web2", "http", "check", now, {"rc": 1, "code": "PROBLEM", "comment": ESCAPES}
    )
    for args in (("status",), ("status", "web2/http"), ("history", "web2/http")):
        out = cli(*args).output
        assert not any(c in out for c in "\x1b\x07\x00\x9b"), args
        assert "banner ^[]0;pwned^G^[[2J^@ \\x9b31m done" in out, args
    raw = json.loads(cli("status", "web2/http", "--json").output)
    assert raw["checks"][0]["comment"] == ESCAPES


def test_history_limit_takes_the_last_records_across_months(cli: Cli) -> None:
    h = cli.tree.hist
    for n, (t, fp) in enumerate(
        [("2026-10-31T23:58:00", "a"), ("2026-10-31T23:59:00", "a"), ("2026-11-01T00:01:00", "b")]
    ):
        when = datetime.fromisoformat(t).replace(tzinfo=UTC)
        h.append(
            "db1", "ping", "check", when, {"rc": 0, "code": "OK", "comment": f"n{n}", "fp": fp}
        )
    last = [
        json.loads(line)
        for line in cli("history", "db1/ping", "--limit", "2", "--json").output.splitlines()
    ]
    assert [r["comment"] for r in last] == ["n1", "n2"]
    older = cli("history", "db1/ping", "--limit", "1", "--fp", "a").output
    assert "n1" in older and "n0" not in older and "n2" not in older


def test_one_pair_shows_the_plugins_long_output(example_tree: Path) -> None:
    from click.testing import CliRunner

    from survivor.cli import main

    path = example_tree / "state" / "host" / "db1" / "disk" / "check.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "long_output": "/ 91%\n/var 40%"}))
    config = str(example_tree / "etc" / "survivor.yaml")
    out = CliRunner().invoke(main, ["--config", config, "status", "db1/disk"])
    assert out.exit_code == 0, out.output
    assert "  long output:\n    / 91%\n    /var 40%\n" in out.output
    every = CliRunner().invoke(main, ["--config", config, "status"])
    assert "/var 40%" not in every.output  # the list stays one line a pair
    as_json = CliRunner().invoke(main, ["--config", config, "status", "db1/disk", "--json"])
    [row] = json.loads(as_json.output)["checks"]
    assert row["long_output"] == "/ 91%\n/var 40%"


def test_status_filters_by_a_selection(cli: Cli) -> None:
    """Issue 22: `status` takes the same selections as the operator actions."""
    star = body(cli("status", "*/http").output)
    assert sorted(line.split()[:2] for line in star) == [["web1", "http"], ["web2", "http"]]
    several = body(cli("status", "db1", "web2/http").output)
    assert sorted(line.split()[:2] for line in several) == [
        ["db1", "disk"],
        ["db1", "ping"],
        ["web2", "http"],
    ]
    group = body(cli("status", "--group", "servers", "--problems").output)
    assert [line.split()[:2] for line in group] == [["web1", "http"], ["db1", "disk"]]
    data = json.loads(cli("status", "*/disk", "--json").output)
    assert [(c["host"], c["check"]) for c in data["checks"]] == [("db1", "disk")]
    typo = cli("status", "--group", "severs")
    assert typo.exit_code == 1 and "did you mean 'servers'?" in typo.output


# ------------------------------------------------------------------ --json, a chunk at a time

ODD_ROWS: list[Any] = [
    {"host": "web1", "check": "ping", "rc": 0, "scalar": 2.18, "ok": True, "none": None},
    {"perfdata": [{"label": "rtt", "value": 2.0, "warn": {"a": [1, [], {}]}}], "empty": []},
    {"text": 'ünïcode \x1b[31m \u2028 \\ " \n\t', "nan": float("nan"), "inf": float("inf")},
    {
        "neg": float("-inf"),
        "big": 10**30,
        "tiny": 5e-324,
        "when": datetime(2026, 12, 7, tzinfo=UTC),
    },
    {1: "int key", "tuple": (1, "x"), "code": ReturnCode.WARNING, "set": {3}},
    {},
    [],
    "a row that is a string",
    {"deep": [[[[{"x": [[]]}]]]], "float_key": {2.5: 1, None: 2, True: 3}},
    7,
]


@pytest.mark.parametrize("count", [0, 1, 3, 6, 10])
def test_json_rows_a_chunk_at_a_time_are_the_text_of_one_dump(
    count: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json` writes its rows a chunk at a time (20,000 at once took 171 MB) and
    each row by indented_json: the text must be json.dumps' of the whole, byte for byte."""
    head = {"daemon": {"pid": 7, "summary": {"lines": ["ok"], "level": "ok"}}}
    rows = (ODD_ROWS * 2)[:count]  # 10: three chunks of 3 and one row
    echo_json_rows(head, "checks", iter(rows), chunk=3)
    chunked = capsys.readouterr().out
    echo_json({**head, "checks": rows})
    assert chunked == capsys.readouterr().out
    assert (
        chunked
        == json.dumps({**head, "checks": rows}, indent=2, ensure_ascii=False, default=str) + "\n"
    )


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(value=json_like)
def test_indented_json_is_json_dumps_with_indent_2(value: Any) -> None:
    assert indented_json(value) == json.dumps(value, indent=2, ensure_ascii=False, default=str)


def test_status_json_is_the_text_of_one_dump(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole command, with chunks smaller than its six rows."""
    from survivor.cli import status_cmds

    for chunk in (2, 4):
        monkeypatch.setattr(status_cmds, "echo_json_rows", partial(echo_json_rows, chunk=chunk))
        out = cli("status", "--json").output
        assert len(json.loads(out)["checks"]) == 6
        assert out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"
