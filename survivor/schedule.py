"""Pure schedule math: which line is in effect, whether work is due, and when it next will be.

Schedules are written in local wall-clock time ("mon-fri 08:00-17:59") while the
daemon keeps time in UTC, so every function takes `now` (aware, normally UTC) and
the zone `tz` the schedule is read in. Nothing here reads the clock.

Rules (DESIGN.md §3, Survivor 1.0 `schedule.cf`):

* A line is in effect when its `days` contain today's weekday and its window
  encloses now. `end` is inclusive through second 59 of its minute; a window
  whose start is after its end wraps (overnight, over the weekend). For an
  overnight daily window with `days`, the part after midnight belongs to the
  day the window started.
* The first line in effect wins, except that an `at` line that is not due lets
  the search go on, which is how `[{at: [02:30]}, {every: 1h}]` works.
* `every` is due once the whole minutes between the last planned start and now
  reach the interval, counted in real (UTC) time so DST neither skips nor doubles.
* `at` is due when an occurrence of one of its times lies after the last planned
  start. An occurrence counts only if, at that moment, its line is in effect and
  no earlier `every`/`never` line in effect shadows it, so an `at` time outside
  its line's window, or inside a `never` period, never fires later by surprise.
  A time in a spring-forward gap occurs at the first minute after the gap; a
  time repeated by a fall-back occurs once, the first time.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from survivor.model.config import WEEKDAY_NAMES, Schedule, ScheduleLine, WeekTime

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES

MAX_OCCURRENCES = 10_000  # at_occurrences never counts more, whatever `after` says
MAX_LOOKBACK = timedelta(days=3660)  # nor looks further back than this before `until`
_AT_LOOKBACK_DAYS = 8  # a weekly schedule repeats within a week; one day spare for DST


# --------------------------------------------------------------------------- time


def local_time(now: datetime, tz: tzinfo) -> datetime:
    """`now` as wall-clock time in `tz`, where schedule lines are read."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"schedule time {now.isoformat()} is naive: pass an aware datetime")
    return now.astimezone(tz)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"schedule time {t.isoformat()} is naive: pass an aware datetime")
    return t.astimezone(UTC)


def _floor_utc(t: datetime) -> datetime:
    """The whole UTC minute `t` falls in: minutes are counted in real time, not wall time."""
    return _utc(t).replace(second=0, microsecond=0)


def _wall(t: datetime, tz: tzinfo) -> tuple[int, int]:
    """(weekday, minute of the day) of `t` on the wall clock in `tz`."""
    local = t.astimezone(tz)
    return local.weekday(), local.hour * 60 + local.minute


# --------------------------------------------------------------------------- in effect


def line_in_effect(line: ScheduleLine, now: datetime, tz: tzinfo) -> bool:
    """True when `line`'s days and window enclose `now` read in `tz`."""
    local = local_time(now, tz)
    return _in_effect_at(line, local.weekday(), local.hour * 60 + local.minute)


def _in_effect_at(line: ScheduleLine, weekday: int, minute: int) -> bool:
    start, end, days = line.start, line.end, line.days
    if start is None and end is None:
        return days is None or weekday in days
    if _is_weekly(start) or _is_weekly(end):
        if days is not None and weekday not in days:
            return False
        first, last = _weekly_span(start, end)
        now = weekday * DAY_MINUTES + minute
        return first <= now <= last if first <= last else (now >= first or now <= last)
    first = 0 if start is None else start.minute
    last = DAY_MINUTES - 1 if end is None else end.minute
    if first <= last:
        return first <= minute <= last and (days is None or weekday in days)
    if minute >= first:  # the evening part of an overnight window
        return days is None or weekday in days
    if minute <= last:  # the morning part belongs to the day the window started
        return days is None or (weekday - 1) % 7 in days
    return False


def _is_weekly(t: WeekTime | None) -> bool:
    return t is not None and t.day is not None


