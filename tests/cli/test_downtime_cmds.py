"""`survivor downtime add|list|remove` and the DOWNTIME flag of `status`, on a scratch tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survivor.actions import operator
from tests.cli.test_ops_cmds import Sc
from tests.test_downtime import WINDOWS


@pytest.fixture
def sc(tmp_path: Path, scratch: Path) -> Sc:
    return Sc(tmp_path, scratch)


def listed(sc: Sc, *args: str) -> dict[str, object]:
    result = sc("downtime", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_add_list_remove_with_a_command_record_per_pair(sc: Sc) -> None:
    result = sc("downtime", "add", "web2", "--start", "now", "--end", "+2h", "-m", "disk swap")
    assert result.exit_code == 0, result.output
    assert "2 pair(s) of web2 from " in result.stdout
    [dt] = listed(sc)["downtimes"]  # type: ignore[misc]
    assert dt["selection"] == "web2" and dt["pairs"] == ["web2/http", "web2/ping"]
    assert (dt["comment"], dt["user"], dt["active"]) == ("disk swap", operator.current_user(), True)
    assert {"id", "start", "end"} <= set(dt)
    assert (sc.state / "downtime" / f"{dt['id']}.json").exists()
    added = [*sc.commands("web2", "http"), *sc.commands("web2", "ping")]
    assert [r["command"] for r in added] == ["downtime", "downtime"]
    assert {r["downtime"] for r in added} == {dt["id"]}
    assert len({r["op_id"] for r in added}) == 1
    assert sc.commands("web1", "http") == []

    status = sc("status", "web2/http")
    assert "DOWNTIME" in status.stdout.split()
    assert f"  in downtime {dt['id']} by " in status.stdout
    assert ": disk swap: alerts held" in status.stdout
    one = json.loads(sc("status", "web2/http", "--json").stdout)["checks"][0]
    assert one["alerting"]["downtime"].startswith(f"downtime {dt['id']} by ")
    flagged = json.loads(sc("status", "--json").stdout)["checks"]
    assert {(c["host"], c["check"]) for c in flagged if c["downtime"]} == {
        ("web2", "http"),
        ("web2", "ping"),
    }

    removed = sc("downtime", "remove", str(dt["id"]), "-m", "done early")
    assert removed.exit_code == 0, removed.output
    assert listed(sc, "--all")["downtimes"] == []
    last = sc.commands("web2", "http")[-1]
    assert (last["command"], last["comment"], last["downtime"]) == (
        "downtime-remove",
        "done early",
        dt["id"],
    )
    assert "DOWNTIME" not in sc("status", "web2/http").stdout.split()


def test_a_future_downtime_is_planned_and_an_ended_one_hidden_unless_all(sc: Sc) -> None:
    ahead = sc("downtime", "add", "*/http", "--start", "+1d", "--end", "+1d2h")
    assert ahead.exit_code == 0, ahead.output
    past = sc("downtime", "add", "db1", "--start", "2020-01-01T00:00Z", "--end", "+1m")
    assert past.exit_code == 0, past.output
    text = sc("downtime", "list").stdout
    assert "planned  */http (2 pairs)" in text and "ACTIVE  db1 (1 pairs)" in text
    assert "DOWNTIME" not in sc("status", "web1/http").stdout.split()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["web2", "--end", "+1h", "--start", "+2h"], 1, "is not after the start"),
        (["web2", "--end", "2020-01-01T00:00Z"], 2, "is not in the future"),
        (["web2", "--end", "tomorrow"], 2, "'tomorrow' is not a time"),
        (["web2"], 2, "Missing option '--end'"),
        (["wbe2", "--end", "+1h"], 1, "did you mean 'web2'?"),
        (["--end", "+1h"], 2, "give a SELECTION"),
    ],
)
def test_bad_downtimes_are_refused_and_nothing_is_written(
    sc: Sc, args: list[str], code: int, message: str
) -> None:
    result = sc("downtime", "add", *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (sc.state / "downtime").exists() or not list((sc.state / "downtime").glob("*.json"))
    assert sc.commands("web2", "http") == []


def test_removing_an_unknown_or_unsafe_id_is_refused(sc: Sc) -> None:
    unknown = sc("downtime", "remove", "20261207T000000-abcdef")
    assert unknown.exit_code == 1 and "no downtime with id" in unknown.stderr
    unsafe = sc("downtime", "remove", "../daemon")
    assert unsafe.exit_code == 1 and "is not a downtime id" in unsafe.stderr


def test_config_windows_are_listed(sc: Sc) -> None:
    sc.config_path.write_text(sc.config_path.read_text() + WINDOWS)
    data = listed(sc)
    windows = {w["name"]: w for w in data["windows"]}  # type: ignore[union-attr, index]
    assert windows["patching"]["windows"] == ["sun 02:00-03:59"]
    assert sorted(windows["patching"]["pairs"]) == [
        "web1/http",
        "web1/ping",
        "web1/smtp",
        "web2/http",
    ]
    assert windows["db-night"]["selection"] == "--group db"
    assert "patching  " in sc("downtime", "list").stdout
