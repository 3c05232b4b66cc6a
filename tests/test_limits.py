"""How many checks may run at once: the machine's limits with their margins, and the caps."""

from __future__ import annotations

import resource

from survivor.proc.limits import (
    FD_RESERVE,
    FDS_PER_CHECK,
    PROC_RESERVE,
    PROCS_PER_CHECK,
    UNLIMITED_CHECKS,
    Limits,
    current_limits,
    machine_capacity,
    running_cap,
)


def test_open_files_bound_the_checks_after_the_reserve() -> None:
    limits = Limits(open_files=FD_RESERVE + 100 * FDS_PER_CHECK, processes=None)
    assert machine_capacity(limits) == 100
    # one descriptor short of another check's share: still 100
    limits = Limits(open_files=FD_RESERVE + 101 * FDS_PER_CHECK - 1, processes=None)
    assert machine_capacity(limits) == 100


def test_processes_bound_the_checks_when_they_are_the_smaller_limit() -> None:
    limits = Limits(open_files=1_048_576, processes=PROC_RESERVE + 40 * PROCS_PER_CHECK)
    assert machine_capacity(limits) == 40


def test_a_limit_below_the_reserve_still_lets_one_check_run() -> None:
    assert machine_capacity(Limits(open_files=64, processes=10)) == 1


def test_no_limits_at_all_is_a_large_number() -> None:
    assert machine_capacity(Limits(open_files=None, processes=None)) == UNLIMITED_CHECKS


def test_a_soft_limit_of_1024_allows_more_than_the_old_default_of_15() -> None:
    assert machine_capacity(Limits(open_files=1024, processes=None)) == (1024 - 256) // 7 > 15


def test_the_smallest_of_machine_and_settings_wins() -> None:
    assert running_cap(500, None, None) == 500
    assert running_cap(500, 200, None) == 200
    assert running_cap(500, None, 16) == 16
    assert running_cap(500, 200, 16) == 16
    assert running_cap(500, 30, 1000) == 30
    assert running_cap(100, 200, 300) == 100  # a setting never lifts the machine's limit


def test_current_limits_reads_the_soft_limits() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    expected = None if soft == resource.RLIM_INFINITY else soft
    assert current_limits().open_files == expected
