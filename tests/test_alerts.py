"""The alert scheduler and the alert executor on a fake clock, a fake runner and a real store.

Each test drives what the daemon's alert thread and an alert worker do, one after the
other on this thread: `AlertScheduler.tick` decides, `AlertExecutor.execute` delivers
each item it returned. Check results go through the check executor with the same fake
runner, so check.json, alert.json and the histories are the daemon's own files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from survivor.alertplan import AlertAction
from survivor.alerts.deliver import AlertExecutor
from survivor.alerts.fixes import FixRunner
from survivor.alerts.jobs import AlertJob, AlertStats
from survivor.alerts.scheduler import AlertScheduler
from survivor.checks.execute import CheckExecutor, CheckRunner
from survivor.checks.record import CheckRecorder, ResultsLog
from survivor.checks.scheduler import check_item
from survivor.config import load_config
from survivor.model.config import Config, FsyncPolicy
from survivor.model.documents import Ack, AlertState, Inhibit
from survivor.model.work import ItemIds, WorkItem
from survivor.store.books import AlertBook, CheckBook
from survivor.store.fsio import FileWriter
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.work.queue import WorkContext
from tests.fakes import FakeClock, FakeRunner, ModuleCall, check_lines, outcome

CONFIG = """\
instance:
  name: alerts
  timezone: UTC
  fsync: never
  alert_throttle: {throttle}
  alert_shift: 30s
  state_dir: state
  history_dir: history
  module_dir: mod
hosts:
{host_lines}
classes:
  web: {{hosts: [{host_list}], schedule: every-minute, alertplan: standard}}
schedules:
  every-minute: [{{every: 1m}}]
  pace: [{{every: 5m}}]
alerts:
  mail: {{format: plain, transmit: file, args: {{path: /var/spool/alerts.jsonl}}}}
calllists:
  helpdesk: {{members: [alice, bob], via: mail}}
  admins: {{members: [alice, bob, carol], via: mail, broadcast: true}}
people:
  alice: {{mail: alice@example.org}}
  bob: {{mail: bob@example.org}}
  carol: {{mail: carol@example.org}}
alertplans:
  standard:
    notify_on_clear: true
    recovery_after: 2
    rules: [{{on: [1], after: 1, using: [{{schedule: pace, tries: [
      {{times: 1, alert: [helpdesk]}},
      {{alert: [admins], escalated: true}}]}}]}}]
  fixing:
    notify_on_clear: true
    rules: [{{on: [1], after: 1, using: [{{schedule: pace, tries: [
      {{times: 1, alert: [helpdesk]}},
      {{times: 1, fix: true, tell: [admins]}},
      {{alert: [admins], escalated: true}}]}}]}}]
checks:
  flaky: {{module: flaky, hosts: [web]}}
  mended: {{module: mended, hosts: [web1], alertplan: fixing, fix: repair}}
fixes:
  repair: {{module: repair, args: {{service: httpd}}, timeout: 10s}}
