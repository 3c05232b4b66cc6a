"""Scheduled downtime: the held alert decision (fake clock), which pairs are held and why,
the recurring windows of `downtimes:` (loader and schedule math), and the stored document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from survivor import downtime
from survivor.alertplan import AlertAction
from survivor.config import load_config
from survivor.errors import ConfigError
from survivor.model.config import Config, FsyncPolicy, ScheduleLine, WeekTime
from survivor.model.documents import Downtime
from survivor.schedule import window_active, window_end
from survivor.store.fsio import FileWriter
from survivor.store.state import StateStore
from tests.fakes import FakeClock
from tests.test_alertplan import ALICE, MON, make_plan, run, sent, view
from tests.test_ops import CONFIG

MIN = timedelta(minutes=1)
BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY_0200 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)  # 02:00 in Berlin, a Sunday

WINDOWS = """\
downtimes:
  patching:
    select: [web1, "*/http"]
    window: {days: sun, from: "02:00", until: "03:59"}
    comment: weekly patching
  db-night:
    groups: [db]
    window:
      - {from: "23:00", until: "00:59"}
"""


# --------------------------------------------------------------------------- the decision


def test_a_downtime_holds_alerts_and_the_problem_is_alerted_as_new_after_it() -> None:
    """Walk minutes with a fake clock: alerted, downtime, held, downtime over, alerted anew."""
    plan = make_plan()
    clock = FakeClock(MON)
    first = run(plan, view(1, 2), None, clock.now())
    assert first.action is AlertAction.ALERT and first.attempt == 1
    state = sent(first, ALICE)

    clock.advance(10 * MIN)  # a downtime begins; the problem goes on
    held = run(plan, view(1, 12), state, clock.now(), downtime="downtime X by bob")
    assert held.action is AlertAction.RESET and held.state is None
    assert "in downtime X by bob: alerts held" in held.reason
    assert "alerted as new" in held.reason
    state_after = None  # the scheduler stored the RESET: alert.json is gone

    for _ in range(30):  # still in downtime: nothing, whatever the pacing says
        clock.advance(MIN)
        d = run(plan, view(1, 20), state_after, clock.now(), downtime="downtime X by bob")
        assert d.action is AlertAction.NONE and d.idle_state is None

    clock.advance(MIN)  # the downtime is over and the problem is still there
    again = run(plan, view(1, 42), state_after, clock.now())
    assert again.action is AlertAction.ALERT
    assert (again.attempt, again.try_index) == (1, 0)  # the first rung again, as a new problem


def test_without_the_downtime_the_same_walk_does_not_start_over() -> None:
    """The control for the test above: no downtime, and the ladder goes on (no fix: rung 3)."""
    plan = make_plan()
    first = run(plan, view(1, 2), None, MON)
    state = sent(first, ALICE)
    later = run(plan, view(1, 42), state, MON + 41 * MIN)
    assert later.action is AlertAction.ALERT
    assert (later.attempt, later.try_index, later.escalated) == (2, 2, True)


def test_a_recovery_during_a_downtime_sends_no_clear_notice() -> None:
    plan = make_plan(notify_on_clear=True)
    state = sent(run(plan, view(1, 2), None, MON), ALICE)
    d = run(plan, view(0, 1), state, MON + 5 * MIN, downtime="downtime window patching")
    assert d.action is AlertAction.RESET and d.clear_recipients == ()
    after = run(plan, view(0, 2), None, MON + 60 * MIN)
    assert after.action is AlertAction.NONE


# --------------------------------------------------------------------------- which pairs


@pytest.fixture
def config(tmp_path: Path, scratch: Path) -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(CONFIG.format(mod=scratch / "mod") + WINDOWS)
    return load_config(path)


def stored(
    pairs: tuple[tuple[str, str], ...], start: datetime, end: datetime, did: str = "d1"
) -> Downtime:
    return Downtime(did, "bob", "disk swap", start, "web2", pairs, start, end)


def test_an_operator_downtime_holds_its_pairs_from_start_to_end(config: Config) -> None:
    dt = stored((("web2", "http"), ("web2", "ping")), MON, MON + 60 * MIN)
    assert downtime.holds(config, [dt], MON - MIN, BERLIN) == {}
    held = downtime.holds(config, [dt], MON, BERLIN)
    assert set(held) == {("web2", "http"), ("web2", "ping")}
    assert held[("web2", "http")].describe() == (
        "downtime d1 by bob until 2026-03-02T11:00:00.000Z: disk swap"
    )
    assert downtime.holds(config, [dt], MON + 60 * MIN, BERLIN) == {}  # the end is exclusive


def test_pairs_no_longer_configured_are_not_held(config: Config) -> None:
    dt = stored((("gone", "http"),), MON, MON + 60 * MIN)
    assert downtime.holds(config, [dt], MON, BERLIN) == {}


def test_a_config_window_holds_its_selection_in_local_time(config: Config) -> None:
    held = downtime.holds(config, [], SUNDAY_0200, BERLIN)
    assert set(held) == {("web1", "http"), ("web1", "smtp"), ("web1", "ping"), ("web2", "http")}
    hold = held[("web2", "http")]
    assert hold.source == "downtime window patching"
    assert hold.until == datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # 04:00 Berlin
    assert downtime.holds(config, [], SUNDAY_0200 - MIN, BERLIN) == {}
    assert downtime.holds(config, [], SUNDAY_0200 + 120 * MIN, BERLIN) == {}
    night = downtime.holds(config, [], datetime(2026, 12, 8, 23, 30, tzinfo=UTC), BERLIN)
    assert set(night) == {("db1", "ping")}  # 00:30 Berlin: the overnight part of db-night


def test_of_two_downtimes_the_one_ending_last_is_named(config: Config) -> None:
    short = stored((("web2", "http"),), MON, MON + 10 * MIN, "short")
    long = stored((("web2", "http"),), MON, MON + 90 * MIN, "long")
    held = downtime.holds(config, [short, long], MON, BERLIN)
    assert held[("web2", "http")].source.startswith("downtime long ")


# --------------------------------------------------------------------------- windows


def test_window_active_and_end_follow_the_schedule_rules() -> None:
    line = ScheduleLine(days=frozenset({6}), start=WeekTime(120), end=WeekTime(239))
    assert window_active([line], SUNDAY_0200, BERLIN)
    assert not window_active([line], SUNDAY_0200 - MIN, BERLIN)
    assert window_end([line], SUNDAY_0200 + 30 * MIN, BERLIN) == SUNDAY_0200 + 120 * MIN
    assert window_end([ScheduleLine()], SUNDAY_0200, BERLIN) is None  # always in effect


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "downtimes:\n  x:\n    select: web9\n    window: {from: '02:00', until: '03:00'}\n",
            "downtime 'x': nothing configured matches 'web9': no host named 'web9'",
        ),
        ("downtimes:\n  x:\n    select: web1\n", "downtime 'x': window: is required"),
        (
            "downtimes:\n  x:\n    window: {from: '02:00', until: '03:00'}\n",
            "downtime 'x': select: is required (or groups:)",
        ),
        (
            "downtimes:\n  x:\n    select: web1\n    window: {days: sun}\n",
            "downtime 'x' window 1: from: and until: are required",
        ),
        (
            "downtimes:\n  x:\n    select: web1\n"
            "    window: {from: '02:00', until: '03:00', every: 5m}\n",
            "unknown key 'every' in downtime 'x' window 1",
        ),
        (
            "downtimes:\n  x:\n    select: '../x'\n    window: {from: '02:00', until: '03:00'}\n",
            "downtime 'x': select: '../x': '..' is not a valid host name",
        ),
        (
            "downtimes:\n  x:\n    groups: [dbb]\n    window: {from: '02:00', until: '03:00'}\n",
            "no group or class named 'dbb'",
        ),
    ],
)
def test_bad_downtimes_are_config_errors_with_file_and_line(
    tmp_path: Path, scratch: Path, section: str, message: str
) -> None:
    path = tmp_path / "survivor.yaml"
    text = CONFIG.format(mod=scratch / "mod")
    path.write_text(text + section)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    shown = [str(p) for p in err.value.problems]
    assert any(message in p for p in shown), shown
    first_line = len(text.splitlines()) + 1
    assert all(p.startswith(f"{path}:") for p in shown)
    assert any(int(p.split(":")[1]) > first_line for p in shown), shown


def test_downtimes_change_the_config_fingerprint_only_when_present(
    tmp_path: Path, scratch: Path, config: Config
) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(CONFIG.format(mod=scratch / "mod"))
    plain = load_config(path)
    assert plain.downtimes == {} and config.fingerprint != plain.fingerprint


# --------------------------------------------------------------------------- the document


def test_a_downtime_round_trips_through_its_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", FileWriter(FsyncPolicy.NEVER))
    dt = stored((("web2", "http"),), MON, MON + 60 * MIN)
    store.write_downtime(dt)
    (store.layout.downtimes / "broken.json").write_text("{")
    found, problems = store.read_downtimes()
    assert found == [dt]
    assert len(problems) == 1 and "broken.json" in problems[0]
    store.remove_downtime("d1")
    assert store.read_downtimes()[0] == []


# --------------------------------------------------------------------------- past periods

from survivor.schedule import window_spans  # noqa: E402

REPORT_START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday
REPORT_END = REPORT_START + 4 * 60 * MIN


def z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def added(did: str, at: datetime, start: datetime, end: datetime) -> dict[str, object]:
    """A `downtime add` command record as actions/downtimes writes it."""
    return {
        "v": 1,
        "t": z(at),
        "user": "bob",
        "command": "downtime",
        "comment": "disk swap",
        "downtime": did,
        "selection": "web2",
        "start": z(start),
        "end": z(end),
    }


def removed(did: str, at: datetime, start: datetime, end: datetime) -> dict[str, object]:
    return {**added(did, at, start, end), "command": "downtime-remove"}


def test_a_downtime_crossing_the_period_edges_counts_only_inside_it(config: Config) -> None:
    before, after = REPORT_START - 30 * MIN, REPORT_END + 60 * MIN
    commands = [
        {"v": 1, "t": z(REPORT_START - 2 * 60 * MIN), "command": "ack", "comment": "x"},
        added("d1", REPORT_START - 60 * MIN, before, after),
    ]
    windows = downtime.report_windows(
        config, ("web2", "ping"), commands, REPORT_START, REPORT_END, BERLIN
    )
    assert windows == [(REPORT_START, REPORT_END)]
    ends_inside = [added("d2", before, before, REPORT_START + 10 * MIN)]
    assert downtime.report_windows(
        config, ("web2", "ping"), ends_inside, REPORT_START, REPORT_END, BERLIN
    ) == [(REPORT_START, REPORT_START + 10 * MIN)]


def test_a_downtime_removed_early_ends_at_its_removal() -> None:
    s, e = REPORT_START + 60 * MIN, REPORT_START + 180 * MIN
    assert downtime.operator_spans(
        [added("d1", REPORT_START, s, e), removed("d1", s + 20 * MIN, s, e)]
    ) == [(s, s + 20 * MIN)]
    # removed before it began: no downtime at all
    assert (
        downtime.operator_spans([added("d1", REPORT_START, s, e), removed("d1", s - MIN, s, e)])
        == []
    )
    # removed after its end: the end stands
    assert downtime.operator_spans(
        [added("d1", REPORT_START, s, e), removed("d1", e + MIN, s, e)]
    ) == [(s, e)]
    # the adding record is gone (pruned history): the removal's start and end still tell
    assert downtime.operator_spans([removed("d1", s + 5 * MIN, s, e)]) == [(s, s + 5 * MIN)]
    # added with a start in the past: it counts from when it was added
    assert downtime.operator_spans([added("d1", s + 30 * MIN, s, e)]) == [(s + 30 * MIN, e)]


def test_overlapping_operator_and_config_windows_are_merged(config: Config) -> None:
    # patching holds web1/http on Sundays 02:00-03:59 Berlin: 01:00-03:00 UTC in winter
    day = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    commands = [
        added("d1", day, day + 150 * MIN, day + 300 * MIN),  # 02:30-05:00 UTC
        added("d2", day, day + 280 * MIN, day + 320 * MIN),  # 04:40-05:20 UTC
        added("d3", day, day + 330 * MIN, day + 340 * MIN),  # 05:30-05:40 UTC
    ]
    windows = downtime.report_windows(
        config, ("web1", "http"), commands, day, day + 6 * 60 * MIN, BERLIN
    )
    assert windows == [(day + 60 * MIN, day + 320 * MIN), (day + 330 * MIN, day + 340 * MIN)]
    # a pair the window does not select has only its own records
    assert downtime.report_windows(
        config, ("db1", "ping"), commands[2:], day, day + 6 * 60 * MIN, BERLIN
    ) == [(day + 330 * MIN, day + 340 * MIN)]


def test_recurring_windows_over_a_month_boundary(config: Config) -> None:
    since = datetime(2026, 11, 25, tzinfo=UTC)
    until = datetime(2026, 12, 10, tzinfo=UTC)
    sundays = downtime.report_windows(config, ("web1", "ping"), [], since, until, BERLIN)
    assert sundays == [
        (datetime(2026, 11, 29, 1, 0, tzinfo=UTC), datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),
        (datetime(2026, 12, 6, 1, 0, tzinfo=UTC), datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
    ]
    # db-night, 23:00-00:59 Berlin every night: the night of Nov 30 runs into December
    nights = downtime.report_windows(
        config,
        ("db1", "ping"),
        [],
        datetime(2026, 11, 30, 20, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        BERLIN,
    )
    assert nights == [
        (datetime(2026, 11, 30, 22, 0, tzinfo=UTC), datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    ]
    # a weekly window, Monday 22:00 to Tuesday 00:59 Berlin, from November into December
    weekly = ScheduleLine(start=WeekTime(22 * 60, day=0), end=WeekTime(59, day=1))
    assert window_spans([weekly], since, until, BERLIN) == [
        (datetime(2026, 11, 30, 21, 0, tzinfo=UTC), datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        (datetime(2026, 12, 7, 21, 0, tzinfo=UTC), datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    "day",
    [datetime(2026, 3, 27, 12, 0, tzinfo=UTC), datetime(2026, 10, 23, 12, 0, tzinfo=UTC)],
    ids=["spring-forward", "fall-back"],
)
def test_window_spans_agree_with_window_active_minute_by_minute(day: datetime) -> None:
    """Across a change of offset, the jumping walk finds what asking every minute finds."""
    lines = [
        ScheduleLine(start=WeekTime(150), end=WeekTime(169)),  # 02:30-02:49, in the gap
        ScheduleLine(days=frozenset({6}), start=WeekTime(23 * 60), end=WeekTime(119)),
        ScheduleLine(start=WeekTime(5 * 60, day=5), end=WeekTime(7 * 60 + 29, day=5)),
        ScheduleLine(days=frozenset({0}), start=None, end=None),  # all of Monday
    ]
    since, until = day + 7 * MIN + timedelta(seconds=30), day + 4 * 24 * 60 * MIN
    for one in [[line] for line in lines] + [lines]:
        brute: list[tuple[datetime, datetime]] = []
        t = since.replace(second=0)
        while t < until:
            if window_active(one, t, BERLIN):
                lo = max(t, since)
                if brute and brute[-1][1] == lo:
                    brute[-1] = (brute[-1][0], t + MIN)
                else:
                    brute.append((lo, t + MIN))
            t += MIN
        if brute and brute[-1][1] > until:
            brute[-1] = (brute[-1][0], until)
        assert window_spans(one, since, until, BERLIN) == brute, one
