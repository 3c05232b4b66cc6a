"""Steps of the wall clock (issue 23, item 1): noticed by comparing it with the monotonic one."""

from __future__ import annotations

import pytest

from survivor.clock import JUMP_S, WallClockWatch, read_both, wall_step


@pytest.mark.parametrize(
    ("wall", "mono", "step"),
    [
        (0.5, 0.5, 0.0),  # both advanced alike
        (0.5 + JUMP_S, 0.5, 0.0),  # within the tolerance: NTP slews, reads are not atomic
        (-299.5, 0.5, -300.0),  # stepped back 5 minutes
        (7200.5, 0.5, 7200.0),  # stepped forward 2 hours
        (3600.0, 0.0, 3600.0),  # a suspend: the monotonic clock stood still
    ],
)
def test_a_step_is_wall_and_monotonic_time_disagreeing(
    wall: float, mono: float, step: float
) -> None:
    before = (1_800_000_000.0, 1000.0)
    after = (before[0] + wall, before[1] + mono)
    assert wall_step(before, after) == pytest.approx(step)


def test_the_watch_reports_each_step_once_in_either_direction() -> None:
    wall, mono = 1_800_000_000.0, 1000.0
    watch = WallClockWatch((wall, mono))
    seen = []
    for wall_delta in (0.5, -300.0 + 0.5, 0.5, 7200.0 + 0.5, 0.5):
        wall, mono = wall + wall_delta, mono + 0.5
        seen.append(watch.observe((wall, mono)))
    assert seen == pytest.approx([0.0, -300.0, 0.0, 7200.0, 0.0])


class HeldUpClock:
    """Monotonic readings as given; the wall clock in step with the monotonic one."""

    def __init__(self, monos: list[float]) -> None:
        self.monos = monos
        self.mono = monos[0]

    def monotonic(self) -> float:
        self.mono = self.monos.pop(0)
        return self.mono

    def time(self) -> float:
        return 1_800_000_000.0 + self.mono


def test_a_reading_held_up_between_wall_and_monotonic_is_taken_again() -> None:
    # Stopped (SIGSTOP, a long GIL wait) for 10 s after the first monotonic read: that pair
    # of readings would look like a step of the wall clock.
    clock = HeldUpClock([1000.0, 1010.0, 1010.0, 1010.0])
    wall, mono = read_both(clock)  # type: ignore[arg-type]
    assert (wall - 1_800_000_000.0, mono) == (1010.0, 1010.0)
    assert wall_step((1_800_000_000.0 + 1000.0, 1000.0), (wall, mono)) == 0.0
