"""Times an operator types (`--until`) and reads back, for the commands that take them.

`parse_until` accepts ISO 8601, `YYYY-MM-DD HH:MM`, `HH:MM` (its next
occurrence) and relative `+2h`, `+1h30m`; times without a zone are local time in
the instance's zone, and a time skipped by a DST change lands just after the gap.
Pure: `now` and `tz` are arguments, so no clock is read and the tests can walk
DST edges. Kept apart from `actions`, which acts on the state files, because
parsing what was typed needs nothing of the state and is tested on its own.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from survivor.errors import SurvivorError


class TimeSpecError(SurvivorError, ValueError):
    """A time given on the command line (--until) is not understood or not in the future."""


_RELATIVE = re.compile(r"\A\+\s*((?:\d+\s*[smhdw]\s*)+)\Z")
_RELATIVE_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CLOCK_TIME = re.compile(r"\A(\d{1,2}):(\d{2})\Z")
TIME_FORMATS = (
    "ISO 8601 (2026-11-24T18:00, with Z or an offset for UTC/other zones), "
    "'YYYY-MM-DD HH:MM', 'HH:MM' (its next occurrence) or '+30m', '+2h', '+1d', '+1h30m'"
)


def parse_until(text: str, *, now: datetime, tz: tzinfo) -> datetime:
    """An end time given by an operator, as aware UTC; it must lie after `now`.

    Times without a zone are local time in `tz` (the instance's zone).
    """
    spec = text.strip()
    when = _parse_time(spec, now, tz)
    if when is None:
        raise TimeSpecError(f"{text!r} is not a time; use {TIME_FORMATS}")
    if when <= now:
        shown = when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
        raise TimeSpecError(f"{text!r} ({shown}) is not in the future")
    return when.astimezone(UTC)


def parse_when(text: str, *, now: datetime, tz: tzinfo) -> datetime:
    """A time given by an operator (`--start`), as aware UTC; `now` and past times are allowed."""
    spec = text.strip()
    when = now if spec.lower() == "now" else _parse_time(spec, now, tz)
    if when is None:
        raise TimeSpecError(f"{text!r} is not a time; use 'now' or {TIME_FORMATS}")
    return when.astimezone(UTC)


def _parse_time(spec: str, now: datetime, tz: tzinfo) -> datetime | None:
    m = _RELATIVE.match(spec)
    if m:
        seconds = sum(
            int(n) * _UNIT_SECONDS[unit] for n, unit in _RELATIVE_PART.findall(m.group(1))
        )
        return now + timedelta(seconds=seconds)
    m = _CLOCK_TIME.match(spec)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            return None
        today = now.astimezone(tz).date()
        for day in (today, today + timedelta(days=1)):
            candidate = _local(day, time(hour, minute), tz)
            if candidate > now:
                return candidate
        return None
    try:
        parsed = datetime.fromisoformat(spec.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _local(day: date, at: time, tz: tzinfo) -> datetime:
    """`day` at `at` local time; a time skipped by a DST change lands just after the gap."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC).astimezone(tz)


def _shown(t: datetime, tz: tzinfo) -> str:
    """How `actions` show a time back to the operator: local, to the minute, zone named."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