"""
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


class Rig:
    """One alert scheduler and one alert executor over a store in `tmp_path`."""

    def __init__(self, tmp_path: Path, *, hosts: int = 3, throttle: int = 10) -> None:
        names = [f"web{n}" for n in range(1, hosts + 1)]
        (tmp_path / "mod").mkdir()
        path = tmp_path / "survivor.yaml"
        path.write_text(
            CONFIG.format(
                throttle=throttle,
                host_lines="\n".join(f"  {h}: {{address: 192.0.2.1}}" for h in names),
                host_list=", ".join(names),
            )
        )
        self.config = load_config(path)
        self.clock = FakeClock(T0)
        self.runner = FakeRunner()
        writer = FileWriter(FsyncPolicy.NEVER)
        self.state = StateStore(tmp_path / "state", writer)
        self.history = HistoryStore(tmp_path / "history", writer)
        self.book = CheckBook()
        self.alerts = AlertBook(self.state, DiskHealth(self.clock))
        self.stats = AlertStats()
        self.ids = ItemIds("t")
        self.confirmed: list[tuple[str, str]] = []
        self.scheduler = AlertScheduler(
            self.book,
            self.alerts,
            self.state,
            self.history,
            self.ids,
            self.stats,
            UTC,
            lambda key: False,
        )
        self.executor = AlertExecutor(
            self.runner,
            FixRunner(self.runner, self.state, self.history, self.clock),
            self.alerts,
            self.state,
            self.history,
            self.stats,
            self.clock,
            self.current,
            lambda check, host: self.confirmed.append((check, host)),
        )
        recorder = CheckRecorder(
            self.book,
            self.state,
            self.history,
            ResultsLog(None, self.clock),
            DiskHealth(self.clock),
            UTC,
        )
        self.checks = CheckExecutor(CheckRunner(self.runner), recorder, self.clock, self.current)

    def current(self) -> tuple[Config, int]:
        return self.config, 1

    def at(self, minutes: int, seconds: int = 0) -> None:
        self.clock.set(T0 + timedelta(minutes=minutes, seconds=seconds))

    def results(self, check: str, rcs: dict[str, int]) -> None:
        """`check` runs now for the hosts of `rcs`, and each host gets its code."""
        checkdef = self.config.checks[check]
        assert checkdef.module is not None
        self.runner.on("check", checkdef.module, check_lines(rcs))
        item = check_item(self.ids, checkdef, tuple(rcs), self.clock.time())
        self.checks.execute(item, WorkContext(item))

    def minute(self, n: int, check: str = "", rcs: dict[str, int] | None = None) -> list[WorkItem]:
        """Minute `n`: `check` runs at :00 and gets `rcs` (if given); the alert tick at :30."""
        if rcs is not None:
            self.at(n)
            self.results(check, rcs)
        self.at(n, 30)
        return self.scheduler.tick(self.config, self.clock.now())

    def deliver(self, items: list[WorkItem]) -> None:
        for item in items:
            self.executor.execute(item, WorkContext(item))

    def alert_records(self, host: str, check: str = "flaky") -> list[dict[str, Any]]:
        return list(self.history.read(host, check, "alert"))

    def alert_json(self, host: str, check: str = "flaky") -> dict[str, Any] | None:
        return self.state.read_pair_doc(host, check, "alert")

    def transmits(self, since: int = 0) -> list[ModuleCall]:
        return [c for c in self.runner.calls[since:] if c.kind == "transmit"]


def job(item: WorkItem) -> AlertJob:
    found = item.payload["job"]
    assert isinstance(found, AlertJob)
    return found


def people(call: ModuleCall) -> list[str]:
    assert call.doc is not None
    return sorted(r["person"] for r in call.doc["recipients"])


FAILING = {"web1": 1}
OK = {"web1": 0}


# --------------------------------------------------------------------------- throttle and digest


def test_over_the_throttle_problems_go_into_one_digest_per_recipient(tmp_path: Path) -> None:
    rig = Rig(tmp_path, hosts=5, throttle=2)
    hosts = [f"web{n}" for n in range(1, 6)]
    items = rig.minute(0, "flaky", dict.fromkeys(hosts, 1))

    singles = [i for i in items if job(i).decision is not None]
    digests = [i for i in items if job(i).decision is None]
    assert [i.hosts for i in singles] == [("web1",), ("web2",)]  # the first alert_throttle
    withheld = {"web3", "web4", "web5"}
    listed = [e["host"] for i in digests for e in job(i).digest]
    assert sorted(listed) == sorted(withheld)  # each withheld problem in exactly one digest
    digest_people = [r.person for i in digests for r in job(i).recipients]
    assert len(digest_people) == len(set(digest_people))  # one digest per person
    for host in withheld:  # recorded at the tick as throttled, to be told in the digest
        [record] = rig.alert_records(host)
        assert record["throttled"] is True and record["action"] == "alert"
        assert record["digest_to"] and set(record["digest_to"]) <= set(digest_people)

    planned = {job(i).recipients[0].person: {e["host"] for e in job(i).digest} for i in digests}
    rig.deliver(items)
    transmits = rig.transmits()
    assert len(transmits) == len(singles) + len(digests)
    delivered: dict[str, list[dict[str, Any]]] = {}
    for call in transmits:
        assert call.doc is not None
        if call.doc["alert"]["digest"]:
            [person] = people(call)
            delivered[person] = call.doc["alert"]["digest"]
    assert {p: {e["host"] for e in entries} for p, entries in delivered.items()} == planned
    for entry in (e for entries in delivered.values() for e in entries):
        assert entry["check"] == "flaky" and entry["code"] == "PROBLEM"
        assert entry["comment"] == f"canned {entry['host']}" and entry["since"]
    formats = [c.doc for c in rig.runner.calls_to("format") if c.doc and c.doc["digest"]]
    assert [d["code"] for d in formats if d] == ["DIGEST"] * len(digests)
    for host in withheld:
        throttled, told = rig.alert_records(host)
        assert told["digest"] is True and told["ok"] is True
        assert [r["person"] for r in told["recipients"]] == throttled["digest_to"]
    assert rig.stats.to_dict() == {
        "sent": 2,
        "failed": 0,
        "throttled": 3,
        "digests": len(digests),
        "fixes": 0,
        "held": 0,
        "in_downtime": 0,
    }

    # A digest counts as the alert (DESIGN §3: the excess *goes into* a digest): the withheld
    # problems are not sent again one by one next minute, but paced like the others.
    assert rig.minute(1, "flaky", dict.fromkeys(hosts, 1)) == []
    for host in withheld:
        state = rig.alert_json(host)
        assert state is not None and state["alerts_sent"] == 1 and state["last_recipients"]


def test_a_person_reached_through_two_lists_gets_one_digest(tmp_path: Path) -> None:
    """alice is on helpdesk and admins: the problems withheld from her through either list
    go into one digest, and each digest item has its own key (the pool refuses a key that
    is already queued, so a second item for alice would be lost)."""
    rig = Rig(tmp_path, hosts=3, throttle=1)
    earlier = T0 - timedelta(minutes=10)
    for host in ("web1", "web3"):  # already alerted once: their next try goes to admins
        rig.alerts.store(
            "flaky",
            host,
            AlertState(about_rc=1, status_since=earlier, alerts_sent=1, last_alert=earlier),
        )
    items = rig.minute(0, "flaky", {"web1": 1, "web2": 1, "web3": 1})
    assert len({i.key for i in items}) == len(items)
    digests = {job(i).recipients[0].person: job(i).digest for i in items if not job(i).decision}
    assert sorted(digests) == ["alice", "bob", "carol"]
    # web2 (try 1, helpdesk: alice) and web3 (try 2, admins: everyone) were withheld.
    assert sorted(e["host"] for e in digests["alice"]) == ["web2", "web3"]
    assert [e["host"] for e in digests["bob"]] == ["web3"]
    rig.deliver(items)
    told = [people(c) for c in rig.transmits() if c.doc and c.doc["alert"]["digest"]]
    assert sorted(told) == [["alice"], ["bob"], ["carol"]]


def test_a_fix_try_over_the_throttle_still_runs(tmp_path: Path) -> None:
    """The throttle holds back notifications, not repairs: a withheld fix try would count
    as tried (the ladder moving on past it) without the fix ever running."""
    rig = Rig(tmp_path, hosts=1, throttle=1)
    rig.deliver(rig.minute(0, "mended", FAILING))  # try 1: helpdesk
    items = rig.minute(5, "flaky", FAILING)  # a new problem, first in the config, takes the 1
    assert sorted(job(i).action for i in items) == [AlertAction.ALERT, AlertAction.FIX]
    rig.deliver(items)
    [record] = rig.history.read("web1", "mended", "fix")
    assert record["rc"] == 0 and rig.confirmed == [("mended", "web1")]
    state = rig.alerts.get("mended", "web1")
    assert state is not None and state.fixes_tried == 1 and state.pending_fix_confirm


# --------------------------------------------------------------------------- silenced meanwhile


@pytest.mark.parametrize("silencer", ["ack", "inhibit"])
def test_an_ack_or_inhibit_after_the_tick_stops_the_delivery(tmp_path: Path, silencer: str) -> None:
    rig = Rig(tmp_path)
    rig.deliver(rig.minute(0, "flaky", FAILING))
    first = rig.alerts.get("flaky", "web1")
    assert first is not None and first.alerts_sent == 1

    [item] = rig.minute(5)  # the next try is due (pace: 5m)
    assert job(item).action is AlertAction.ALERT and job(item).doc["try"] == 2
    now = rig.clock.now()
    doc = (
        Ack("alice", "on it", now, about_rc=1).to_dict()
        if silencer == "ack"
        else Inhibit("alice", "maintenance", now).to_dict()
    )
    rig.state.write_pair_doc("web1", "flaky", silencer, doc)
    calls = len(rig.runner.calls)
    rig.deliver([item])

    assert rig.runner.calls[calls:] == []  # neither formatted nor transmitted
    assert rig.alerts.get("flaky", "web1") == first  # not counted as sent
    assert AlertState.from_dict(rig.alert_json("web1") or {}) == first
    assert len(rig.alert_records("web1")) == 1 and rig.stats.sent == 1
    assert rig.minute(10) == []  # and the scheduler honours it from now on


# --------------------------------------------------------------------------- failed delivery


@pytest.mark.parametrize(("kind", "name"), [("transmit", "file"), ("format", "plain")])
def test_a_failed_delivery_is_recorded_and_retried_next_minute(
    tmp_path: Path, kind: str, name: str
) -> None:
    rig = Rig(tmp_path)
    rig.runner.on(kind, name, outcome(exit_status=1, stderr="spool full\n"))
    rig.deliver(rig.minute(0, "flaky", FAILING))

    [record] = rig.alert_records("web1")
    assert record["ok"] is False and record["try"] == 1
    assert record["error"] == f"{kind} {name} exited 1: spool full"
    assert len(rig.transmits()) == (1 if kind == "transmit" else 0)
    assert rig.alerts.get("flaky", "web1") is None and rig.alert_json("web1") is None
    assert (rig.stats.sent, rig.stats.failed) == (0, 1)

    rig.runner.on(kind, name, outcome("subject\nbody") if kind == "format" else outcome())
    [again] = rig.minute(1, "flaky", FAILING)  # within the 5m pacing: only as nothing was sent
    assert job(again).action is AlertAction.ALERT and job(again).doc["try"] == 1
    calls = len(rig.runner.calls)
    rig.deliver([again])

    [fmt, transmit] = rig.runner.calls[calls:]
    assert fmt.kind == "format" and fmt.doc is not None
    assert (fmt.doc["check"], fmt.doc["host"], fmt.doc["code"]) == ("flaky", "web1", "PROBLEM")
    assert fmt.doc["clear"] is False and fmt.doc["recipients"] == [
        r.to_dict() for r in job(again).recipients
    ]
    assert transmit.doc is not None
    assert transmit.doc["subject"] == "subject" and transmit.doc["body"] == "body"
    assert transmit.doc["args"] == {"path": "/var/spool/alerts.jsonl"}
    assert transmit.doc["alert"] == fmt.doc
    assert rig.alert_records("web1")[-1]["ok"] is True
    state = rig.alerts.get("flaky", "web1")
    assert state is not None and state.alerts_sent == 1
    assert state.last_recipients == job(again).recipients
    assert (rig.stats.sent, rig.stats.failed) == (1, 1)


# --------------------------------------------------------------------------- clear notices


def test_after_recovery_the_clear_notice_goes_to_whoever_got_the_last_alert(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.deliver(rig.minute(0, "flaky", FAILING))
    [first] = rig.transmits()
    told = people(first)
    assert len(told) == 1  # one helpdesk member, not the whole list

    assert rig.minute(6, "flaky", OK) == []  # recovery_after: 2, one OK so far
    waiting = rig.alerts.get("flaky", "web1")
    assert waiting is not None and waiting.ok_streak == 1 and rig.alert_json("web1")

    [item] = rig.minute(7, "flaky", OK)
    assert job(item).action is AlertAction.CLEAR
    rig.deliver([item])
    [_, clear] = rig.transmits()
    assert clear.doc is not None and clear.doc["alert"]["clear"] is True
    assert clear.doc["alert"]["code"] == "OK"
    assert people(clear) == told
    assert rig.alerts.get("flaky", "web1") is None and rig.alert_json("web1") is None
    assert rig.alert_records("web1")[-1]["clear"] is True
    assert rig.minute(8, "flaky", OK) == []  # one clear notice per problem


def test_an_acknowledged_problem_recovers_without_a_notice_and_the_ack_goes(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.deliver(rig.minute(0, "flaky", FAILING))
    ack = Ack("bob", "known", rig.clock.now(), about_rc=1)
    rig.state.write_pair_doc("web1", "flaky", "ack", ack.to_dict())
    assert rig.minute(6, "flaky", OK) == []
    assert rig.minute(7, "flaky", OK) == []
    assert len(rig.transmits()) == 1  # the first alert only
    assert rig.alert_json("web1") is None
    assert rig.state.read_pair_doc("web1", "flaky", "ack") is None
    [unack] = rig.history.read("web1", "flaky", "command")
    assert unack["command"] == "unack" and unack["user"] == "survivor"


# --------------------------------------------------------------------------- fixes


def test_a_fix_try_runs_the_fix_asks_for_a_recheck_and_sends_nothing_until_it(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, hosts=1)
    rig.deliver(rig.minute(0, "mended", FAILING))  # try 1: helpdesk
    [first] = rig.transmits()

    [item] = rig.minute(5)
    assert job(item).action is AlertAction.FIX
    calls = len(rig.runner.calls)
    rig.deliver([item])

    [fix] = rig.runner.calls_to("fix", "repair")
    assert fix.doc is not None and fix.doc["kind"] == "fix" and fix.doc["check"] == "mended"
    assert fix.doc["host"]["name"] == "web1" and fix.doc["args"] == {"service": "httpd"}
    [record] = rig.history.read("web1", "mended", "fix")
    assert record["rc"] == 0 and record["fix"] == "repair" and record["by"] == "survivor"
    assert rig.confirmed == [("mended", "web1")]  # the check is asked to run again at once
    [tell] = rig.transmits(since=calls)
    assert people(tell) == ["alice", "bob", "carol"]
    assert tell.doc is not None
    assert tell.doc["alert"]["fix"] == {"rc": 0, "code": "OK", "comment": "fixed"}
    state = rig.alerts.get("mended", "web1")
    assert state is not None and state.fixes_tried == 1 and state.pending_fix_confirm
    assert rig.stats.fixes == 1

    # Past the next pacing slot, but no check has started since the fix: nothing is sent.
    calls = len(rig.runner.calls)
    assert rig.minute(11) == []
    assert rig.runner.calls[calls:] == []

    # The re-check says OK: the clear notice goes to everyone told about the problem,
    # the people told of the fix included, each once (issue 19 item 6).
    [clear] = rig.minute(12, "mended", OK)
    assert job(clear).action is AlertAction.CLEAR
    rig.deliver([clear])
    [notice] = rig.transmits(since=calls)
    assert notice.doc is not None and notice.doc["alert"]["clear"] is True
    assert people(notice) == sorted({*people(first), *people(tell)})
    assert rig.alert_json("web1", "mended") is None


def test_a_recheck_that_still_fails_goes_on_with_the_ladder(tmp_path: Path) -> None:
    rig = Rig(tmp_path, hosts=1)
    rig.deliver(rig.minute(0, "mended", FAILING))  # try 1: helpdesk
    rig.deliver(rig.minute(5))  # try 2: the fix
    assert rig.minute(6, "mended", FAILING) == []  # pacing counts from the fix
    state = rig.alerts.get("mended", "web1")
    assert state is not None and not state.pending_fix_confirm  # the re-check came
    [item] = rig.minute(10)
    assert job(item).action is AlertAction.ALERT and job(item).doc["escalated"] is True
    assert sorted(r.person for r in job(item).recipients) == ["alice", "bob", "carol"]


def test_a_failed_fix_is_told_and_does_not_wait_for_a_recheck(tmp_path: Path) -> None:
    rig = Rig(tmp_path, hosts=1)
    rig.runner.on("fix", "repair", outcome('{"rc": 1, "comment": "httpd will not start"}\n'))
    rig.deliver(rig.minute(0, "mended", FAILING))
    rig.deliver(rig.minute(5))
    assert rig.confirmed == []
    [tell] = [c for c in rig.transmits() if c.doc and "fix" in c.doc["alert"]]
    assert tell.doc is not None
    assert tell.doc["alert"]["fix"] == {
        "rc": 1,
        "code": "PROBLEM",
        "comment": "httpd will not start",
    }
    state = rig.alerts.get("mended", "web1")
    assert state is not None and state.fixes_tried == 1 and not state.pending_fix_confirm
    [item] = rig.minute(10)  # no check ran since the fix; the next try goes out at its pacing
    assert job(item).action is AlertAction.ALERT
