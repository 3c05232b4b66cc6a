"""Where time comes from: the only module that reads the clock or sleeps.

Everything else takes `now` as an argument or a `Clock` object, so tests can
use a fake one. `ScaledClock` runs wall-clock time faster for the daemon's
integration tests (SURVIVOR_TEST_CLOCK_SPEED); production uses `SystemClock`.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC time, for schedules and records."""
        ...

    def time(self) -> float:
        """Epoch seconds of `now()`."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for cadence and deadlines."""
        ...

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        """Wait for the monotonic `deadline`; True if `stop` was set first."""
        ...

    def wait_seconds(self, epoch: float, now: float | None = None) -> float:
        """Real seconds until wall-clock `epoch` from `now` (epoch seconds of an earlier
        reading; default: the clock now), for Condition.wait and poll timeouts."""
        ...

    def after_real(self, seconds: float) -> float:
        """The monotonic deadline `seconds` of real time from now (grace periods)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, deadline - time.monotonic()))

    def wait_seconds(self, epoch: float, now: float | None = None) -> float:
        return max(0.0, epoch - (time.time() if now is None else now))

    def after_real(self, seconds: float) -> float:
        return time.monotonic() + seconds


class ScaledClock:
    """Wall-clock and monotonic time running `speed` times faster than real time.

    A test-only device: with speed 60 a scheduling minute passes every real
    second, so a real daemon can be watched through many ticks quickly. Scaled
    time is a function of real time from a fixed `origin` (epoch seconds), so
    a restarted daemon continues the same timeline instead of going back.
    Module timeouts stay in real seconds (the runner measures them).
    """

    def __init__(self, speed: float, origin: float | None = None) -> None:
        self.speed = speed
        real_now = time.time()
        self._origin = real_now if origin is None else origin
        self._wall0 = self._origin + (real_now - self._origin) * speed
        self._mono0 = time.monotonic()

    def _elapsed(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def time(self) -> float:
        return self._wall0 + self._elapsed()

    def monotonic(self) -> float:
        return self._mono0 + self._elapsed()

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, (deadline - self.monotonic()) / self.speed))

    def wait_seconds(self, epoch: float, now: float | None = None) -> float:
        return max(0.0, (epoch - (self.time() if now is None else now)) / self.speed)

    def after_real(self, seconds: float) -> float:
        return self.monotonic() + seconds * self.speed


def clock_from_env() -> Clock:
    """SystemClock, unless the test-only SURVIVOR_TEST_CLOCK_SPEED asks for a faster one."""
    speed = os.environ.get("SURVIVOR_TEST_CLOCK_SPEED")
    if speed:
        origin = os.environ.get("SURVIVOR_TEST_CLOCK_ORIGIN")
        return ScaledClock(float(speed), None if origin is None else float(origin))
    return SystemClock()


JUMP_S = 5.0  # wall and monotonic time disagreeing by more than this between two readings
READ_SKEW_S = 0.1  # a wall reading whose monotonic brackets are further apart is read again


def read_both(clock: Clock) -> tuple[float, float]:
    """Wall-clock (epoch) and monotonic seconds read together. A thread held up between the
    two reads (the GIL, SIGSTOP) would make them disagree, so the wall reading is bracketed
    by two monotonic ones and read again, a few times at most, when they are far apart."""
    for _ in range(3):
        before = clock.monotonic()
        wall = clock.time()
        after = clock.monotonic()
        if after - before <= READ_SKEW_S:
            break
    return wall, (before + after) / 2


def wall_step(
    before: tuple[float, float], after: tuple[float, float], tolerance: float = JUMP_S
) -> float:
    """How far the wall clock was stepped between two (wall, monotonic) readings: seconds,
    negative when it went back; 0.0 when the two clocks advanced alike within `tolerance`.

    NTP slews by at most 0.5 ms a second, so between readings a few seconds apart only a
    step (settimeofday, a VM restored, a suspend, which stops the monotonic clock) makes
    them disagree by seconds."""
    step = (after[0] - before[0]) - (after[1] - before[1])
    return step if abs(step) > tolerance else 0.0


class WallClockWatch:
    """Notices steps of the wall clock from one reading to the next (`observe`)."""

    def __init__(self, reading: tuple[float, float], tolerance: float = JUMP_S) -> None:
        self.last = reading
        self.tolerance = tolerance

    def observe(self, reading: tuple[float, float]) -> float:
        """The step since the last reading (`wall_step`); `reading` becomes the last one."""
        step = wall_step(self.last, reading, self.tolerance)
        self.last = reading
        return step


def utc_iso(t: datetime) -> str:
    """`2026-11-24T10:05:00.412Z`: the one timestamp format of state and history."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return t.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"; faster than strftime


def from_epoch(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def parse_iso(text: str) -> datetime:
    """Parse what `utc_iso` writes (and any ISO 8601 with an offset)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t


def parse_time(value: object) -> datetime | None:
    """Leniently, for readers of files others wrote: an ISO 8601 string or epoch seconds as
    an aware datetime; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return from_epoch(float(value))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


MINUTE = timedelta(minutes=1)
MINUTE_S = MINUTE.total_seconds()  # the same, for epoch and monotonic seconds


def local_zone(name: str | None = None) -> tzinfo:
    """The zone schedules are read in: `name`, else $TZ, else /etc/localtime, else UTC."""
    candidates = [name, os.environ.get("TZ", "").lstrip(":") or None]
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    except OSError:
        pass
    for key in candidates:
        if not key:
            continue
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            if key is name:
                raise
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except OSError:
        return UTC
