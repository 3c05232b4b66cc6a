"""Schedule math: lines in effect, `every`/`at`/`never`, DST, next_due against brute force."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survivor.model.config import Schedule, ScheduleLine, WeekTime
from survivor.schedule import (
    MAX_OCCURRENCES,
    at_occurrences,
    describe,
    effective_line,
    even_slots,
    is_due,
    line_in_effect,
    local_time,
    next_due,
    spread_offset,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)
WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def wt(text: str) -> WeekTime:
    """ "08:00" or "fri 18:00" as the config loader would build it."""
    day, _, hhmm = text.rpartition(" ")
    hours, minutes = hhmm.split(":")
    return WeekTime(int(hours) * 60 + int(minutes), DAY_NAMES.index(day) if day else None)


def line(
    *,
    every: timedelta | None = None,
    at: tuple[str, ...] = (),
    never: bool = False,
    days: frozenset[int] | None = None,
    window: tuple[str, str] | None = None,
) -> ScheduleLine:
    start, end = (None, None) if window is None else (wt(window[0]), wt(window[1]))
    return ScheduleLine(
        every=every,
        at=tuple(wt(a) for a in at),
        never=never,
        days=days,
        start=start,
        end=end,
    )


def sched(*lines: ScheduleLine) -> Schedule:
    return Schedule("test", lines)


def local(
    tz: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    """A wall-clock time in `tz`, returned as UTC like the daemon's clock gives it."""
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).astimezone(UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def run_every_tick(
    schedule: Schedule,
    start: datetime,
    minutes: int,
    tz: tzinfo,
    last: datetime | None = None,
    second: int = 0,
) -> list[datetime]:
    """Tick once a minute (at `second` past, varying) and run whenever due: the run times."""
    runs = []
    for i in range(minutes):
        tick = start + i * MINUTE + timedelta(seconds=(second + 37 * i) % 60)
        if is_due(schedule, last, tick, tz):
            runs.append(tick.replace(second=0, microsecond=0))
            last = tick
    return runs


BUSINESS = sched(
    line(days=WEEKDAYS, window=("08:00", "17:59"), every=timedelta(minutes=5)),
    line(window=("fri 18:00", "mon 07:59"), never=True),
    line(every=timedelta(minutes=15)),
)


# --------------------------------------------------------------------------- in effect


def test_business_hours_pick_the_line_by_day_and_time() -> None:
    work, weekend, other = BUSINESS.lines
    assert effective_line(BUSINESS, utc(2025, 3, 3, 10, 0), UTC) is work  # Monday
    assert effective_line(BUSINESS, utc(2025, 3, 4, 7, 0), UTC) is other  # Tuesday early
    assert effective_line(BUSINESS, utc(2025, 3, 4, 18, 0), UTC) is other  # Tuesday evening
    assert effective_line(BUSINESS, utc(2025, 3, 3, 7, 59), UTC) is weekend  # Monday before 8
    assert effective_line(BUSINESS, utc(2025, 3, 8, 12, 0), UTC) is weekend  # Saturday
    assert effective_line(BUSINESS, utc(2025, 3, 7, 17, 59, 59), UTC) is work  # Friday
    assert effective_line(BUSINESS, utc(2025, 3, 7, 18, 0), UTC) is weekend


def test_business_hours_pace_by_the_line_in_effect() -> None:
    monday = utc(2025, 3, 3, 10, 0)
    assert is_due(BUSINESS, monday - timedelta(minutes=5), monday, UTC)
    assert not is_due(BUSINESS, monday - timedelta(minutes=4), monday, UTC)
    tuesday_night = utc(2025, 3, 4, 20, 0)
    assert not is_due(BUSINESS, tuesday_night - timedelta(minutes=14), tuesday_night, UTC)
    assert is_due(BUSINESS, tuesday_night - timedelta(minutes=15), tuesday_night, UTC)
    assert not is_due(BUSINESS, None, utc(2025, 3, 8, 12, 0), UTC)  # never, even if never ran


def test_until_is_inclusive_through_second_59() -> None:
    day = line(window=("08:00", "17:59"), every=MINUTE)
    assert line_in_effect(day, utc(2025, 3, 3, 17, 59, 59, 999999), UTC)
    assert not line_in_effect(day, utc(2025, 3, 3, 18, 0, 0), UTC)
    assert not line_in_effect(day, utc(2025, 3, 3, 7, 59, 59), UTC)
    assert line_in_effect(day, utc(2025, 3, 3, 8, 0, 0), UTC)


def test_daily_window_wraps_overnight() -> None:
    night = line(window=("22:00", "07:59"), every=MINUTE)
    assert line_in_effect(night, utc(2025, 3, 3, 23, 30), UTC)
    assert line_in_effect(night, utc(2025, 3, 4, 3, 0), UTC)
    assert line_in_effect(night, utc(2025, 3, 4, 7, 59, 59), UTC)
    assert not line_in_effect(night, utc(2025, 3, 4, 8, 0), UTC)
    assert not line_in_effect(night, utc(2025, 3, 4, 21, 59), UTC)


def test_weekly_window_wraps_over_the_weekend() -> None:
    weekend = line(window=("fri 18:00", "mon 07:59"), never=True)
    assert not line_in_effect(weekend, utc(2025, 3, 7, 17, 59), UTC)  # Friday
    assert line_in_effect(weekend, utc(2025, 3, 7, 18, 0), UTC)
    assert line_in_effect(weekend, utc(2025, 3, 8, 12, 0), UTC)  # Saturday
    assert line_in_effect(weekend, utc(2025, 3, 9, 23, 59), UTC)  # Sunday
    assert line_in_effect(weekend, utc(2025, 3, 10, 7, 59, 59), UTC)  # Monday
    assert not line_in_effect(weekend, utc(2025, 3, 10, 8, 0), UTC)
    assert not line_in_effect(weekend, utc(2025, 3, 12, 12, 0), UTC)  # Wednesday


def test_overnight_window_with_days_belongs_to_the_day_it_started() -> None:
    nights = line(days=WEEKDAYS, window=("22:00", "06:00"), every=MINUTE)
    assert line_in_effect(nights, utc(2025, 3, 7, 23, 0), UTC)  # Friday night
    assert line_in_effect(nights, utc(2025, 3, 8, 3, 0), UTC)  # Saturday morning: Friday's
    assert line_in_effect(nights, utc(2025, 3, 8, 6, 0, 59), UTC)
    assert not line_in_effect(nights, utc(2025, 3, 8, 6, 1), UTC)
    assert not line_in_effect(nights, utc(2025, 3, 8, 23, 0), UTC)  # Saturday night
    assert not line_in_effect(nights, utc(2025, 3, 10, 3, 0), UTC)  # Monday morning: Sunday's
    assert line_in_effect(nights, utc(2025, 3, 11, 3, 0), UTC)  # Tuesday morning: Monday's


def test_days_without_a_window_cover_whole_days() -> None:
    weekend = line(days=WEEKEND, every=MINUTE)
    assert line_in_effect(weekend, utc(2025, 3, 8, 0, 0), UTC)
    assert line_in_effect(weekend, utc(2025, 3, 9, 23, 59, 59), UTC)
    assert not line_in_effect(weekend, utc(2025, 3, 10, 0, 0), UTC)


def test_half_open_windows_are_read_leniently() -> None:
    from_eight = ScheduleLine(every=MINUTE, start=wt("08:00"))
    assert line_in_effect(from_eight, utc(2025, 3, 3, 23, 59), UTC)
    assert not line_in_effect(from_eight, utc(2025, 3, 3, 7, 59), UTC)
    until_six = ScheduleLine(every=MINUTE, end=wt("17:59"))
    assert line_in_effect(until_six, utc(2025, 3, 3, 0, 0), UTC)
    assert not line_in_effect(until_six, utc(2025, 3, 3, 18, 0), UTC)
    from_friday = ScheduleLine(every=MINUTE, start=wt("fri 18:00"))
    assert line_in_effect(from_friday, utc(2025, 3, 9, 23, 59), UTC)  # to the end of the week
    assert not line_in_effect(from_friday, utc(2025, 3, 10, 0, 0), UTC)
    mixed = ScheduleLine(every=MINUTE, start=wt("fri 18:00"), end=wt("07:59"))
    assert line_in_effect(mixed, utc(2025, 3, 8, 7, 0), UTC)  # the Saturday morning after
    assert not line_in_effect(mixed, utc(2025, 3, 8, 8, 0), UTC)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_time(datetime(2025, 3, 3, 10, 0), BERLIN)
    with pytest.raises(ValueError, match="naive"):
        is_due(BUSINESS, None, datetime(2025, 3, 3, 10, 0), BERLIN)


def test_local_time_reads_the_wall_clock() -> None:
    assert local_time(utc(2025, 7, 1, 6, 0), BERLIN).hour == 8  # CEST
    assert local_time(utc(2025, 1, 1, 6, 0), BERLIN).hour == 7  # CET


# --------------------------------------------------------------------------- lines and search


def test_first_line_in_effect_wins() -> None:
    schedule = sched(
        line(window=("08:00", "17:59"), every=timedelta(hours=1)),
        line(every=timedelta(minutes=5)),
    )
    assert not is_due(schedule, utc(2025, 3, 3, 9, 30), utc(2025, 3, 3, 10, 0), UTC)
    assert is_due(schedule, utc(2025, 3, 3, 9, 0), utc(2025, 3, 3, 10, 0), UTC)
    assert is_due(schedule, utc(2025, 3, 3, 19, 55), utc(2025, 3, 3, 20, 0), UTC)


def test_at_line_not_due_lets_the_search_go_on() -> None:
    schedule = sched(line(at=("02:30",)), line(every=timedelta(hours=1)))
    assert not is_due(schedule, utc(2025, 3, 3, 10, 0), utc(2025, 3, 3, 10, 30), UTC)
    assert is_due(schedule, utc(2025, 3, 3, 10, 0), utc(2025, 3, 3, 11, 0), UTC)
    assert is_due(schedule, utc(2025, 3, 3, 2, 0), utc(2025, 3, 3, 2, 30), UTC)  # the at time
    assert not is_due(schedule, utc(2025, 3, 3, 2, 30), utc(2025, 3, 3, 3, 0), UTC)
    # effective_line does not skip: alert pacing sees the `at` line.
    assert effective_line(schedule, utc(2025, 3, 3, 10, 30), UTC) is schedule.lines[0]


def test_never_stops_the_search() -> None:
    schedule = sched(line(days=WEEKEND, never=True), line(every=MINUTE))
    assert not is_due(schedule, None, utc(2025, 3, 8, 12, 0), UTC)
    assert is_due(schedule, None, utc(2025, 3, 10, 12, 0), UTC)


def test_no_line_in_effect_is_not_due() -> None:
    mondays = sched(line(days=frozenset({0}), every=MINUTE))
    tuesday = utc(2025, 3, 4, 12, 0)
    assert not is_due(mondays, None, tuesday, UTC)
    assert effective_line(mondays, tuesday, UTC) is None
    assert next_due(mondays, None, tuesday, UTC) == utc(2025, 3, 10, 0, 0)
    assert not is_due(sched(), None, tuesday, UTC)
    assert next_due(sched(), None, tuesday, UTC) is None


# --------------------------------------------------------------------------- every


def test_every_counts_whole_minutes() -> None:
    minutely = sched(line(every=MINUTE))
    assert is_due(minutely, utc(2025, 3, 3, 10, 0, 40), utc(2025, 3, 3, 10, 1, 5), UTC)
    assert not is_due(minutely, utc(2025, 3, 3, 10, 0, 1), utc(2025, 3, 3, 10, 0, 59), UTC)
    assert is_due(minutely, None, utc(2025, 3, 3, 10, 0, 59), UTC)


def test_hourly_does_not_drift_over_24h_of_ticks() -> None:
    hourly = sched(line(every=timedelta(hours=1)))
    runs = run_every_tick(hourly, utc(2025, 3, 3, 8, 0), 24 * 60, BERLIN, second=45)
    assert runs == [utc(2025, 3, 3, 8, 0) + timedelta(hours=h) for h in range(24)]


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        (BERLIN, utc(2025, 3, 29, 20, 0)),
        (BERLIN, utc(2025, 10, 25, 20, 0)),
        (NEW_YORK, utc(2025, 3, 9, 2, 0)),
        (NEW_YORK, utc(2025, 11, 2, 2, 0)),
    ],
)
def test_hourly_keeps_real_hours_across_dst(tz: ZoneInfo, start: datetime) -> None:
    runs = run_every_tick(sched(line(every=timedelta(hours=1))), start, 12 * 60, tz)
    assert runs == [start + timedelta(hours=h) for h in range(12)]


