"""Operator actions against a scratch state and history tree, and --until time parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survivor.actions import calllists, operator, pairs
from survivor.actions.operator import Operator, OpError
from survivor.alerts.fixes import FixRunner
from survivor.calllist import SubstitutionError
from survivor.config import load_config
from survivor.model.config import Config, FsyncPolicy
from survivor.model.documents import Ack, CallListState, CheckState, Escalation, Inhibit, encode
from survivor.proc.modules import runner_for
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.timespec import TimeSpecError, parse_until
from tests.fakes import FakeClock

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday
BERLIN = ZoneInfo("Europe/Berlin")

CONFIG = """\
instance:
  name: t
  state_dir: state
  history_dir: history
  module_dir: {mod}
  timezone: Europe/Berlin
hosts:
  web1: {{}}
  web2: {{}}
  db1: {{}}
classes:
  web: {{hosts: [web1, web2], schedule: every-5m, alertplan: standard}}
  db: {{hosts: [db1], schedule: every-5m}}
schedules:
  every-5m: [{{every: 5m}}]
  always: [{{every: 1m}}]
  rotate-monday: [{{at: ["mon 09:00"]}}]
alerts:
  mail: {{format: plain, transmit: file}}
  page: {{format: short, transmit: file}}
people:
  alice: {{mail: alice@example.org, page: "+15550101"}}
  bob: {{mail: bob@example.org, page: "+15550102"}}
  carol: {{mail: carol@example.org}}
  dave: {{page: "+15550100"}}
calllists:
  helpdesk: {{members: [alice, bob], via: mail}}
  oncall: {{members: [alice, bob], via: mail, rotate: rotate-monday}}
  oncall-page: {{alias: oncall, via: page}}
alertplans:
  standard:
    rules:
      - on: default
        after: 1
        using:
          - schedule: always
            tries:
              - {{times: 1, alert: [helpdesk]}}
              - {{times: 1, fix: true, tell: [helpdesk]}}
              - {{alert: [oncall], escalated: true}}
    keep_state_on: [4]
fixes:
  restart: {{module: ok, timeout: 10s}}
  broken: {{module: fails}}
checks:
  http: {{module: ok, hosts: [web1, web2], fix: restart}}
  smtp: {{module: ok, hosts: [web1], fix: broken}}
  ping: {{module: ok, hosts: [web1, web2, db1]}}