def _weekly_span(start: WeekTime | None, end: WeekTime | None) -> tuple[int, int]:
    """Week minutes (Monday 00:00 = 0) of a window with at least one weekday.

    The config loader gives both ends a day; anything else is read leniently: a
    missing start is Monday 00:00, a missing end Sunday 23:59, and an end without
    a day falls on the start's day (the next day if earlier), and vice versa.
    """
    first, last = 0, WEEK_MINUTES - 1
    start_day = None if start is None else start.day
    end_day = None if end is None else end.day
    if start is not None:
        if start_day is None:
            assert end is not None and end_day is not None
            start_day = end_day if start.minute <= end.minute else (end_day - 1) % 7
        first = start_day * DAY_MINUTES + start.minute
    if end is not None:
        if end_day is None:
            assert start is not None and start.day is not None
            end_day = start.day if end.minute >= start.minute else (start.day + 1) % 7
        last = end_day * DAY_MINUTES + end.minute
    return first, last


def window_active(lines: Iterable[ScheduleLine], now: datetime, tz: tzinfo) -> bool:
    """True when one of `lines` (a downtime's windows: days/from/until only) encloses `now`."""
    weekday, minute = _wall(_utc(now), tz)
    return any(_in_effect_at(line, weekday, minute) for line in lines)


def window_end(
    lines: Iterable[ScheduleLine], now: datetime, tz: tzinfo, limit: timedelta = 8 * DAY
) -> datetime | None:
    """The first whole minute after `now` when none of `lines` is in effect (the end of the
    window `now` is in, exclusive), or None when none comes within `limit`."""
    lines = tuple(lines)
    t = _floor_utc(now) + MINUTE
    stop = t + limit
    while t < stop:
        weekday, minute = _wall(t, tz)
        if not any(_in_effect_at(line, weekday, minute) for line in lines):
            return t
        t += MINUTE
    return None


def window_spans(
    lines: Iterable[ScheduleLine], since: datetime, until: datetime, tz: tzinfo
) -> list[tuple[datetime, datetime]]:
    """The stretches of [since, until) in which one of `lines` is in effect, oldest first,
    in UTC: what `window_active` says minute by minute, as [start, end) spans.

    Whether a window is in effect can change only where the wall clock reaches a
    line's start, the minute after its end, or midnight (the weekday), or where the
    zone's offset changes; so the walk jumps from one such minute to the next while
    the offset stays the same, and a year costs a few thousand steps, not 525,600.
    """
    lines = tuple(lines)
    start, stop = _utc(since), _utc(until)
    marks = _change_minutes(lines)
    spans: list[tuple[datetime, datetime]] = []
    opened: datetime | None = None
    t = _floor_utc(start)
    while t < stop:
        local = t.astimezone(tz)
        minute = local.hour * 60 + local.minute
        active = any(_in_effect_at(line, local.weekday(), minute) for line in lines)
        if active and opened is None:
            opened = max(t, start)
        elif not active and opened is not None:
            spans.append((opened, t))
            opened = None
        step = min(((m - minute - 1) % DAY_MINUTES) + 1 for m in marks)
        nxt = t + step * MINUTE
        if step > 1 and nxt.astimezone(tz).utcoffset() != local.utcoffset():
            nxt = t + MINUTE  # the offset changes on the way: walk minute by minute
        t = nxt
    if opened is not None:
        spans.append((opened, stop))
    return spans


def _change_minutes(lines: Iterable[ScheduleLine]) -> set[int]:
    """Minutes of the day at which a window's being in effect may change."""
    marks = {0}
    for line in lines:
        if line.start is not None:
            marks.add(line.start.minute)
        if line.end is not None:
            marks.add((line.end.minute + 1) % DAY_MINUTES)
    return marks