# --------------------------------------------------------------------------- at


def test_at_fires_once_per_time() -> None:
    twice = sched(line(at=("02:30", "14:00")))
    start = local(BERLIN, 2025, 6, 2, 0, 0)
    runs = run_every_tick(twice, start, 2 * 24 * 60, BERLIN, last=start)
    assert runs == [
        local(BERLIN, 2025, 6, 2, 2, 30),
        local(BERLIN, 2025, 6, 2, 14, 0),
        local(BERLIN, 2025, 6, 3, 2, 30),
        local(BERLIN, 2025, 6, 3, 14, 0),
    ]


def test_at_with_a_weekday_fires_weekly() -> None:
    mondays = sched(line(at=("mon 09:00",)))
    last = local(BERLIN, 2025, 6, 2, 9, 0)  # a Monday
    assert not is_due(mondays, last, local(BERLIN, 2025, 6, 6, 12, 0), BERLIN)
    assert next_due(mondays, last, last + MINUTE, BERLIN) == local(BERLIN, 2025, 6, 9, 9, 0)


def test_at_only_on_the_lines_days() -> None:
    weekdays = sched(line(days=WEEKDAYS, at=("09:00",)))
    friday = local(BERLIN, 2025, 6, 6, 9, 0)
    assert next_due(weekdays, friday, friday + MINUTE, BERLIN) == local(BERLIN, 2025, 6, 9, 9, 0)