"""


def make_config(tmp_path: Path, scratch: Path) -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(CONFIG.format(mod=scratch / "mod"))
    return load_config(path)


def make_operator(config: Config, user: str | None = None) -> Operator:
    inst = config.instance
    writer = FileWriter(FsyncPolicy.NEVER)
    return Operator(
        config,
        StateStore(inst.state_dir, writer),
        HistoryStore(inst.history_dir, writer),
        user or operator.current_user(),
    )


@pytest.fixture
def op(tmp_path: Path, scratch: Path) -> Operator:
    return make_operator(make_config(tmp_path, scratch))


def set_check(op: Operator, host: str, check: str, rc: int, consecutive: int = 3) -> None:
    since = NOW - timedelta(minutes=15)
    op.state.write_check(
        host,
        check,
        CheckState(
            rc=rc,
            since=since,
            consecutive=consecutive,
            last_start=NOW - timedelta(minutes=1),
            last_planned=NOW - timedelta(minutes=1),
            comment="down",
        ),
    )


def commands(op: Operator, host: str, check: str) -> list[dict[str, object]]:
    return list(op.history.read(host, check, "command"))


def requests(op: Operator) -> list[dict[str, object]]:
    d = op.state.layout.requests
    if not d.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]


def doc(op: Operator, host: str, check: str, name: str) -> dict[str, object] | None:
    return op.state.read_pair_doc(host, check, name)


# --------------------------------------------------------------------------- ack


def test_ack_of_a_failing_check_is_stored_and_recorded_with_the_os_user(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    msg = pairs.ack(op, "web1", "http", comment="looking into it", now=NOW)
    assert msg.startswith("acknowledged web1/http (PROBLEM since ")
    stored = doc(op, "web1", "http", "ack")
    assert stored is not None
    ack = Ack.from_dict(stored)
    assert (ack.user, ack.comment, ack.at, ack.about_rc) == (
        operator.current_user(),
        "looking into it",
        NOW,
        1,
    )
    [record] = commands(op, "web1", "http")
    assert record["user"] == operator.current_user()
    assert (record["command"], record["comment"], record["code"]) == (
        "ack",
        "looking into it",
        "PROBLEM",
    )
    assert doc(op, "web1", "http", "alert") is None  # the ack itself carries the code


def test_current_user_is_the_unix_user() -> None:
    import os
    import pwd

    assert operator.current_user() == pwd.getpwuid(os.getuid()).pw_name


def test_ack_without_a_comment_gets_the_default_excuse(op: Operator) -> None:
    set_check(op, "web1", "http", 2)
    pairs.ack(op, "web1", "http", comment="  ", now=NOW)
    assert commands(op, "web1", "http")[0]["comment"] == "(no reason given)"


@pytest.mark.parametrize(
    ("rc", "words"),
    [(0, "is OK"), (7, "NOTYET"), (6, "DEPEND")],
)
def test_ack_is_refused_unless_failing(op: Operator, rc: int, words: str) -> None:
    set_check(op, "web1", "http", rc)
    with pytest.raises(OpError, match=f"web1/http .*{words}.*nothing to acknowledge"):
        pairs.ack(op, "web1", "http", comment=None, now=NOW)
    assert doc(op, "web1", "http", "ack") is None
    assert commands(op, "web1", "http") == []


def test_ack_is_refused_before_the_first_result(op: Operator) -> None:
    with pytest.raises(OpError, match="web1/http has no result yet"):
        pairs.ack(op, "web1", "http", comment=None, now=NOW)


def test_ack_is_refused_when_already_acknowledged(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment="first", now=NOW)
    with pytest.raises(OpError, match=r"already acknowledged by .*: first"):
        pairs.ack(op, "web1", "http", comment="second", now=NOW)
    assert len(commands(op, "web1", "http")) == 1


def test_a_stale_ack_from_another_code_is_replaced(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment="first", now=NOW)
    set_check(op, "web1", "http", 2)  # the daemon has not dropped the old ack yet
    pairs.ack(op, "web1", "http", comment="second", now=NOW)
    stored = doc(op, "web1", "http", "ack")
    assert stored is not None and stored["about_rc"] == 2


def test_an_ack_kept_across_codes_by_the_plan_still_counts(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment="first", now=NOW)
    set_check(op, "web1", "http", 4)  # keep_state_on: [4]
    with pytest.raises(OpError, match="already acknowledged"):
        pairs.ack(op, "web1", "http", comment="second", now=NOW)


def test_ack_is_refused_while_inhibited(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.inhibit(op, "web1", "http", comment="maintenance", until=None, now=NOW)
    with pytest.raises(OpError, match=r"web1/http is inhibited by .* so it sends no alerts"):
        pairs.ack(op, "web1", "http", comment=None, now=NOW)


@pytest.mark.parametrize(
    ("host", "check", "words"),
    [
        ("nosuch", "http", "no host named 'nosuch'"),
        ("web1", "nosuch", "no check named 'nosuch'"),
        ("db1", "http", "check http does not run on host db1 .*web1, web2"),
    ],
)
def test_actions_on_unconfigured_pairs_are_refused(
    op: Operator, host: str, check: str, words: str
) -> None:
    for action in (pairs.ack, pairs.unack, pairs.uninhibit, pairs.escalate, pairs.reschedule):
        with pytest.raises(OpError, match=words):
            action(op, host, check, comment=None, now=NOW)
    with pytest.raises(OpError, match=words):
        pairs.inhibit(op, host, check, comment=None, until=None, now=NOW)
    assert requests(op) == []


def test_unack_reschedules_and_removes_the_ack(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment=None, now=NOW)
    msg = pairs.unack(op, "web1", "http", comment="fixed by hand", now=NOW)
    assert "rescheduled" in msg
    assert doc(op, "web1", "http", "ack") is None
    [req] = requests(op)
    assert (req["action"], req["host"], req["check"], req["user"]) == (
        "reschedule",
        "web1",
        "http",
        operator.current_user(),
    )
    assert [r["command"] for r in commands(op, "web1", "http")] == ["ack", "unack"]


def test_unack_of_an_unacknowledged_pair_is_refused(op: Operator) -> None:
    with pytest.raises(OpError, match="web1/http is not acknowledged"):
        pairs.unack(op, "web1", "http", comment=None, now=NOW)
    assert requests(op) == []


# --------------------------------------------------------------------------- inhibit


def test_inhibit_is_allowed_while_ok_and_keeps_its_end(op: Operator) -> None:
    set_check(op, "web1", "http", 0)
    until = parse_until("+2h", now=NOW, tz=BERLIN)
    msg = pairs.inhibit(op, "web1", "http", comment="maintenance", until=until, now=NOW)
    assert msg == "inhibited web1/http until 2026-11-24 13:00 CET: maintenance"
    stored = doc(op, "web1", "http", "inhibit")
    assert stored is not None
    assert Inhibit.from_dict(stored).until == NOW + timedelta(hours=2)
    [record] = commands(op, "web1", "http")
    assert record["until"] == "2026-11-24T12:00:00.000Z"


def test_inhibiting_again_replaces_the_inhibition(op: Operator) -> None:
    pairs.inhibit(op, "web1", "http", comment="short", until=NOW + timedelta(hours=1), now=NOW)
    msg = pairs.inhibit(op, "web1", "http", comment="longer", until=None, now=NOW)
    assert "until uninhibited (replaces the inhibition by" in msg
    stored = doc(op, "web1", "http", "inhibit")
    assert stored is not None and stored["until"] is None


def test_inhibit_until_a_past_time_is_refused(op: Operator) -> None:
    with pytest.raises(OpError, match="not in the future"):
        pairs.inhibit(op, "web1", "http", comment=None, until=NOW, now=NOW)


def test_uninhibit_reschedules_and_removes(op: Operator) -> None:
    pairs.inhibit(op, "web1", "http", comment=None, until=None, now=NOW)
    msg = pairs.uninhibit(op, "web1", "http", comment=None, now=NOW)
    assert msg.startswith("uninhibited web1/http (was by ")
    assert doc(op, "web1", "http", "inhibit") is None
    assert [r["action"] for r in requests(op)] == ["reschedule"]
    with pytest.raises(OpError, match="web1/http is not inhibited"):
        pairs.uninhibit(op, "web1", "http", comment=None, now=NOW)


# --------------------------------------------------------------------------- escalate


def test_escalate_walks_the_ladder_to_its_top(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    assert "attempt 2" in pairs.escalate(op, "web1", "http", comment="urgent", now=NOW)
    stored = doc(op, "web1", "http", "escalate")
    assert stored is not None and Escalation.from_dict(stored).level == 1
    assert "attempt 3" in pairs.escalate(op, "web1", "http", comment=None, now=NOW)
    with pytest.raises(OpError, match="Already at maximum escalation level"):
        pairs.escalate(op, "web1", "http", comment=None, now=NOW)
    stored = doc(op, "web1", "http", "escalate")
    assert stored is not None and stored["level"] == 2
    assert [r.get("level") for r in commands(op, "web1", "http")] == [1, 2]


def test_escalate_needs_a_problem_and_a_plan(op: Operator) -> None:
    set_check(op, "web1", "http", 0)
    with pytest.raises(OpError, match="web1/http is OK; nothing to escalate"):
        pairs.escalate(op, "web1", "http", comment=None, now=NOW)
    set_check(op, "db1", "ping", 1)
    with pytest.raises(OpError, match="db1/ping has no alert plan"):
        pairs.escalate(op, "db1", "ping", comment=None, now=NOW)


def test_escalate_says_when_an_ack_keeps_it_quiet(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment=None, now=NOW)
    assert "acknowledged by" in pairs.escalate(op, "web1", "http", comment=None, now=NOW)


# --------------------------------------------------------------------------- reschedule


def test_reschedule_submits_a_request_and_is_recorded(op: Operator) -> None:
    msg = pairs.reschedule(op, "web2", "ping", comment=None, now=NOW)
    assert "the daemon is not running" in msg
    [req] = requests(op)
    assert (req["action"], req["host"], req["check"]) == ("reschedule", "web2", "ping")
    assert commands(op, "web2", "ping")[0]["command"] == "reschedule"


# --------------------------------------------------------------------------- fix


def fixer(op: Operator) -> FixRunner:
    return FixRunner(runner_for(op.config), op.state, op.history, FakeClock(NOW))


def test_a_successful_fix_of_a_failing_check_reschedules_it(op: Operator) -> None:
    set_check(op, "web1", "http", 1)
    pairs.ack(op, "web1", "http", comment=None, now=NOW)  # ignored by a manual fix
    done = pairs.fix(op, "web1", "http", comment="try a restart", runner=fixer(op))
    assert done.outcome.ok and done.rescheduled
    assert done.message.startswith("fix restart on web1/http: OK: fixed web1")
    assert [r["action"] for r in requests(op)] == ["reschedule"]
    record = commands(op, "web1", "http")[-1]
    assert (record["command"], record["fix"], record["code"], record["comment"]) == (
        "fix",
        "restart",
        "OK",
        "try a restart",
    )
    [fixrec] = op.history.read("web1", "http", "fix")
    assert fixrec["by"] == operator.current_user()


def test_a_fix_of_an_ok_check_does_not_reschedule(op: Operator) -> None:
    set_check(op, "web1", "http", 0)
    done = pairs.fix(op, "web1", "http", comment=None, runner=fixer(op))
    assert done.outcome.ok and not done.rescheduled
    assert requests(op) == []


def test_a_failed_fix_does_not_reschedule(op: Operator) -> None:
    set_check(op, "web1", "smtp", 1)
    done = pairs.fix(op, "web1", "smtp", comment=None, runner=fixer(op))
    assert not done.outcome.ok and not done.rescheduled
    assert "PROBLEM: service would not start" in done.message
    assert requests(op) == []


def test_fix_without_a_fix_defined_is_refused(op: Operator) -> None:
    with pytest.raises(OpError, match="check ping has no fix defined"):
        pairs.fix(op, "web1", "ping", comment=None, runner=fixer(op))
    assert commands(op, "web1", "ping") == []


# --------------------------------------------------------------------------- call lists


def test_substitute_puts_a_stand_in_on_call(op: Operator) -> None:
    until = NOW + timedelta(days=1)
    msg = calllists.substitute(
        op, "oncall", "carol", for_person="alice", until=until, comment="holiday", now=NOW
    )
    assert msg.startswith("call list oncall: carol replaces alice until 2026-11-25 11:00 CET")
    view = calllists.show_calllist(op.config, op.state, "oncall", now=NOW)
    assert view["kind"] == "rotating" and view["on_call"] == "alice"
    assert [r["person"] for r in view["recipients_now"]] == ["carol"]
    assert [(s["person"], s["for"], s["active"]) for s in view["substitutions"]] == [
        ("carol", "alice", True)
    ]
    [record] = op.history.read_calllist("oncall")
    assert (record["event"], record["user"], record["comment"]) == (
        "substitute",
        operator.current_user(),
        "holiday",
    )
    later = calllists.show_calllist(op.config, op.state, "oncall", now=until)
    assert [r["person"] for r in later["recipients_now"]] == ["alice"]


def test_a_new_substitution_for_the_same_person_replaces_the_old(op: Operator) -> None:
    until = NOW + timedelta(days=1)
    calllists.substitute(
        op, "helpdesk", "carol", for_person="alice", until=until, comment=None, now=NOW
    )
    msg = calllists.substitute(
        op, "helpdesk", "bob", for_person="alice", until=until, comment=None, now=NOW
    )
    assert "(replaces carol)" in msg
    view = calllists.show_calllist(op.config, op.state, "helpdesk", now=NOW)
    assert [s["person"] for s in view["substitutions"]] == ["bob"]


def test_an_alias_shares_its_targets_substitutions(op: Operator) -> None:
    until = NOW + timedelta(days=1)
    calllists.substitute(
        op, "oncall-page", "dave", for_person="alice", until=until, comment=None, now=NOW
    )
    view = calllists.show_calllist(op.config, op.state, "oncall", now=NOW)
    assert [s["person"] for s in view["substitutions"]] == ["dave"]


@pytest.mark.parametrize(
    ("name", "person", "for_person", "words"),
    [
        ("nosuch", "carol", "alice", "no call list named 'nosuch'.*helpdesk"),
        ("oncall", "carol", "dave", "dave is not a member"),
        ("oncall", "zed", "alice", "zed is not a defined person"),
        ("oncall", "dave", "alice", "dave has no address for mail"),
        ("oncall", "alice", "alice", "cannot replace themself"),
    ],
)
def test_substitute_validation(
    op: Operator, name: str, person: str, for_person: str, words: str
) -> None:
    with pytest.raises((OpError, SubstitutionError), match=words):
        calllists.substitute(
            op,
            name,
            person,
            for_person=for_person,
            until=NOW + timedelta(hours=1),
            comment=None,
            now=NOW,
        )
    assert not op.state.layout.calllist("oncall").exists()


def test_show_of_an_unknown_list_names_the_known_ones(op: Operator) -> None:
    with pytest.raises(OpError, match="call lists: helpdesk, oncall, oncall-page"):
        calllists.show_calllist(op.config, op.state, "nope", now=NOW)


def test_show_counts_rotations_that_passed_without_storing_them(op: Operator) -> None:
    stored = CallListState(
        on_call="alice", last_rotation=NOW - timedelta(days=2), members=("alice", "bob")
    )
    path = op.state.layout.calllist("oncall")
    op.state.writer.replace(path, encode(stored.to_dict()))
    view = calllists.show_calllist(op.config, op.state, "oncall", now=NOW)  # Monday 09:00 passed
    assert (view["on_call"], view["rotations_due"]) == ("bob", 1)
    assert view["last_rotation"] == "2026-11-22T10:00:00.000Z"
    assert CallListState.from_dict(json.loads(path.read_text())) == stored


def test_show_of_a_simple_list_names_the_next_person(op: Operator) -> None:
    view = calllists.show_calllist(op.config, op.state, "helpdesk", now=NOW)
    assert view["kind"] == "simple"
    assert [r["person"] for r in view["recipients_now"]] == ["alice"]
    assert not op.state.layout.calllist("helpdesk").exists()  # showing changes nothing


# --------------------------------------------------------------------------- --until


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T18:00", datetime(2026, 11, 24, 17, 0, tzinfo=UTC)),  # Berlin, CET
        ("2026-11-24T18:00Z", datetime(2026, 11, 24, 18, 0, tzinfo=UTC)),
        ("2026-11-24T18:00+02:00", datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        ("2026-11-24 18:00", datetime(2026, 11, 24, 17, 0, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 24, 23, 0, tzinfo=UTC)),
        ("18:00", datetime(2026, 11, 24, 17, 0, tzinfo=UTC)),  # later today
        ("09:30", datetime(2026, 11, 25, 8, 30, tzinfo=UTC)),  # already past: tomorrow
        ("11:00", datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),  # now exactly: tomorrow
        ("+2h", NOW + timedelta(hours=2)),
        ("+30m", NOW + timedelta(minutes=30)),
        ("+1d", NOW + timedelta(days=1)),
        ("+1h30m", NOW + timedelta(minutes=90)),
        (" +1w ", NOW + timedelta(weeks=1)),
    ],
)
def test_parse_until_accepts(text: str, expected: datetime) -> None:
    got = parse_until(text, now=NOW, tz=BERLIN)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tomorrow", "is not a time"),
        ("25:00", "is not a time"),
        ("+2x", "is not a time"),
        ("+", "is not a time"),
        ("", "is not a time"),
        ("2026-11-24T09:00", "not in the future"),
        ("+0m", "not in the future"),
        ("2020-01-01", "not in the future"),
    ],
)
def test_parse_until_refuses(text: str, words: str) -> None:
    with pytest.raises(TimeSpecError, match=words):
        parse_until(text, now=NOW, tz=BERLIN)


def test_clock_times_across_a_dst_change_are_the_next_local_occurrence() -> None:
    before_change = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # Sat 23:00 CET; CEST from Sun 02:00
    got = parse_until("09:00", now=before_change, tz=BERLIN)
    assert got == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST


@given(
    minute=st.integers(0, 24 * 60 - 1),
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
)
def test_hh_mm_is_the_next_occurrence_within_a_day(minute: int, now: datetime) -> None:
    text = f"{minute // 60:02d}:{minute % 60:02d}"
    got = parse_until(text, now=now, tz=UTC)
    assert now < got <= now + timedelta(days=1)
    assert (got.hour, got.minute, got.second) == (minute // 60, minute % 60, 0)
