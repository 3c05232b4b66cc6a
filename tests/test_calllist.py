"""Call lists: round robin, broadcast, rotation (with downtime), substitutions, config edits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from survivor.calllist import SubstitutionError, resolution, resolve, state_name, with_substitution
from survivor.errors import StateError
from survivor.model.config import AlertMethod, CallList, Person, Schedule, ScheduleLine, WeekTime
from survivor.model.documents import CallListState, Recipient, Substitution

MON = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, after 09:00
WEEK = timedelta(days=7)
METHODS = {
    "mail": AlertMethod("mail", "plain", "mail"),
    "page": AlertMethod("page", "short", "webhook"),
}
PEOPLE = {
    name: Person(name, {"mail": f"{name}@example.org", "page": f"+1555{i:04d}"})
    for i, name in enumerate(["alice", "bob", "carol", "dave"])
}
PEOPLE["erin"] = Person("erin", {"mail": "erin@example.org"})  # no pager
ROTATE_MONDAY = Schedule("rotate-monday", (ScheduleLine(at=(WeekTime(9 * 60, day=0),)),))


def names(recipients: list[Recipient]) -> list[str]:
    return [r.person for r in recipients]


def notify(
    cl: CallList,
    state: CallListState | None,
    now: datetime = MON,
    *,
    target: CallList | None = None,
) -> tuple[list[Recipient], CallListState]:
    return resolve(
        cl,
        state,
        PEOPLE,
        METHODS,
        rotation_schedule=ROTATE_MONDAY,
        tz=UTC,
        now=now,
        target=target,
    )


# --------------------------------------------------------------------------- simple


def test_simple_lists_hand_each_notification_to_the_next_member() -> None:
    cl = CallList("helpdesk", ("alice", "bob", "carol"), "mail")
    state = None
    got = []
    for _ in range(5):
        recipients, state = notify(cl, state)
        got += names(recipients)
    assert got == ["alice", "bob", "carol", "alice", "bob"]
    assert state is not None and state.last_notified == "bob"
    assert recipients == [Recipient("bob", "bob@example.org", "mail", "helpdesk")]


def test_simple_lists_remember_persons_across_reordering() -> None:
    cl = CallList("helpdesk", ("alice", "bob", "carol"), "mail")
    _, state = notify(cl, CallListState(last_notified="alice"))
    assert state.last_notified == "bob"
    reordered = CallList("helpdesk", ("carol", "bob", "alice"), "mail")
    assert names(notify(reordered, state)[0]) == ["alice"]  # the one after bob, now


def test_a_removed_last_notified_person_is_followed_by_their_old_successor() -> None:
    cl = CallList("helpdesk", ("alice", "bob", "carol", "dave"), "mail")
    _, state = notify(cl, CallListState(last_notified="alice"))  # bob got it
    edited = CallList("helpdesk", ("alice", "carol", "dave"), "mail")
    recipients, state = notify(edited, state)
    assert names(recipients) == ["carol"]
    assert state.members == ("alice", "carol", "dave")
    # nobody of the old list left: start at the top
    fresh = CallList("helpdesk", ("erin", "dave"), "mail")
    gone = CallListState(last_notified="zed", members=("zed",))
    assert names(notify(fresh, gone)[0]) == ["erin"]


def test_a_member_without_an_address_is_skipped_with_the_reason() -> None:
    cl = CallList("pager", ("alice", "erin", "bob"), "page")
    res = resolution(
        cl,
        CallListState(last_notified="alice"),
        PEOPLE,
        METHODS,
        rotation_schedule=None,
        tz=UTC,
        now=MON,
    )
    assert [r.person for r in res.recipients] == ["bob"]
    assert res.skipped == ("erin has no address for page",)
    assert res.state.last_notified == "bob"


def test_an_undefined_method_reaches_nobody_and_says_so() -> None:
    cl = CallList("x", ("alice",), "sms")
    res = resolution(cl, None, PEOPLE, METHODS, rotation_schedule=None, tz=UTC, now=MON)
    assert res.recipients == ()
    assert res.skipped == ("alice: alert method sms is not defined",)


# --------------------------------------------------------------------------- broadcast


def test_broadcast_lists_notify_everyone_and_keep_no_position() -> None:
    cl = CallList("admins", ("alice", "bob"), "mail", broadcast=True)
    recipients, state = notify(cl, None)
    assert names(recipients) == ["alice", "bob"]
    again, state2 = notify(cl, state)
    assert names(again) == ["alice", "bob"]
    assert state2 == state and state.last_notified is None and state.on_call is None


def test_broadcast_substitution_replaces_that_member_once() -> None:
    cl = CallList("admins", ("alice", "bob", "carol"), "mail", broadcast=True)
    subs = (
        Substitution("dave", "bob", MON + timedelta(hours=1)),
        Substitution("carol", "alice", MON + timedelta(hours=1)),  # carol is a member already
    )
    recipients, _ = notify(cl, CallListState(substitutions=subs))
    assert names(recipients) == ["carol", "dave"]


# --------------------------------------------------------------------------- rotating


def test_rotation_starts_at_the_top_and_advances_on_each_at_time() -> None:
    cl = CallList("oncall", ("alice", "bob", "carol"), "page", rotate="rotate-monday")
    recipients, state = notify(cl, None)
    assert names(recipients) == ["alice"]
    assert (state.on_call, state.last_rotation) == ("alice", MON)
    recipients, state2 = notify(cl, state, MON + timedelta(days=3))  # same week
    assert names(recipients) == ["alice"] and state2 == state
    recipients, state3 = notify(cl, state, MON + WEEK)  # next Monday 10:00
    assert names(recipients) == ["bob"]
    assert (state3.on_call, state3.last_rotation) == ("bob", MON + WEEK)
    assert recipients[0] == Recipient("bob", "+15550001", "page", "oncall")


def test_rotation_counts_the_mondays_missed_during_downtime() -> None:
    cl = CallList("oncall", ("alice", "bob", "carol", "dave"), "page", rotate="rotate-monday")
    state = CallListState(on_call="alice", last_rotation=MON, members=cl.members)
    res = resolution(
        cl,
        state,
        PEOPLE,
        METHODS,
        rotation_schedule=ROTATE_MONDAY,
        tz=UTC,
        now=MON + 3 * WEEK + timedelta(hours=2),
    )
    assert res.rotated == 3
    assert [r.person for r in res.recipients] == ["dave"]
    assert res.state.on_call == "dave"


def test_a_removed_on_call_person_hands_over_to_their_old_successor() -> None:
    old = CallList("oncall", ("alice", "bob", "carol"), "page", rotate="rotate-monday")
    state = CallListState(on_call="bob", last_rotation=MON, members=old.members)
    edited = CallList("oncall", ("carol", "alice"), "page", rotate="rotate-monday")
    recipients, state = notify(edited, state, MON + timedelta(hours=1))
    assert names(recipients) == ["carol"] and state.on_call == "carol"
    recipients, state = notify(edited, state, MON + WEEK)
    assert names(recipients) == ["alice"]


def test_an_on_call_person_set_by_hand_starts_the_count_now() -> None:
    cl = CallList("oncall", ("alice", "bob", "carol"), "page", rotate="rotate-monday")
    recipients, state = notify(cl, CallListState(on_call="carol"), MON + WEEK)
    assert names(recipients) == ["carol"] and state.last_rotation == MON + WEEK


def test_a_rotating_list_needs_its_schedule() -> None:
    cl = CallList("oncall", ("alice",), "page", rotate="rotate-monday")
    with pytest.raises(ValueError, match="rotate-monday"):
        resolve(cl, None, PEOPLE, METHODS, rotation_schedule=None, tz=UTC, now=MON)


# --------------------------------------------------------------------------- substitutions


def test_substitutions_apply_to_the_chosen_person_until_they_expire() -> None:
    cl = CallList("oncall", ("alice", "bob"), "page", rotate="rotate-monday")
    until = MON + timedelta(days=2)
    sub = Substitution("carol", "alice", until, by="root", at=MON)
    state = CallListState(
        on_call="alice", last_rotation=MON, substitutions=(sub,), members=cl.members
    )
    recipients, kept = notify(cl, state, MON + timedelta(days=1))
    assert names(recipients) == ["carol"]
    assert kept.on_call == "alice" and kept.substitutions == (sub,)
    recipients, pruned = notify(cl, state, until)
    assert names(recipients) == ["alice"]
    assert pruned.substitutions == ()


def test_a_substitution_for_someone_else_changes_nothing() -> None:
    cl = CallList("helpdesk", ("alice", "bob"), "mail")
    sub = Substitution("carol", "bob", MON + WEEK)
    recipients, state = notify(cl, CallListState(substitutions=(sub,)))
    assert names(recipients) == ["alice"] and state.last_notified == "alice"
    recipients, state = notify(cl, state)
    assert names(recipients) == ["carol"] and state.last_notified == "bob"


def test_with_substitution_validates_and_prunes() -> None:
    cl = CallList("oncall", ("alice", "bob"), "page", rotate="rotate-monday")
    expired = Substitution("dave", "bob", MON - timedelta(hours=1))
    state = CallListState(on_call="alice", substitutions=(expired,))
    sub = Substitution("carol", "alice", MON + WEEK, by="root", at=MON)
    new = with_substitution(state, sub, cl, PEOPLE, now=MON)
    assert new.substitutions == (sub,) and new.on_call == "alice"
    bad = [
        (Substitution("carol", "zed", MON + WEEK), "zed is not a member"),
        (Substitution("zed", "alice", MON + WEEK), "zed is not a defined person"),
        (Substitution("erin", "alice", MON + WEEK), "erin has no address for page"),
        (Substitution("carol", "alice", MON), "which is past"),
    ]
    for s, message in bad:
        with pytest.raises(SubstitutionError, match=message):
            with_substitution(state, s, cl, PEOPLE, now=MON)


# --------------------------------------------------------------------------- aliases, state


def test_alias_lists_share_the_target_state_but_use_their_own_method() -> None:
    target = CallList("oncall", ("alice", "bob"), "page", rotate="rotate-monday")
    alias = CallList("oncall-mail", (), "mail", alias_of="oncall")
    assert state_name(alias) == "oncall" and state_name(target) == "oncall"
    _, state = notify(target, None)
    recipients, state2 = notify(alias, state, MON + WEEK, target=target)
    assert recipients == [Recipient("bob", "bob@example.org", "mail", "oncall-mail")]
    assert state2.on_call == "bob"  # the shared rotation moved on


def test_state_round_trips_and_checks_its_version() -> None:
    state = CallListState(
        on_call="bob",
        last_rotation=MON,
        last_notified="alice",
        substitutions=(Substitution("carol", "bob", MON + WEEK, by="root", at=MON),),
        members=("alice", "bob"),
    )
    assert CallListState.from_dict(state.to_dict()) == state
    with pytest.raises(StateError, match="version"):
        CallListState.from_dict({"version": 9})
    with pytest.raises(StateError, match="malformed"):
        CallListState.from_dict({"version": 1, "substitutions": [{"person": "x"}]})