def test_at_catches_up_after_downtime_once() -> None:
    nightly = sched(line(at=("02:30",)))
    yesterday = local(BERLIN, 2025, 6, 2, 2, 30)
    back = local(BERLIN, 2025, 6, 3, 5, 0)
    assert is_due(nightly, yesterday, back, BERLIN)
    assert not is_due(nightly, back, back + timedelta(hours=1), BERLIN)
    assert is_due(nightly, None, back, BERLIN)  # never ran: due at once


def test_at_time_outside_its_window_never_fires() -> None:
    office = sched(line(window=("08:00", "17:59"), at=("07:00", "12:00")))
    yesterday_noon = local(BERLIN, 2025, 6, 2, 12, 0)
    assert not is_due(office, yesterday_noon, local(BERLIN, 2025, 6, 3, 8, 0), BERLIN)
    assert next_due(office, yesterday_noon, yesterday_noon + MINUTE, BERLIN) == local(
        BERLIN, 2025, 6, 3, 12, 0
    )


def test_at_time_shadowed_by_never_does_not_fire_later() -> None:
    schedule = sched(line(days=WEEKEND, never=True), line(at=("09:00",)))
    friday = local(BERLIN, 2025, 6, 6, 9, 0)
    assert not is_due(schedule, friday, local(BERLIN, 2025, 6, 9, 0, 0), BERLIN)  # Monday 0:00
    assert next_due(schedule, friday, friday, BERLIN) == local(BERLIN, 2025, 6, 9, 9, 0)


