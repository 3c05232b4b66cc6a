"""The timeout heap of the check loop: earliest first, re-arming replaces, stale entries go."""

from __future__ import annotations

from survivor.work.timeouts import COMPACT_SLACK, Timeouts


def test_due_returns_the_owners_whose_time_came_earliest_first() -> None:
    t: Timeouts[str] = Timeouts()
    t.arm("late", 30.0)
    t.arm("early", 10.0)
    t.arm("middle", 20.0)
    assert t.next_at() == 10.0
    assert t.due(5.0) == []
    assert t.due(20.0) == ["early", "middle"]
    assert t.next_at() == 30.0 and len(t) == 1


def test_re_arming_replaces_the_earlier_time_either_way() -> None:
    t: Timeouts[str] = Timeouts()
    t.arm("run", 45.0)  # its timeout
    t.arm("run", 2.5)  # it exited: the linger ends sooner
    assert t.next_at() == 2.5
    assert t.due(3.0) == ["run"]
    assert t.due(50.0) == []  # the 45 s entry went stale: not returned a second time
    t.arm("other", 5.0)
    t.arm("other", 60.0)  # later than before: the 5 s entry must not wake anyone
    assert t.due(10.0) == [] and t.next_at() == 60.0


def test_a_disarmed_owner_is_never_due() -> None:
    t: Timeouts[str] = Timeouts()
    t.arm("done", 1.0)
    t.disarm("done")
    assert t.next_at() is None and t.due(100.0) == [] and len(t) == 0


def test_a_due_owner_is_disarmed_and_can_be_armed_again() -> None:
    t: Timeouts[str] = Timeouts()
    t.arm("run", 1.0)
    assert t.due(1.0) == ["run"]
    t.arm("run", 1.0)  # the same time again after it fired: armed anew, not skipped
    assert t.due(1.0) == ["run"]


def test_stale_entries_do_not_pile_up() -> None:
    t: Timeouts[int] = Timeouts()
    for n in range(10):
        t.arm(n, 1000.0)
    for round_ in range(1000):  # a run re-armed over and over with new times
        t.arm(0, float(round_))
    assert len(t._heap) <= 2 * len(t) + COMPACT_SLACK + 1
    assert t.due(999.0) == [0]


def test_arming_the_same_time_again_adds_no_entry() -> None:
    t: Timeouts[str] = Timeouts()
    t.arm("chatty", 45.0)
    for _ in range(100):  # every output event looks at the run; its deadline stays
        t.arm("chatty", 45.0)
    assert len(t._heap) == 1
