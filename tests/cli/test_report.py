"""`survivor report`: availability of configured pairs from their history, as text, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.cli.conftest import Cli

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def fill(cli: Cli) -> None:
    """db1/disk: 30 min OK, 10 min PROBLEM, 20 min OK (a one-minute check)."""
    for k in range(60):
        rc = 1 if 30 <= k < 40 else 0
        cli.tree.hist.append("db1", "disk", "check", T0 + k * MIN, {"rc": rc, "fp": "f"})


def test_report_as_json_counts_shares_and_outages(cli: Cli) -> None:
    fill(cli)
    result = cli(
        "report",
        "db1/disk",
        "--since",
        "2026-11-20T10:00:00Z",
        "--until",
        "2026-11-20T11:00:00Z",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["host"], row["check"]) == ("db1", "disk")
    assert row["seconds"]["OK"] == 50 * 60 and row["seconds"]["PROBLEM"] == 10 * 60
    assert row["outages"] == 1 and row["mean_time_to_recover_seconds"] == 600


def test_report_selects_hosts_and_checks_and_writes_csv(cli: Cli) -> None:
    fill(cli)
    out = cli(
        "report",
        "db1",
        "*/http",
        "--since",
        "2026-11-20T10:00:00Z",
        "--until",
        "2026-11-20T11:00:00Z",
        "--csv",
    ).output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted((r["host"], r["check"]) for r in rows) == [
        ("db1", "disk"),
        ("db1", "ping"),
        ("web1", "http"),
        ("web2", "http"),
    ]
    disk = next(r for r in rows if r["check"] == "disk")
    assert float(disk["problem_share"]) == pytest.approx(10 / 60, abs=1e-6)
    never = next(r for r in rows if r["check"] == "http")
    assert float(never["unknown_share"]) == 1.0  # no history: unknown, never OK


def test_report_text_and_errors(cli: Cli) -> None:
    fill(cli)
    text = cli(
        "report", "db1/disk", "--since", "2026-11-20T10:00:00Z", "--until", "2026-11-20T11:00Z"
    )
    assert text.exit_code == 0 and "db1/disk" in text.output and "16.67%" in text.output
    assert cli("report", "nohost/disk").exit_code == 1
    bad = cli("report", "db1/disk", "--since", "yesterday")
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_report_takes_a_group(cli: Cli) -> None:
    fill(cli)
    out = cli(
        "report",
        "--group",
        "servers",
        "--since",
        "2026-11-20T10:00:00Z",
        "--until",
        "2026-11-20T11:00:00Z",
        "--json",
    ).output
    assert {(r["host"], r["check"]) for r in json.loads(out)} >= {("db1", "disk"), ("web1", "http")}


def downtime_record(cli: Cli, command: str, at: datetime, did: str, start: int, end: int) -> None:
    """A command record as `survivor downtime add|remove` writes it (minutes after T0)."""
    iso = {
        k: (T0 + m * MIN).isoformat().replace("+00:00", "Z") for k, m in (("s", start), ("e", end))
    }
    cli.tree.hist.append(
        "db1",
        "disk",
        "command",
        at,
        {
            "user": "bob",
            "command": command,
            "comment": "disk swap",
            "downtime": did,
            "selection": "db1",
            "start": iso["s"],
            "end": iso["e"],
        },
    )


def test_report_counts_downtime_from_the_command_history_apart(cli: Cli) -> None:
    fill(cli)  # the PROBLEM is 10:30-10:40
    downtime_record(cli, "downtime", T0 + 20 * MIN, "d1", 25, 35)  # 10:25-10:35
    downtime_record(cli, "downtime", T0 + 45 * MIN, "d2", 45, 90)  # 10:45-11:30 ...
    downtime_record(cli, "downtime-remove", T0 + 50 * MIN, "d2", 45, 90)  # ... removed 10:50
    result = cli(
        "report",
        "db1/disk",
        "--since",
        "2026-11-20T10:00:00Z",
        "--until",
        "2026-11-20T11:00:00Z",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["downtime_seconds"] == 15 * 60
    assert row["downtime_windows"] == [
        {"start": "2026-11-20T10:25:00.000Z", "end": "2026-11-20T10:35:00.000Z"},
        {"start": "2026-11-20T10:45:00.000Z", "end": "2026-11-20T10:50:00.000Z"},
    ]
    assert row["seconds"]["OK"] == 40 * 60 and row["seconds"]["PROBLEM"] == 5 * 60
    assert row["share"]["OK"] == pytest.approx(40 / 45, abs=1e-6)  # of the 45 minutes outside
    assert row["share"]["PROBLEM"] == pytest.approx(5 / 45, abs=1e-6)
    assert row["outages"] == 1  # the outage itself is still listed