@pytest.mark.parametrize(
    ("tz", "day", "gap_end"),
    [(BERLIN, (2025, 3, 30), utc(2025, 3, 30, 1, 0)), (NEW_YORK, (2025, 3, 9), utc(2025, 3, 9, 7))],
)
def test_at_time_in_spring_forward_gap_occurs_at_the_gaps_end(
    tz: ZoneInfo, day: tuple[int, int, int], gap_end: datetime
) -> None:
    nightly = sched(line(at=("02:30",)))
    midnight = local(tz, *day, 0, 0)
    last = midnight - timedelta(hours=21, minutes=30)  # yesterday 02:30
    assert next_due(nightly, last, midnight, tz) == gap_end
    assert local_time(gap_end, tz).hour == 3
    assert not is_due(nightly, last, gap_end - MINUTE, tz)
    runs = run_every_tick(nightly, midnight, 3 * 24 * 60, tz, last=last)
    assert runs[0] == gap_end
    assert [local_time(r, tz).strftime("%H:%M") for r in runs] == ["03:00", "02:30", "02:30"]


@pytest.mark.parametrize(
    ("tz", "day", "time", "first"),
    [
        (BERLIN, (2025, 10, 26), "02:30", utc(2025, 10, 26, 0, 30)),
        (NEW_YORK, (2025, 11, 2), "01:30", utc(2025, 11, 2, 5, 30)),
    ],
)
def test_at_time_repeated_by_fall_back_occurs_once(
    tz: ZoneInfo, day: tuple[int, int, int], time: str, first: datetime
) -> None:
    nightly = sched(line(at=(time,)))
    midnight = local(tz, *day, 0, 0)
    runs = run_every_tick(nightly, midnight, 24 * 60, tz, last=midnight)
    assert runs == [first]
    assert at_occurrences(nightly, midnight, midnight + timedelta(hours=25), tz) == 1