def effective_line(schedule: Schedule, now: datetime, tz: tzinfo) -> ScheduleLine | None:
    """The first line in effect, or None; no `at` skipping (alert plans pace with it)."""
    weekday, minute = _wall(_utc(now), tz)
    for line in schedule.lines:
        if _in_effect_at(line, weekday, minute):
            return line
    return None


def _stops_search(line: ScheduleLine) -> bool:
    """`every` and `never` lines end the search when in effect; `at` lines may not."""
    return line.never or line.every is not None


# --------------------------------------------------------------------------- due


def is_due(schedule: Schedule, last_planned: datetime | None, now: datetime, tz: tzinfo) -> bool:
    """Whether work planned last at `last_planned` (None: never) is due at `now`."""
    now_utc = _utc(now)
    weekday, minute = _wall(now_utc, tz)
    for index, line in enumerate(schedule.lines):
        if not _in_effect_at(line, weekday, minute):
            continue
        if line.never:
            return False
        if line.every is not None:
            if last_planned is None:
                return True
            return _floor_utc(now_utc) - _floor_utc(last_planned) >= line.every
        if _at_due(schedule, index, last_planned, now_utc, tz):
            return True
    return False


def _at_due(
    schedule: Schedule, index: int, last_planned: datetime | None, now: datetime, tz: tzinfo
) -> bool:
    """Whether an occurrence of line `index`'s times falls in (last_planned, now]."""
    line = schedule.lines[index]
    if not line.at:
        return False
    if last_planned is None:
        return True
    last = _utc(last_planned)
    if last >= now:
        return False
    # Scan back from tomorrow (a fall-back at midnight can repeat a date) to the day
    # before `last` (a gap can push an occurrence into the next day), at most a week.
    day = now.astimezone(tz).date() + DAY
    oldest = max(day - (_AT_LOOKBACK_DAYS + 1) * DAY, last.astimezone(tz).date() - DAY)
    latest_first = sorted(line.at, key=lambda at: at.minute, reverse=True)
    while day >= oldest:
        weekday = day.weekday()
        for at in latest_first:
            if at.day is not None and at.day != weekday:
                continue
            t = _occurrence(day, at.minute, tz)
            if t > now:
                continue
            if t <= last:
                break  # a day's occurrences come in wall-clock order: the rest are older
            if _reached(schedule, index, t, tz):
                return True
        day -= DAY
    return False


@lru_cache(maxsize=8192)
def _occurrence(day: date, minute: int, tz: tzinfo) -> datetime:
    """The UTC instant `minute` after midnight on `day` happens in `tz`.

    fold=0 picks the first of two repeated wall times; a wall time inside a
    spring-forward gap does not exist and is moved to the first minute after it.
    Cached: every pair on the same schedule asks for the same few instants, and
    next_due asks again at each change point.
    """
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    before, after = min(first, other), max(first, other)  # wall(before) < wall <= wall(after)
    while after - before >= 2 * MINUTE:  # not `> MINUTE`: old LMT offsets have seconds
        middle = before + (after - before) // MINUTE // 2 * MINUTE
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after


def _reached(schedule: Schedule, index: int, t: datetime, tz: tzinfo) -> bool:
    """Whether the search at `t` gets to line `index` and finds it in effect."""
    weekday, minute = _wall(t, tz)
    if not _in_effect_at(schedule.lines[index], weekday, minute):
        return False
    return not any(
        _stops_search(line) and _in_effect_at(line, weekday, minute)
        for line in schedule.lines[:index]
    )


# --------------------------------------------------------------------------- next due


