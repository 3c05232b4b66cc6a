"""The alert decision, rule by rule, and as a state machine walked by hypothesis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from survivor.alertplan import (
    AlertAction,
    Decision,
    EscalationError,
    attempt_level,
    decide,
    keeps_state,
    next_escalation,
    pick_try,
)
from survivor.errors import StateError
from survivor.model.config import (
    AlertPlan,
    AlertRule,
    AlertTry,
    AlertUsing,
    Schedule,
    ScheduleLine,
    WeekTime,
)
from survivor.model.documents import Ack, AlertState, CheckView, Escalation, Inhibit, Recipient

MON = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)
WEEKDAYS = frozenset(range(5))

SCHEDULES = {
    "every-5m": Schedule("every-5m", (ScheduleLine(every=timedelta(minutes=5)),)),
    "hourly": Schedule("hourly", (ScheduleLine(every=timedelta(hours=1)),)),
    "never": Schedule("never", (ScheduleLine(never=True),)),
    "nightly": Schedule("nightly", (ScheduleLine(at=(WeekTime(2 * 60 + 30),)),)),
    "business": Schedule(
        "business",
        (
            ScheduleLine(
                days=WEEKDAYS,
                start=WeekTime(8 * 60),
                end=WeekTime(17 * 60 + 59),
                every=timedelta(minutes=5),
            ),
            ScheduleLine(never=True),
        ),
    ),
}
RETURNGROUPS = {"problem": frozenset({1, 5})}
ALICE = Recipient("alice", "alice@example.org", "mail", "helpdesk")

A = AlertTry(times=1, alert=("helpdesk",))
FIX = AlertTry(times=1, fix=True, tell=("helpdesk",))
C = AlertTry(alert=("oncall", "admins"), escalated=True)
LADDER = (A, FIX, C)


def make_plan(
    tries: tuple[AlertTry, ...] = LADDER,
    *,
    on: frozenset[int] | None = frozenset({1, 5}),
    after: int = 2,
    schedule: str = "every-5m",
    **kw: Any,
) -> AlertPlan:
    rules = [AlertRule(on, "problem", after, (AlertUsing(schedule, tries),))]
    if on is not None:
        rules.append(AlertRule(None, "default", 3, (AlertUsing("every-5m", (A,)),)))
    return AlertPlan("standard", tuple(rules), **kw)


def view(rc: int, n: int = 2, *, since: datetime = MON, last: datetime | None = None) -> CheckView:
    return CheckView(rc, n, since, last or since, "comment")


def run(
    plan: AlertPlan, check: CheckView, alert: AlertState | None, now: datetime = MON, **kw: Any
) -> Decision:
    kw.setdefault("schedules", SCHEDULES)
    kw.setdefault("returngroups", RETURNGROUPS)
    return decide(plan, check, alert, tz=UTC, now=now, **kw)


def sent(d: Decision, *who: Recipient) -> AlertState:
    """The state the scheduler stores after delivering `d`."""
    assert d.state is not None, d.reason
    return d.state.with_recipients(who or (ALICE,))


# --------------------------------------------------------------------------- rules and after


def test_after_counts_consecutive_results_before_the_first_alert() -> None:
    plan = make_plan()
    d = run(plan, view(1, 1), None)
    assert d.action is AlertAction.NONE
    assert d.reason == "after 2 not yet met (1 in a row)"
    d = run(plan, view(1, 2), None)
    assert d.action is AlertAction.ALERT
    assert (d.alert_lists, d.try_index, d.attempt) == (("helpdesk",), 0, 1)
    assert d.state is not None
    assert (d.state.alerts_sent, d.state.last_alert, d.state.about_rc) == (1, MON, 1)
    assert d.state.status_since == MON


def test_a_later_rule_applies_when_the_first_matching_rule_is_not_met() -> None:
    plan = AlertPlan(
        "p",
        (
            AlertRule(frozenset({1}), "[1]", 5, (AlertUsing("every-5m", (C,)),)),
            AlertRule(None, "default", 1, (AlertUsing("every-5m", (A,)),)),
        ),
    )
    d = run(plan, view(1, 1), None)
    assert d.alert_lists == ("helpdesk",)
    assert run(plan, view(1, 5), None).alert_lists == ("oncall", "admins")


def test_no_rule_for_the_code_means_no_alert() -> None:
    plan = AlertPlan("p", (AlertRule(frozenset({1}), "[1]", 1, (AlertUsing("every-5m", (A,)),)),))
    d = run(plan, view(2, 9), None)
    assert d.action is AlertAction.NONE
    assert "no rule of plan p matches WARNING" in d.reason


# --------------------------------------------------------------------------- using and pacing


def test_every_paces_repeats_from_the_last_alert() -> None:
    plan = make_plan((AlertTry(alert=("helpdesk",)),))
    state = sent(run(plan, view(1), None))
    d = run(plan, view(1, 3), state, MON + 3 * MIN)
    assert d.action is AlertAction.NONE
    assert d.reason == "pacing: next alert at 10:05"
    assert d.idle_state == state
    d = run(plan, view(1, 4), state, MON + 5 * MIN + timedelta(seconds=2))
    assert d.action is AlertAction.ALERT
    assert d.state is not None and d.state.alerts_sent == 2


def test_pacing_counts_from_the_later_of_last_alert_and_last_fix() -> None:
    plan = make_plan()
    state = AlertState(1, MON, alerts_sent=1, fixes_tried=1, last_alert=MON, last_fix=MON + 4 * MIN)
    assert run(plan, view(1), state, MON + 6 * MIN).reason == "pacing: next alert at 10:09"
    assert run(plan, view(1), state, MON + 9 * MIN).action is AlertAction.ALERT


def test_first_using_in_effect_wins_and_never_lines_do_not_count() -> None:
    plan = AlertPlan(
        "p",
        (
            AlertRule(
                None,
                "default",
                1,
                (
                    AlertUsing("business", (A,)),
                    AlertUsing("hourly", (AlertTry(alert=("oncall",)),)),
                ),
            ),
        ),
    )
    assert run(plan, view(1), None, MON).alert_lists == ("helpdesk",)
    saturday = MON + timedelta(days=5)
    assert run(plan, view(1), None, saturday).alert_lists == ("oncall",)


def test_no_using_in_effect_means_no_alert() -> None:
    d = run(make_plan(schedule="never"), view(1), None)
    assert d.action is AlertAction.NONE
    assert d.reason == "no alert schedule in effect (never)"


def test_at_lines_pace_by_occurrence() -> None:
    plan = make_plan((AlertTry(alert=("helpdesk",)),), schedule="nightly")
    first = MON.replace(hour=2, minute=31)
    state = sent(run(plan, view(1), None, first))  # the first alert goes out at once
    d = run(plan, view(1), state, first + timedelta(hours=23, minutes=58))
    assert d.action is AlertAction.NONE and d.reason.startswith("pacing: next alert at the next of")
    d = run(plan, view(1), state, first + timedelta(hours=23, minutes=59))
    assert d.action is AlertAction.ALERT


def test_alert_shift_evaluates_schedules_earlier() -> None:
    plan = make_plan(schedule="business")
    eight = MON.replace(hour=8, minute=0, second=30)
    assert run(plan, view(1), None, eight).action is AlertAction.ALERT
    d = run(plan, view(1), None, eight, shift=timedelta(seconds=60))
    assert d.reason == "no alert schedule in effect (business)"


# --------------------------------------------------------------------------- the ladder


def test_the_ladder_walks_alert_fix_then_the_catch_all() -> None:
    plan = make_plan()
    d1 = run(plan, view(1), None, has_fix=True)
    assert (d1.action, d1.attempt, d1.escalated) == (AlertAction.ALERT, 1, False)
    s1 = sent(d1)
    d2 = run(plan, view(1, 3), s1, MON + 5 * MIN, has_fix=True)
    assert (d2.action, d2.try_index, d2.tell_lists, d2.alert_lists) == (
        AlertAction.FIX,
        1,
        ("helpdesk",),
        (),
    )
    assert d2.state is not None
    assert (d2.state.fixes_tried, d2.state.last_fix) == (1, MON + 5 * MIN)
    s2 = d2.state.with_fix_result(ok=False)
    for k in (2, 3):
        d = run(plan, view(1, 9), s2, MON + 5 * k * MIN, has_fix=True)
        assert (d.action, d.alert_lists, d.escalated) == (
            AlertAction.ALERT,
            ("oncall", "admins"),
            True,
        )
        s2 = sent(d)


def test_fix_tries_are_skipped_without_a_fix() -> None:
    plan = make_plan()
    s1 = sent(run(plan, view(1), None))
    d = run(plan, view(1), s1, MON + 5 * MIN, has_fix=False)
    assert (d.action, d.try_index, d.attempt) == (AlertAction.ALERT, 2, 2)


def test_a_fix_try_that_also_alerts_keeps_its_alert_without_a_fix() -> None:
    both = AlertTry(fix=True, alert=("admins",), tell=("helpdesk",))
    assert pick_try((both,), 1, has_fix=False) == (0, both)
    d = run(make_plan((both,)), view(1), None, has_fix=False)
    assert (d.action, d.alert_lists, d.tell_lists) == (AlertAction.ALERT, ("admins",), ())


def test_times_cover_attempts_cumulatively_and_the_ladder_can_run_out() -> None:
    tries = (AlertTry(times=2, alert=("a",)), AlertTry(times=1, alert=("b",)))
    assert [pick_try(tries, n, has_fix=False) for n in (1, 2, 3)] == [
        (0, tries[0]),
        (0, tries[0]),
        (1, tries[1]),
    ]
    assert pick_try(tries, 4, has_fix=False) is None
    state = AlertState(1, MON, alerts_sent=3, last_alert=MON)
    d = run(make_plan(tries), view(1), state, MON + timedelta(hours=1))
    assert d.action is AlertAction.NONE and d.reason == "all tries used (3 attempts for PROBLEM)"


def test_escalated_defaults_to_the_second_rung() -> None:
    tries = (AlertTry(times=1, alert=("a",)), AlertTry(alert=("b",)))
    s1 = sent(run(make_plan(tries), view(1), None))
    assert s1.escalated is False
    d = run(make_plan(tries), view(1), s1, MON + 5 * MIN)
    assert d.escalated is True and d.state is not None and d.state.escalated


# --------------------------------------------------------------------------- degraded mode


def test_degraded_mode_waits_for_other_failing_hosts() -> None:
    tries = (AlertTry(alert=("helpdesk",), allow_failed_hosts=1),)
    d = run(make_plan(tries), view(1), None, failing_peers=0)
    assert d.action is AlertAction.NONE
    assert d.reason == "degraded mode: 0 of 1 other hosts failing"
    assert run(make_plan(tries), view(1), None, failing_peers=1).action is AlertAction.ALERT


def test_degraded_mode_is_off_outside_its_schedule() -> None:
    tries = (AlertTry(alert=("helpdesk",), allow_failed_hosts=2, during="business"),)
    saturday = MON + timedelta(days=5)
    assert run(make_plan(tries), view(1), None, MON).action is AlertAction.NONE
    assert run(make_plan(tries), view(1), None, saturday).action is AlertAction.ALERT


# --------------------------------------------------------------------------- ack, inhibit


def test_an_acknowledgement_holds_until_the_code_changes() -> None:
    plan = make_plan()
    state = sent(run(plan, view(1), None))
    ack = Ack("alice", "looking", MON, about_rc=1)
    d = run(plan, view(1, 9), state, MON + timedelta(hours=2), ack=ack)
    assert (d.action, d.reason, d.drop_ack) == (AlertAction.NONE, "acknowledged by alice", False)
    d = run(plan, view(2, 3), state, MON + timedelta(hours=2), ack=ack)
    assert d.reset and d.drop_ack
    assert d.action is AlertAction.ALERT  # the default rule, afresh: attempt 1
    assert d.attempt == 1 and d.state is not None and d.state.alerts_sent == 1


def test_an_acknowledgement_before_any_alert_is_about_its_own_code() -> None:
    plan = make_plan()
    ack = Ack("alice", "known", MON, about_rc=1)
    assert run(plan, view(1), None, ack=ack).reason == "acknowledged by alice"
    d = run(plan, view(2, 3), None, ack=ack)
    assert d.drop_ack and d.action is AlertAction.ALERT


def test_an_acknowledgement_survives_changes_the_plan_keeps() -> None:
    plan = make_plan(keep_state_on=frozenset({4}))
    state = sent(run(plan, view(1), None))
    ack = Ack("alice", "", MON, about_rc=1)
    d = run(plan, view(4, 1), state, MON + timedelta(hours=1), ack=ack)
    assert d.reason == "acknowledged by alice" and not d.drop_ack and not d.reset


def test_an_inhibition_holds_until_removed_or_its_end() -> None:
    plan = make_plan()
    inhibit = Inhibit("bob", "maintenance", MON, until=MON + timedelta(hours=1))
    d = run(plan, view(1), None, MON + 10 * MIN, inhibit=inhibit)
    assert d.action is AlertAction.NONE and d.reason == "inhibited by bob until 11:00"
    d = run(plan, view(1), None, MON + timedelta(hours=1), inhibit=inhibit)
    assert d.action is AlertAction.ALERT and d.drop_inhibit


def test_an_inhibition_survives_code_changes() -> None:
    plan = make_plan()
    state = sent(run(plan, view(1), None))
    inhibit = Inhibit("bob", "", MON)
    d = run(plan, view(2, 5), state, MON + timedelta(hours=3), inhibit=inhibit)
    assert d.reset and d.action is AlertAction.RESET and not d.drop_inhibit
    assert "inhibited by bob" in d.reason


# --------------------------------------------------------------------------- special codes


def test_depend_never_alerts_and_never_resets() -> None:
    plan = make_plan()
    state = sent(run(plan, view(1), None))
    ack = Ack("alice", "", MON, about_rc=1)
    d = run(plan, view(6, 9), state, MON + timedelta(hours=1), ack=ack)
    assert d.action is AlertAction.NONE and d.idle_state == state
    assert not (d.reset or d.drop_ack or d.drop_escalate)


def test_notyet_never_alerts() -> None:
    plan = make_plan(on=None, after=1)
    d = run(plan, view(7, 9), None)
    assert d.action is AlertAction.NONE and "NOTYET" in d.reason


def test_codes_above_1000_are_ignored() -> None:
    d = run(make_plan(on=None, after=1), view(1001, 9), None)
    assert d.action is AlertAction.NONE and "ignored" in d.reason


# --------------------------------------------------------------------------- state reset


def test_a_code_change_resets_the_ladder() -> None:
    plan = make_plan(on=None, after=1)
    state = AlertState(1, MON, alerts_sent=3, last_alert=MON, try_index=2, last_recipients=(ALICE,))
    d = run(plan, view(2, 1), state, MON + MIN, escalate_to=5)
    assert d.reset and d.drop_escalate
    assert d.action is AlertAction.ALERT and d.attempt == 1
    assert d.idle_state is None
    assert d.state is not None and d.state.status_since == MON and d.state.about_rc == 2


def test_keep_state_on_and_returngroups_keep_the_ladder() -> None:
    plan = make_plan(
        on=None, after=1, keep_state_on=frozenset({4}), clear_honors_returngroups=("problem",)
    )
    assert keeps_state(plan, RETURNGROUPS, 1, 4) and keeps_state(plan, RETURNGROUPS, 4, 2)
    assert keeps_state(plan, RETURNGROUPS, 1, 5)
    assert not keeps_state(plan, RETURNGROUPS, 1, 2)
    assert not keeps_state(plan, RETURNGROUPS, 4, 0)  # to OK always clears
    state = AlertState(1, MON, alerts_sent=1, last_alert=MON)
    d = run(plan, view(5, 1), state, MON + 10 * MIN)
    assert not d.reset and d.attempt == 2


# --------------------------------------------------------------------------- recovery and clear


def alerted(plan: AlertPlan) -> AlertState:
    return sent(run(plan, view(1), None))


def test_a_clear_notice_goes_to_the_last_recipients() -> None:
    plan = make_plan(notify_on_clear=True)
    state = alerted(plan)
    d = run(plan, view(0, 1), state, MON + 7 * MIN)
    assert d.action is AlertAction.CLEAR
    assert d.clear_recipients == (ALICE,)
    assert d.state is None and d.idle_state is None


def test_a_clear_notice_goes_to_everyone_told_including_a_fix_try_tell() -> None:
    # issue 19: try 1 -> carol, a fix try telling alice (and carol again via another list):
    # the clear goes to both, once each.
    carol = Recipient("carol", "carol@example.org", "mail", "helpdesk")
    carol_admins = Recipient("carol", "carol@example.org", "mail", "admins")
    admin_alice = Recipient("alice", "alice@example.org", "mail", "admins")
    plan = make_plan(notify_on_clear=True)
    state = sent(run(plan, view(1), None), carol).with_told([admin_alice, carol_admins])
    d = run(plan, view(0, 1), state, MON + 7 * MIN)
    assert d.action is AlertAction.CLEAR
    assert d.clear_recipients == (carol, admin_alice)


def test_recovery_after_waits_for_ok_results_in_a_row_and_survives_a_flap() -> None:
    plan = make_plan(notify_on_clear=True, recovery_after=2)
    state = alerted(plan)
    d = run(plan, view(0, 1), state, MON + 6 * MIN)
    assert d.action is AlertAction.NONE and d.reason == "recovering: 1 of 2 OK results in a row"
    assert d.idle_state is not None and d.idle_state.ok_streak == 1
    # it fails again: the same problem, the ladder goes on (after 2 is met again later)
    d = run(plan, view(1, 2), d.idle_state, MON + 8 * MIN)
    assert not d.reset and d.attempt == 2
    d = run(plan, view(0, 2), state, MON + 9 * MIN)
    assert d.action is AlertAction.CLEAR


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"ack": Ack("alice", "", MON, 1)}, "acknowledged by alice"),
        ({"inhibit": Inhibit("bob", "", MON)}, "inhibited by bob"),
    ],
)
def test_no_clear_notice_when_silenced(kw: dict[str, Any], why: str) -> None:
    plan = make_plan(notify_on_clear=True)
    d = run(plan, view(0, 1), alerted(plan), MON + MIN, **kw)
    assert d.action is AlertAction.RESET and why in d.reason
    assert d.drop_ack == ("ack" in kw) and not d.drop_inhibit


def test_no_clear_notice_unless_the_plan_asks_and_its_schedule_is_in_effect() -> None:
    assert run(make_plan(), view(0, 1), alerted(make_plan()), MON).action is AlertAction.RESET
    plan = make_plan(notify_on_clear=True, clear_schedule="business")
    state = alerted(plan)
    assert run(plan, view(0, 1), state, MON).action is AlertAction.CLEAR
    d = run(plan, view(0, 1), state, MON.replace(hour=20))
    assert d.action is AlertAction.RESET and "clear schedule business" in d.reason


def test_no_clear_notice_when_nothing_was_sent() -> None:
    plan = make_plan(notify_on_clear=True)
    d = run(plan, view(0, 1), AlertState(1, MON), MON, ack=Ack("a", "", MON, 1))
    assert d.action is AlertAction.RESET and d.drop_ack
    assert run(plan, view(0, 1), None, MON).action is AlertAction.NONE


def test_a_successful_fix_waits_for_its_re_check() -> None:
    plan = make_plan(notify_on_clear=True)
    fix_at = MON + 5 * MIN
    state = AlertState(
        1,
        MON,
        alerts_sent=1,
        fixes_tried=1,
        last_alert=MON,
        last_fix=fix_at,
        last_recipients=(ALICE,),
        pending_fix_confirm=True,
    )
    before = view(0, 1, last=fix_at - MIN)
    d = run(plan, before, state, fix_at + MIN)
    assert (
        d.action is AlertAction.NONE
        and d.reason == "waiting for the re-check after the fix at 10:05"
    )
    d = run(plan, view(1, 5, last=fix_at - MIN), state, fix_at + 30 * MIN, has_fix=True)
    assert d.action is AlertAction.NONE and d.reason.startswith("waiting for the re-check")
    assert run(plan, view(0, 1, last=fix_at + MIN), state, fix_at + MIN).action is AlertAction.CLEAR
    d = run(plan, view(1, 5, last=fix_at + MIN), state, fix_at + 5 * MIN, has_fix=True)
    assert d.action is AlertAction.ALERT and d.attempt == 3
    assert d.idle_state is not None and not d.idle_state.pending_fix_confirm


# --------------------------------------------------------------------------- manual escalation


def test_escalate_jumps_to_the_next_rung_at_once() -> None:
    tries = (
        AlertTry(times=2, alert=("a",)),
        AlertTry(times=1, alert=("b",)),
        AlertTry(alert=("c",)),
    )
    plan = make_plan(tries)
    s1 = sent(run(plan, view(1), None))
    level = next_escalation(plan, view(1), s1, schedules=SCHEDULES, tz=UTC, now=MON + MIN)
    assert level == 2
    d = run(plan, view(1), s1, MON + MIN, escalate_to=level)  # pacing would say 10:05
    assert (d.action, d.alert_lists, d.attempt) == (AlertAction.ALERT, ("b",), 3)
    s2 = sent(d)
    assert attempt_level(s2) == 3
    d = run(plan, view(1), s2, MON + 6 * MIN, escalate_to=level)
    assert d.alert_lists == ("c",)  # not "b" again
    with pytest.raises(EscalationError, match="Already at maximum escalation level"):
        next_escalation(plan, view(1), sent(d), schedules=SCHEDULES, tz=UTC, now=MON)


def test_escalate_needs_a_problem() -> None:
    with pytest.raises(EscalationError, match="nothing to escalate"):
        next_escalation(make_plan(), view(0), None, schedules=SCHEDULES, tz=UTC, now=MON)


# --------------------------------------------------------------------------- stored documents


def test_documents_round_trip_and_check_their_version() -> None:
    state = AlertState(
        1,
        MON,
        alerts_sent=2,
        fixes_tried=1,
        try_index=1,
        last_alert=MON,
        last_fix=MON + MIN,
        last_recipients=(ALICE,),
        escalated=True,
        manual_escalation=3,
        pending_fix_confirm=True,
        ok_streak=1,
    )
    assert AlertState.from_dict(state.to_dict()) == state
    assert state.to_dict()["about_code"] == "PROBLEM"
    for doc in (
        Ack("a", "c", MON, 2),
        Inhibit("b", "", MON, MON + MIN),
        Inhibit("b", "", MON),
        Escalation("c", "", MON, 3),
    ):
        assert type(doc).from_dict(doc.to_dict()) == doc
    with pytest.raises(StateError, match="version 2"):
        AlertState.from_dict({**state.to_dict(), "version": 2})
    with pytest.raises(StateError, match="malformed"):
        Ack.from_dict({"version": 1, "user": "x"})


# --------------------------------------------------------------------------- the state machine

PLAN = make_plan(
    on=frozenset({1, 5}),
    after=2,
    notify_on_clear=True,
    recovery_after=2,
    keep_state_on=frozenset({4}),
    clear_honors_returngroups=("problem",),
)
EVERY = timedelta(minutes=5)


class AlertMachine(RuleBasedStateMachine):
    """A check@host over time: results, operator actions and alert ticks.

    Each tick stores what the decision says, as the alert scheduler would,
    and checks the decision against the rules it must never break.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = MON
        self.check = CheckView(0, 5, MON - timedelta(hours=1), MON - MIN)
        self.alert: AlertState | None = None
        self.ack: Ack | None = None
        self.inhibit: Inhibit | None = None
        self.escalate_to: int | None = None
        self.has_fix = True
        self.problem_actions: list[Decision] = []  # actions since the last reset or clear
        self.recipients_seen: tuple[Recipient, ...] = ()
        self.cleared = False  # a clear notice went out and nobody was alerted since

    @initialize(rc=st.sampled_from([0, 1, 1, 2]), n=st.integers(1, 3))
    def start(self, rc: int, n: int) -> None:
        self.check = CheckView(rc, n, self.now, self.now)

    @rule(minutes=st.integers(1, 12), delivered=st.booleans(), fix_ok=st.booleans())
    def minutes_pass(self, minutes: int, delivered: bool, fix_ok: bool) -> None:
        """The alert scheduler ticks once a minute; deliveries fail or succeed in runs."""
        for _ in range(minutes):
            self.now += MIN
            self.tick(delivered, fix_ok)

    @rule(hours=st.integers(1, 6))
    def downtime(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(rc=st.sampled_from([0, 0, 1, 1, 1, 2, 4, 5, 6, 7]), repeat=st.integers(1, 3))
    def results(self, rc: int, repeat: int) -> None:
        for _ in range(repeat):
            c = self.check
            if rc == c.rc:
                self.check = replace(c, consecutive=c.consecutive + 1, last_start=self.now)
            else:
                self.check = CheckView(rc, 1, self.now, self.now)

    @rule(
        action=st.sampled_from(
            ["ack", "ack", "unack", "inhibit", "inhibit-1h", "uninhibit", "escalate"]
        )
    )
    def operator(self, action: str) -> None:
        """What `survivor ack/unack/inhibit/uninhibit/escalate` would write or remove."""
        if action == "ack" and self.check.rc not in (0, 6) and self.ack is None:
            self.ack = Ack("alice", "", self.now, self.check.rc)
        elif action == "unack":
            self.ack = None
        elif action.startswith("inhibit"):
            until = self.now + timedelta(hours=1) if action == "inhibit-1h" else None
            self.inhibit = Inhibit("bob", "", self.now, until)
        elif action == "uninhibit":
            self.inhibit = None
        elif action == "escalate":
            try:
                self.escalate_to = next_escalation(
                    PLAN,
                    self.check,
                    self.alert,
                    escalate_to=self.escalate_to,
                    schedules=SCHEDULES,
                    tz=UTC,
                    now=self.now,
                    has_fix=self.has_fix,
                )
            except EscalationError:
                pass

    def tick(self, delivered: bool, fix_ok: bool) -> None:
        before = self.alert
        level_before = attempt_level(before)
        d = decide(
            PLAN,
            self.check,
            self.alert,
            ack=self.ack,
            inhibit=self.inhibit,
            escalate_to=self.escalate_to,
            returngroups=RETURNGROUPS,
            schedules=SCHEDULES,
            tz=UTC,
            now=self.now,
            has_fix=self.has_fix,
        )
        event(f"{d.action.value}{' after reset' if d.reset else ''}")
        rc = self.check.rc
        sends = d.action in (AlertAction.ALERT, AlertAction.FIX, AlertAction.CLEAR)
        inhibited = self.inhibit is not None and self.inhibit.active(self.now)
        assert not (sends and inhibited), d
        if sends and self.ack is not None:
            assert d.drop_ack, d  # only a stale acknowledgement may be passed over
        if rc == 6:
            assert d.action is AlertAction.NONE and d.idle_state == before
            assert not (d.reset or d.drop_ack or d.drop_escalate)
        if rc == 7:
            assert d.action in (AlertAction.NONE, AlertAction.RESET)
        if d.action is AlertAction.CLEAR:
            assert before is not None and before.last_recipients
            assert d.clear_recipients == before.last_recipients == self.recipients_seen
            assert rc == 0 and self.check.consecutive >= PLAN.recovery_after
            assert not self.cleared, "a second clear notice for one problem"
            self.cleared = True
        if before is not None and rc not in (0, 6) and rc <= 1000:
            changed = not keeps_state(PLAN, RETURNGROUPS, before.about_rc, rc)
            assert d.reset == changed, (before.about_rc, rc, d)
        if d.reset or d.action in (AlertAction.CLEAR, AlertAction.RESET):
            self.problem_actions = []
        if d.action in (AlertAction.ALERT, AlertAction.FIX):
            assert d.state is not None and d.attempt is not None and d.try_index is not None
            pending_escalation = (self.escalate_to or 0) > level_before and not d.reset
            if self.problem_actions:
                prev = self.problem_actions[-1]
                assert prev.state is not None and prev.attempt is not None
                assert prev.try_index is not None
                assert d.attempt > prev.attempt and d.try_index >= prev.try_index
                last = prev.state.last_action
                assert last is not None
                if not pending_escalation:  # pacing: never more often than `every`
                    assert self.now.replace(second=0) - last.replace(second=0) >= EVERY
            if delivered:
                self.cleared = False
                self.problem_actions.append(d)
                self.recipients_seen = (
                    (Recipient("p", f"{d.attempt}@x", "mail", "l"),)
                    if d.alert_lists or d.tell_lists
                    else self.recipients_seen
                )
        self.store(d, delivered, fix_ok)

    def store(self, d: Decision, delivered: bool, fix_ok: bool) -> None:
        if d.action in (AlertAction.ALERT, AlertAction.FIX) and delivered:
            assert d.state is not None
            state = d.state
            if d.alert_lists or d.tell_lists:
                state = state.with_recipients(self.recipients_seen)
            if d.action is AlertAction.FIX:
                state = state.with_fix_result(fix_ok)
            self.alert = state
        elif d.action in (AlertAction.CLEAR, AlertAction.RESET):
            self.alert = None
        else:
            self.alert = d.idle_state
        if self.alert is None:
            self.recipients_seen = ()
        if d.drop_ack:
            self.ack = None
        if d.drop_inhibit:
            self.inhibit = None
        if d.drop_escalate:
            self.escalate_to = None

    @invariant()
    def stored_state_is_about_a_problem(self) -> None:
        if self.alert is not None:
            assert self.alert.about_rc not in (0, 6, 7)
            assert AlertState.from_dict(self.alert.to_dict()) == self.alert


AlertMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAlertMachine = AlertMachine.TestCase