@pytest.mark.parametrize(
    ("tz", "monday", "utc_hour"),
    [
        (BERLIN, (2025, 3, 24), 7),  # CET
        (BERLIN, (2025, 3, 31), 6),  # CEST
        (NEW_YORK, (2025, 10, 27), 12),  # EDT
        (NEW_YORK, (2025, 11, 3), 13),  # EST
    ],
)
def test_windows_follow_the_local_clock_across_dst(
    tz: ZoneInfo, monday: tuple[int, int, int], utc_hour: int
) -> None:
    opens = utc(*monday, utc_hour, 0)
    assert effective_line(BUSINESS, opens, tz) is BUSINESS.lines[0]
    assert effective_line(BUSINESS, opens - MINUTE, tz) is BUSINESS.lines[1]
    friday = date(*monday) - timedelta(days=3)
    friday_evening = local(tz, friday.year, friday.month, friday.day, 17, 58)
    assert next_due(BUSINESS, friday_evening, friday_evening, tz) == opens


# --------------------------------------------------------------------------- next_due


def test_next_due_of_a_due_schedule_is_now() -> None:
    now = utc(2025, 3, 3, 10, 0, 30)
    assert next_due(BUSINESS, None, now, UTC) == utc(2025, 3, 3, 10, 0)


def test_next_due_after_a_run_is_one_interval_later() -> None:
    ran = utc(2025, 3, 3, 10, 0, 12)
    assert next_due(BUSINESS, ran, ran + MINUTE, UTC) == utc(2025, 3, 3, 10, 5)
    evening = utc(2025, 3, 3, 17, 58)
    # 18:00 switches to the 15-minute line, still counted from the last run
    assert next_due(BUSINESS, evening, evening + MINUTE, UTC) == utc(2025, 3, 3, 18, 13)


def test_next_due_finds_a_line_that_starts_at_midnight() -> None:
    schedule = sched(
        line(days=frozenset({1}), every=MINUTE),  # Tuesdays
        line(window=("08:00", "17:59"), never=True),
    )
    monday_night = utc(2025, 3, 3, 20, 0)
    assert next_due(schedule, None, monday_night, UTC) == utc(2025, 3, 4, 0, 0)


def test_next_due_respects_the_horizon() -> None:
    schedule = sched(line(at=("mon 09:00",)))
    ran = utc(2025, 3, 3, 9, 0)
    assert next_due(schedule, ran, ran, UTC, horizon=timedelta(days=6)) is None
    assert next_due(schedule, ran, ran, UTC, horizon=timedelta(days=7)) == ran + timedelta(days=7)
    assert next_due(sched(line(never=True)), None, ran, UTC) is None


# --------------------------------------------------------------------------- at_occurrences


def test_at_occurrences_counts_weekly_rotations() -> None:
    mondays = sched(line(at=("mon 09:00",)))
    first = local(BERLIN, 2025, 3, 3, 9, 0)
    assert at_occurrences(mondays, first, first + timedelta(weeks=3), BERLIN) == 3
    assert at_occurrences(mondays, first, first + timedelta(weeks=3) - MINUTE, BERLIN) == 2
    assert at_occurrences(mondays, first - MINUTE, first, BERLIN) == 1
    assert at_occurrences(mondays, first + MINUTE, first, BERLIN) == 0


def test_at_occurrences_skip_shadowed_times_and_count_shared_ones_once() -> None:
    schedule = sched(
        line(days=frozenset({6}), never=True),
        line(at=("09:00",)),
        line(at=("09:00", "mon 12:00")),
        line(every=MINUTE),
        line(at=("10:00",)),  # never reached: the `every` line above is always in effect
    )
    monday = local(BERLIN, 2025, 6, 2, 0, 0)
    assert at_occurrences(schedule, monday, monday + timedelta(weeks=1), BERLIN) == 6 + 1


def test_at_occurrences_count_dst_days_once() -> None:
    nightly = sched(line(at=("02:30",)))
    for day in ((2025, 3, 29), (2025, 10, 25)):
        start = local(BERLIN, *day, 0, 0)
        assert at_occurrences(nightly, start, start + timedelta(hours=72), BERLIN) == 3