def next_due(
    schedule: Schedule,
    last_planned: datetime | None,
    now: datetime,
    tz: tzinfo,
    horizon: timedelta = timedelta(days=8),
) -> datetime | None:
    """The first whole UTC minute m >= floor(now), m <= floor(now) + horizon, that is due.

    Between two "change points" `is_due` cannot change: window edges, at-times
    and midnight on the wall clock, the `every` thresholds and DST transitions.
    So this evaluates only those minutes instead of every minute of the horizon.
    """
    start = _floor_utc(now)
    limit = start + horizon
    if not schedule.lines:
        return None
    (line, *others) = schedule.lines
    if not others and line.every is not None and _always(line):
        # `every: 1m` all week, what most checks have: the interval's threshold itself
        # (the same minute the walk below finds, at a tenth of its cost per result).
        due = (
            start
            if last_planned is None
            else max(start, _every_thresholds((line,), last_planned)[0])
        )
        return due if due <= limit else None
    marks = _wall_marks(schedule.lines)
    thresholds = _every_thresholds(schedule.lines, last_planned)
    minute = start
    while minute <= limit:
        if is_due(schedule, last_planned, minute, tz):
            return minute
        minute = _next_change(minute, marks, thresholds, tz)
    return None


def _always(line: ScheduleLine) -> bool:
    """In effect at every minute of the week: no window, no days."""
    return line.start is None and line.end is None and line.days is None


def _wall_marks(lines: Iterable[ScheduleLine]) -> tuple[int, ...]:
    """Minutes of the day at which some line's effect or `at` state can change."""
    marks = {0}  # midnight: days change
    for line in lines:
        if line.start is not None:
            marks.add(line.start.minute)
        if line.end is not None:
            marks.add((line.end.minute + 1) % DAY_MINUTES)
        marks.update(at.minute for at in line.at)
    return tuple(sorted(marks))


