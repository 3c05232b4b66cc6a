"""The availability report on the web page (issue 22 part 4): the numbers `survivor report`
prints, for a pair and for a host, over a period chosen in the page's form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.webkit import ActingSite, acting_site

PERIOD = "since=2026-11-24T09:00:00Z&until=2026-11-24T10:00:00Z"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ActingSite]:
    with acting_site(tmp_path / "tree") as s:
        yield s


def cli_report(site: ActingSite, *selection: str) -> list[dict[str, object]]:
    result = Cli(site.tree)(
        "report",
        *selection,
        "--since",
        "2026-11-24T09:00:00Z",
        "--until",
        "2026-11-24T10:00:00Z",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.output)
    return rows


def test_the_pair_report_is_the_cli_report(site: ActingSite) -> None:
    b = site.browser()
    api = b.get(f"/api/report/web1/http?{PERIOD}")
    assert api.status == 200
    assert json.loads(api.body)["rows"] == cli_report(site, "web1/http")
    page = b.get(f"/report/web1/http?{PERIOD}")
    assert page.status == 200
    # 30 minutes OK then 30 minutes PROBLEM, one outage still open
    assert "<td>http@web1</td><td>50.00%</td><td>0.00%</td><td>50.00%</td>" in page.text
    assert "<td>2026-11-24T09:30:00.000Z</td><td>still failing</td><td>30m</td>" in page.text
    assert 'name="since" value="2026-11-24T09:00:00.000Z"' in page.text


def test_the_host_report_has_every_check_of_the_host(site: ActingSite) -> None:
    b = site.browser()
    api = json.loads(b.get(f"/api/report/web1?{PERIOD}").body)
    assert [(r["host"], r["check"]) for r in api["rows"]] == [("web1", "ping"), ("web1", "http")]
    assert api["rows"] == cli_report(site, "web1")
    page = b.get("/report/web1?days=7").text
    assert "<td>ping@web1</td>" in page and "<td>http@web1</td>" in page
    assert "from 2026-11-17T10:00:05.000Z until 2026-11-24T10:00:05.000Z" in page
    assert 'href="/report/web1"' in b.get("/host/web1").text  # linked from the host page
    assert 'href="/report/web1/http"' in b.get("/check/web1/http").text


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/report/web9", 404, "no configured host"),
        ("/report/web1/nope", 404, "no configured check"),
        ("/report/web1?since=yesterday", 400, "since=&#x27;yesterday&#x27; is not a time"),
        ("/report/web1?days=0", 400, "not a number of days"),
        (
            "/report/web1?since=2026-11-24T10:00:00Z&until=2026-11-24T09:00:00Z",
            400,
            "is not before until",
        ),
        ("/report/..%2Fetc", 400, "not allowed"),
    ],
)
def test_bad_periods_and_names(site: ActingSite, path: str, status: int, message: str) -> None:
    answer = site.browser().get(path)
    assert answer.status == status and message in answer.text, answer.text[-500:]


def test_downtime_in_the_command_history_is_counted_apart_on_the_page_too(
    site: ActingSite,
) -> None:
    """The page reads the same command records as `survivor report`: both agree."""
    site.tree.hist.append(
        "web1",
        "http",
        "command",
        datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        {
            "user": "bob",
            "command": "downtime",
            "comment": "swap",
            "downtime": "d1",
            "selection": "web1",
            "start": "2026-11-24T09:20:00.000Z",
            "end": "2026-11-24T09:40:00.000Z",
        },
    )
    b = site.browser()
    [row] = json.loads(b.get(f"/api/report/web1/http?{PERIOD}").body)["rows"]
    assert row == cli_report(site, "web1/http")[0]
    assert row["downtime_seconds"] == 20 * 60
    assert row["seconds"]["OK"] == row["seconds"]["PROBLEM"] == 20 * 60
    page = b.get(f"/report/web1/http?{PERIOD}").text
    assert "<td>http@web1</td><td>50.00%</td><td>0.00%</td><td>50.00%</td>" in page
    assert "<td>2026-11-24T09:20:00.000Z</td><td>2026-11-24T09:40:00.000Z</td><td>20m</td>" in page