def test_at_occurrences_are_bounded() -> None:
    quarter_hours = tuple(f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 15, 30, 45))
    busy = sched(line(at=quarter_hours))
    now = utc(2025, 3, 3, 9, 0)
    assert at_occurrences(busy, utc(1990, 1, 1), now, UTC) == MAX_OCCURRENCES
    nightly = sched(line(at=("02:30",)))
    assert 3650 <= at_occurrences(nightly, datetime.min.replace(tzinfo=UTC), now, UTC) <= 3661


# --------------------------------------------------------------------------- words and spreading


def test_describe_reads_like_the_config() -> None:
    assert (
        describe(BUSINESS) == "every 5m mon-fri 08:00-17:59; never fri 18:00-mon 07:59; every 15m"
    )
    odd = sched(
        line(at=("02:30", "mon 09:00"), days=frozenset({0, 2, 5, 6})),
        ScheduleLine(every=timedelta(seconds=90), start=wt("22:00")),
        line(every=timedelta(days=1)),
    )
    assert describe(odd) == "at 02:30, mon 09:00 mon,wed,sat-sun; every 90s from 22:00; every 1d"
    assert describe(sched()) == "never (no lines)"


def test_spread_offset_is_stable_across_processes() -> None:
    keys = ["disk@web1", "ping", "http@db1"]
    here = [spread_offset(k) for k in keys]
    code = (
        "from survivor.schedule import spread_offset;"
        f"print(repr([spread_offset(k) for k in {keys!r}]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == repr(here)


def test_spread_offset_spreads_evenly() -> None:
    buckets = [0] * 6
    for i in range(1200):
        buckets[int(spread_offset(f"check{i}@host{i % 7}") // 10)] += 1
    assert all(140 <= b <= 260 for b in buckets), buckets
    assert len({spread_offset(f"c@h{i}") for i in range(100)}) == 100


def in_window(offsets: list[float], start: float, length: float) -> int:
    return sum(start <= offset < start + length for offset in offsets)


def test_even_slots_hold_every_stretch_of_the_minute_to_within_one_run() -> None:
    keys = [f"check{i % 10}@h{i // 10:06d}" for i in range(1000)]
    slots = even_slots(keys)
    hashed = [spread_offset(k) for k in keys]
    # the order of the stable hash, at even steps
    assert sorted(slots, key=slots.__getitem__) == sorted(keys, key=spread_offset)
    assert sorted(slots.values()) == pytest.approx([(k + 0.5) * 0.06 for k in range(1000)])
    for start in range(0, 31):
        assert abs(in_window(list(slots.values()), start, 30.0) - 500) <= 1
    # what hashed offsets alone gave: some half-minute holds 500 +- 15 or worse
    assert max(abs(in_window(hashed, start, 30.0) - 500) for start in range(0, 31)) > 10


def test_even_slots_do_not_depend_on_the_order_given_or_on_repeats() -> None:
    keys = ["disk@web1", "ping", "http@db1", "http@web1"]
    assert even_slots(keys) == even_slots([*reversed(keys), "ping"])
    assert sorted(even_slots(keys).values()) == [7.5, 22.5, 37.5, 52.5]
    assert even_slots(["alone"], 10.0) == {"alone": 5.0}
    assert even_slots([]) == {}


def test_adding_pairs_moves_the_other_slots_by_little_and_inside_the_minute() -> None:
    before = even_slots(f"c@h{i}" for i in range(1000))
    after = even_slots([*(f"c@h{i}" for i in range(1000)), *(f"new@h{i}" for i in range(10))])
    moved = [abs(after[key] - offset) for key, offset in before.items()]
    assert max(moved) <= 60 * 11 / 1000  # its change in rank (at most 10) and the new step
    assert all(0 <= offset < 60 for offset in after.values())


def test_spread_offset_refuses_a_bad_period() -> None:
    with pytest.raises(ValueError, match="period"):
        spread_offset("x", 0.0)
    with pytest.raises(ValueError, match="period"):
        even_slots(["x"], float("nan"))


@given(st.text(max_size=40), st.floats(min_value=1e-3, max_value=1e6))
def test_spread_offset_in_range(key: str, period: float) -> None:
    offset = spread_offset(key, period)
    assert 0.0 <= offset < period
    assert spread_offset(key, period) == offset


# --------------------------------------------------------------------------- properties

ZONES = st.sampled_from([UTC, BERLIN, NEW_YORK])
# DST transitions of 2025 (Berlin and New York) and plain days; times are drawn near them.
ANCHORS = st.sampled_from(
    [
        utc(2025, 3, 30, 1),
        utc(2025, 10, 26, 1),
        utc(2025, 3, 9, 7),
        utc(2025, 11, 2, 6),
        utc(2025, 6, 13, 12),
        utc(2024, 12, 31, 23),
    ]
)
INTERESTING_MINUTES = [0, 59, 60, 90, 119, 120, 150, 179, 180, 420, 479, 480, 1079, 1080, 1439]
MINUTES = st.one_of(st.sampled_from(INTERESTING_MINUTES), st.integers(0, 1439))
WEEKDAY = st.integers(0, 6)
DAYS = st.one_of(st.none(), st.frozensets(WEEKDAY, min_size=1))
INTERVALS = st.one_of(
    st.sampled_from([1, 2, 5, 7, 15, 60, 90, 1440]).map(lambda m: m * MINUTE),
    st.just(timedelta(seconds=90)),
)


@st.composite
def times(draw: st.DrawFn, weekly: bool) -> WeekTime:
    return WeekTime(draw(MINUTES), draw(WEEKDAY) if weekly else None)


@st.composite
def schedule_lines(draw: st.DrawFn) -> ScheduleLine:
    window = draw(st.sampled_from(["none", "daily", "weekly"]))
    start = end = None
    if window != "none":
        start, end = draw(times(window == "weekly")), draw(times(window == "weekly"))
    action = draw(st.sampled_from(["every", "every", "at", "at", "never"]))
    return ScheduleLine(
        every=draw(INTERVALS) if action == "every" else None,
        at=tuple(draw(st.lists(times(draw(st.booleans())), min_size=1, max_size=3)))
        if action == "at"
        else (),
        never=action == "never",
        days=draw(DAYS),
        start=start,
        end=end,
    )


SCHEDULES = st.lists(schedule_lines(), min_size=1, max_size=3).map(lambda ls: sched(*ls))


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    anchor = draw(ANCHORS)
    return anchor + timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))


@st.composite
def lasts(draw: st.DrawFn, now: datetime) -> datetime | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    return now - timedelta(seconds=draw(st.integers(-1800, 3 * 86400)))


def brute_next_due(
    schedule: Schedule, last: datetime | None, now: datetime, tz: tzinfo, horizon: timedelta
) -> datetime | None:
    minute = now.replace(second=0, microsecond=0)
    limit = minute + horizon
    while minute <= limit:
        if is_due(schedule, last, minute, tz):
            return minute
        minute += MINUTE
    return None


@settings(max_examples=150, deadline=None)
@given(SCHEDULES, moments(), ZONES, st.data())
def test_next_due_agrees_with_brute_force(
    schedule: Schedule, now: datetime, tz: tzinfo, data: st.DataObject
) -> None:
    last = data.draw(lasts(now))
    horizon = timedelta(hours=30)
    expected = brute_next_due(schedule, last, now, tz, horizon)
    assert next_due(schedule, last, now, tz, horizon) == expected


@settings(max_examples=60, deadline=None)
@given(SCHEDULES, moments(), ZONES, st.data())
def test_every_line_stays_due_until_it_runs(
    schedule: Schedule, now: datetime, tz: tzinfo, data: st.DataObject
) -> None:
    last = data.draw(lasts(now))
    start = next_due(schedule, last, now, tz, horizon=timedelta(days=2))
    if start is None:
        return
    chosen = effective_line(schedule, start, tz)
    if chosen is None or chosen.every is None:
        return
    minute = start
    for _ in range(6 * 60):
        minute += MINUTE
        if effective_line(schedule, minute, tz) is not chosen:
            break
        assert is_due(schedule, last, minute, tz), minute


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 180),
    moments(),
    ZONES,
    st.integers(0, 59),
)
def test_every_n_run_at_each_due_tick_runs_exactly_every_n_minutes(
    interval: int, start: datetime, tz: tzinfo, second: int
) -> None:
    schedule = sched(line(every=interval * MINUTE))
    start = start.replace(second=0, microsecond=0)
    runs = run_every_tick(schedule, start, 5 * interval, tz, second=second)
    assert runs == [start + k * interval * MINUTE for k in range(5)]