def _every_thresholds(
    lines: Iterable[ScheduleLine], last_planned: datetime | None
) -> tuple[datetime, ...]:
    """For each `every` line, the first minute its interval has elapsed since `last_planned`."""
    if last_planned is None:
        return ()
    base = _floor_utc(last_planned)
    return tuple(
        base + -(-line.every // MINUTE) * MINUTE for line in lines if line.every is not None
    )


def _next_change(
    minute: datetime, marks: tuple[int, ...], thresholds: tuple[datetime, ...], tz: tzinfo
) -> datetime:
    local = minute.astimezone(tz)
    of_day = local.hour * 60 + local.minute
    i = bisect_right(marks, of_day)
    step = (marks[i] if i < len(marks) else DAY_MINUTES) - of_day
    change = minute + step * MINUTE
    for threshold in thresholds:
        if minute < threshold < change:
            change = threshold
    offset = local.utcoffset()
    if change.astimezone(tz).utcoffset() != offset:
        change = _offset_change(minute, change, offset, tz)
    return change


def _offset_change(
    before: datetime, after: datetime, offset: timedelta | None, tz: tzinfo
) -> datetime:
    """The first whole minute in (before, after] where `tz`'s UTC offset is no longer `offset`."""
    while after - before > MINUTE:
        middle = before + (after - before) // MINUTE // 2 * MINUTE
        if middle.astimezone(tz).utcoffset() != offset:
            after = middle
        else:
            before = middle
    return after


# --------------------------------------------------------------------------- occurrences


def at_occurrences(schedule: Schedule, after: datetime, until: datetime, tz: tzinfo) -> int:
    """How many `at` times fired in (after, until]: the steps to rotate an on-call list.

    An occurrence counts when its line is reached by the search at that moment
    (in effect, not shadowed by an earlier `every`/`never` line); two lines
    naming the same moment count once. The count stops at MAX_OCCURRENCES and
    looks back at most MAX_LOOKBACK, so a corrupt `after` cannot hang the caller.
    """
    start, stop = _utc(after), _utc(until)
    if stop <= start:
        return 0
    start = max(start, stop - MAX_LOOKBACK)
    by_weekday: list[dict[int, list[int]]] = [{} for _ in range(7)]
    for index, line in enumerate(schedule.lines):
        if _stops_search(line):
            continue
        for at in line.at:
            for weekday in range(7) if at.day is None else (at.day,):
                by_weekday[weekday].setdefault(at.minute, []).append(index)
    if not any(by_weekday):
        return 0
    seen: set[datetime] = set()
    day = start.astimezone(tz).date() - DAY
    last_day = stop.astimezone(tz).date() + DAY
    while day <= last_day and len(seen) < MAX_OCCURRENCES:
        for minute, indices in sorted(by_weekday[day.weekday()].items()):
            t = _occurrence(day, minute, tz)
            if (
                start < t <= stop
                and t not in seen
                and any(_reached(schedule, index, t, tz) for index in indices)
            ):
                seen.add(t)
        day += DAY
    return min(len(seen), MAX_OCCURRENCES)


# --------------------------------------------------------------------------- spreading


def spread_offset(key: str, period: float = 60.0) -> float:
    """A stable offset in [0, period) for `key` ("check@host" or "check").

    Spreads a minute's work evenly and the same way in every process and run:
    blake2b, not hash(), whose seed changes per interpreter.
    """
    if not (period > 0 and math.isfinite(period)):
        raise ValueError(f"spread period {period!r} must be a positive number of seconds")
    digest = hashlib.blake2b(key.encode(), digest_size=6).digest()
    offset = int.from_bytes(digest, "big") / 2**48 * period  # exact fraction below 1
    return min(offset, math.nextafter(period, 0.0))


def even_slots(keys: Iterable[str], period: float = 60.0) -> dict[str, float]:
    """An offset in [0, period) for each key: evenly spaced, in the order of `spread_offset`.

    The k-th of n keys gets (k + 1/2) / n of the period, so every stretch of the
    minute holds its share of the minute's runs to within one, where n hashed
    offsets would bunch by about the square root of n (at 1,000 pairs, 30 s
    of a minute held 500 +- 16 runs). A slot depends on the other keys: adding
    or removing pairs moves the others by their change in rank, a little for a
    large config, and always inside the period, so every pair still runs once
    a minute.
    """
    if not (period > 0 and math.isfinite(period)):
        raise ValueError(f"spread period {period!r} must be a positive number of seconds")
    ranked = sorted(set(keys), key=lambda key: (spread_offset(key), key))
    step = period / len(ranked) if ranked else period
    return {key: (index + 0.5) * step for index, key in enumerate(ranked)}


# --------------------------------------------------------------------------- words


def describe(schedule: Schedule) -> str:
    """One line for humans: "every 5m mon-fri 08:00-17:59; never fri 18:00-mon 07:59"."""
    if not schedule.lines:
        return "never (no lines)"
    return "; ".join(_describe_line(line) for line in schedule.lines)


def describe_window(line: ScheduleLine) -> str:
    """A downtime window as written: `sun 02:00-03:59`, `mon-fri 22:00-05:59`."""
    days = "" if line.days is None else _days(line.days) + " "
    return f"{days}{line.start}-{line.end}"


def _describe_line(line: ScheduleLine) -> str:
    if line.never:
        words = ["never"]
    elif line.every is not None:
        words = ["every", _duration(line.every)]
    elif line.at:
        words = ["at", ", ".join(str(at) for at in line.at)]
    else:
        words = ["at (no times)"]
    if line.days is not None:
        words.append(_days(line.days))
    if line.start is not None and line.end is not None:
        words.append(f"{line.start}-{line.end}")
    elif line.start is not None:
        words.append(f"from {line.start}")
    elif line.end is not None:
        words.append(f"until {line.end}")
    return " ".join(words)


def _duration(interval: timedelta) -> str:
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _days(days: frozenset[int]) -> str:
    """Weekdays as runs, Monday first: "mon-fri", "mon,wed", "sat-sun"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    if not runs:
        return "no days"
    return ",".join(
        WEEKDAY_NAMES[run[0]]
        if len(run) == 1
        else f"{WEEKDAY_NAMES[run[0]]}-{WEEKDAY_NAMES[run[-1]]}"
        for run in runs
    )
