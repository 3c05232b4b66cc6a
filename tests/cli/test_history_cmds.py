"""`survivor history`: a pair's records, `history archive` and `history prune` (issue 19)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import Cli
from tests.viewstate import Tree, state


def months_back(n: int, now: datetime) -> datetime:
    """Mid-month, n months before now's month (UTC)."""
    t = now.astimezone(UTC).replace(day=15, hour=12, minute=0, second=0, microsecond=0)
    for _ in range(n):
        t = (t.replace(day=1) - timedelta(days=1)).replace(day=15)
    return t


def month(t: datetime) -> str:
    return t.strftime("%Y-%m")


def old_history(tree: Tree) -> tuple[datetime, datetime, datetime]:
    """Records in the current month, the one before and the one before that."""
    now = datetime.now(UTC)
    times = (months_back(2, now), months_back(1, now), now)
    for i, t in enumerate(times):
        tree.hist.append("db1", "disk", "check", t, {"rc": 0, "code": "OK", "comment": f"r{i}"})
    tree.hist.append("db1", "disk", "alert", times[0], {"rc": 1, "code": "PROBLEM"})
    return times


def pair_files(tree: Tree) -> list[str]:
    return sorted(p.name for p in (tree.history / "host" / "db1" / "disk").iterdir())


def events(tree: Tree) -> list[dict[str, object]]:
    return list(tree.hist.read_events())


def test_history_of_a_pair_still_works_with_options_before_the_pair(cli: Cli, tree: Tree) -> None:
    old_history(tree)
    result = cli("history", "--json", "db1/disk")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["comment"] for line in result.stdout.splitlines()] == [
        "r0",
        "r1",
        "r2",
    ]
    assert cli("history", "db1/disk").exit_code == 0
    assert cli("history", "archive").exit_code == 2  # --before is required, not a pair


def test_archive_gzips_old_months_in_place_and_history_still_reads_them(
    cli: Cli, tree: Tree
) -> None:
    t0, t1, now = old_history(tree)
    before = cli("history", "db1/disk").stdout
    result = cli("history", "archive", "--before", month(now))
    assert result.exit_code == 0, result.output
    assert f"check-{month(t0)}.jsonl" not in pair_files(tree)
    assert pair_files(tree) == sorted(
        [
            f"alert-{month(t0)}.jsonl.gz",
            f"check-{month(t0)}.jsonl.gz",
            f"check-{month(t1)}.jsonl.gz",
            f"check-{month(now)}.jsonl",
            f".check-{month(t0)}.summary.json",  # for `survivor report` (issue 22)
            f".check-{month(t1)}.summary.json",
        ]
    )
    assert f"3 files archived before {month(now)}" in result.stdout
    assert "2 months of check history summarised" in result.stdout
    assert cli("history", "db1/disk").stdout == before  # summaries are not history
    again = cli("history", "archive", "--before", month(now), "--json")
    assert json.loads(again.stdout)["summarised"] == 0  # still valid: nothing to redo


def test_the_current_month_is_never_archived(cli: Cli, tree: Tree) -> None:
    _, _, now = old_history(tree)
    future = month(now + timedelta(days=62))
    result = cli("history", "archive", "--before", future, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["before"] == month(now) and doc["requested"] == future
    assert f"current month {month(now)} is never archived" in result.stderr
    assert f"check-{month(now)}.jsonl" in pair_files(tree)


def test_prune_without_yes_lists_and_deletes_nothing(cli: Cli, tree: Tree) -> None:
    t0, _, now = old_history(tree)
    files = pair_files(tree)
    result = cli("history", "prune", "--before", month(now))
    assert result.exit_code == 1
    assert f"would delete host/db1/disk/check-{month(t0)}.jsonl" in result.stdout
    assert "--yes" in result.stderr
    assert pair_files(tree) == files
    assert not any(e["event"] == "prune" for e in events(tree))


def test_prune_with_yes_deletes_old_months_and_records_who(cli: Cli, tree: Tree) -> None:
    t0, t1, now = old_history(tree)
    cli("history", "archive", "--before", month(t1))  # archived and plain months alike
    result = cli("history", "prune", "--before", month(now), "--yes", "--json")
    assert result.exit_code == 0, result.output
    deleted = sorted(json.loads(result.stdout)["deleted"])
    assert deleted == [
        f"host/db1/disk/alert-{month(t0)}.jsonl.gz",
        f"host/db1/disk/check-{month(t0)}.jsonl.gz",
        f"host/db1/disk/check-{month(t1)}.jsonl",
    ]
    assert pair_files(tree) == [f"check-{month(now)}.jsonl"]
    [prune] = [e for e in events(tree) if e["event"] == "prune"]
    assert prune["before"] == month(now) and sorted(prune["files"]) == deleted  # type: ignore[arg-type]
    assert isinstance(prune["user"], str) and prune["user"]
    out = cli("history", "--json", "db1/disk").stdout
    assert [json.loads(line)["comment"] for line in out.splitlines()] == ["r2"]


def test_a_bad_month_is_a_usage_error_naming_it(cli: Cli) -> None:
    for args in (("archive", "--before", "2026-13"), ("prune", "--before", "26-01", "--yes")):
        result = cli("history", *args)
        assert result.exit_code == 2
        assert "is not a month (use YYYY-MM)" in result.output


def test_help_lists_both_forms(cli: Cli) -> None:
    text = cli("history", "--help").stdout
    assert "history HOST/CHECK" in text and "archive" in text and "prune" in text


def test_alert_history_text_shows_recipients_via_try_and_outcome(cli: Cli, tree: Tree) -> None:
    # issue 19: the text showed only the time and the code.
    t = datetime.now(UTC)
    alice = {"person": "alice", "address": "alice@example.org", "via": "mail", "calllist": "a"}
    carol = {"person": "carol", "address": "+15550103", "via": "page", "calllist": "b"}
    for record in (
        {"via": "mail", "ok": True, "recipients": [alice], "rc": 1, "code": "PROBLEM", "try": 1},
        {
            "via": "page",
            "ok": False,
            "recipients": [carol],
            "rc": 1,
            "code": "PROBLEM",
            "try": 2,
            "escalated": True,
            "error": "transmit exit 1",
            "fix": {"rc": 0, "code": "OK", "comment": "restarted"},
        },
        {"via": "mail", "ok": True, "recipients": [alice], "rc": 0, "code": "OK", "clear": True},
    ):
        tree.hist.append("db1", "disk", "alert", t, record)
    lines = cli("history", "--kind", "alert", "db1/disk").stdout.splitlines()
    assert lines[0].endswith("PROBLEM   try 1 via mail to alice <alice@example.org>: ok")
    assert lines[1].endswith(
        "PROBLEM   try 2 escalated via page to carol <+15550103>: FAILED (transmit exit 1)"
        " [fix OK: restarted]"
    )
    assert lines[2].endswith("OK        clear notice via mail to alice <alice@example.org>: ok")


def test_big_scalars_print_whole_in_history_and_status(cli: Cli, tree: Tree) -> None:
    t = datetime.now(UTC)
    tree.hist.append("db1", "disk", "check", t, {"rc": 0, "code": "OK", "scalar": 25330500000.0})
    assert "[25330500000]" in cli("history", "db1/disk").stdout
    tree.store.write_check("db1", "disk", state(0, now=t, minutes_ago=1, scalar=25330500000.0))
    out = cli("status", "db1/disk").stdout
    assert "[25330500000]" in out and "e+10" not in out
