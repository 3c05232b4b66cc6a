"""The daemon's parts, built and driven on a fake clock and a fake runner, with no thread started.

`build_parts` makes everything the daemon runs; these tests call the ticks, a reload
and the pools' queues themselves. Where a pool's threads would take and run the queued
items, `work_off` does the same on this thread: take what is due, run it with the pool's
own handler (the check executor's steps, the alert executor), mark it finished.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from survivor.clock import floor_minute
from survivor.config import load_config
from survivor.daemon.heartbeat import DaemonStatus, Heartbeat
from survivor.daemon.reload import ConfigOnDisk, Reloader
from survivor.daemon.schedulers import MinuteLoops
from survivor.daemon.wiring import Parts, RunningConfig, Stores, build_parts
from survivor.model.config import Config
from survivor.model.documents import AlertState, CheckState
from survivor.model.work import CheckResult, Mood, WorkItem
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.work.loop import LoopPool
from survivor.work.steps import drive
from survivor.work.threads import WorkerPool
from tests.conftest import wait_until
from tests.fakes import FakeClock, FakeRunner, SteppedClock, check_lines

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday

HEAD = """\
instance:
  name: w
  state_dir: ../state
  history_dir: ../history
  module_dir: ../mod
  timezone: UTC
  fsync: never
hosts:
  web1: {address: 192.0.2.1}
  web2: {address: 192.0.2.2}
classes:
  web: {hosts: [web1, web2], schedule: every-minute, alertplan: page}
schedules:
  every-minute: [{every: 1m}]
  every-5m: [{every: 5m}]
alerts: {mail: {format: plain, transmit: file}}
people: {alice: {mail: alice@example.org}}
calllists: {ops: {members: [alice], via: mail}}
alertplans:
  page: {rules: [{on: [1], after: 1, using: [{schedule: every-minute, tries: [{alert: [ops]}]}]}]}
checks:
  ping: {module: ping, hosts: [web1, web2]}
  http: {plugin: check_http, argv: ["-H", "{address}"], hosts: [web1], schedule: every-5m}
"""
V1 = HEAD + "  disk: {module: disk, hosts: [web2]}\n"
V2 = HEAD + "  load: {module: load, hosts: [web1]}\n"
BROKEN = HEAD + "  load: {module: load, hosts: [web1], schedule: hourly}\n  disk: {modul: disk}\n"


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("etc", "mod", "state", "history"):
        (tmp_path / name).mkdir()
    return tmp_path


def write_config(tree: Path, text: str) -> Path:
    path = tree / "etc" / "survivor.yaml"
    path.write_text(text)
    return path


def ran(
    state: StateStore, history: HistoryStore, check: str, host: str, rc: int, at: datetime
) -> CheckState:
    """What the daemon leaves on disk after a run of check@host at `at`."""
    st = CheckState().advance(
        CheckResult(host, rc, "before"), start=at, planned=at, fingerprint="f", generation=1
    )
    state.write_check(host, check, st)
    history.append(host, check, "check", at, {"rc": rc, "comment": "before"})
    return st


def build(config: Config, clock: FakeClock | SteppedClock, runner: FakeRunner) -> Parts:
    stores = Stores.open(config)
    now = clock.now()
    return build_parts(config, stores, RunningConfig(config, 1, now), clock, now, runner=runner)


def work_off(pool: LoopPool | WorkerPool, until: datetime) -> list[WorkItem]:
    """What the pool's threads would do by `until`: take every item due, run it, finish it."""
    taken, _ = pool.queue.take(until.timestamp(), "test", lambda running: 1000)
    for ctx in taken:
        if isinstance(pool, LoopPool):
            drive(pool.steps(ctx.item, ctx))
        else:
            pool.handler(ctx.item, ctx)
        pool.queue.finished(ctx.item, ok=True)
    return [ctx.item for ctx in taken]


def runs(items: list[WorkItem]) -> set[tuple[str, tuple[str, ...]]]:
    return {(item.check, item.hosts) for item in items}


def history_files(tree: Path, host: str, check: str) -> list[str]:
    return sorted(p.name for p in (tree / "history" / "host" / host / check).iterdir())


# --------------------------------------------------------------------------- build_parts


def test_build_parts_reads_the_state_on_disk_and_prunes_pairs_no_longer_configured(
    tree: Path,
) -> None:
    config = load_config(write_config(tree, V1))
    stores = Stores.open(config)
    before = T0 - timedelta(minutes=3)
    ping = ran(stores.state, stores.history, "ping", "web1", 1, before)
    alert = AlertState(about_rc=1, status_since=before, alerts_sent=1, last_alert=before)
    stores.state.write_pair_doc("web1", "ping", "alert", alert.to_dict())
    for check, host in (("old", "web1"), ("ping", "web9")):  # no longer configured
        ran(stores.state, stores.history, check, host, 1, before)
        stores.state.write_pair_doc(host, check, "alert", alert.to_dict())
    threads = threading.active_count()

    clock, runner = FakeClock(T0), FakeRunner()
    parts = build_parts(config, stores, RunningConfig(config, 1, T0), clock, T0, runner=runner)

    assert parts.book.get("ping", "web1") == ping
    assert parts.alert_book.get("ping", "web1") == alert
    for check, host in (("old", "web1"), ("ping", "web9")):
        assert parts.book.get(check, host) is None and parts.alert_book.get(check, host) is None
        assert not (tree / "state" / "host" / host / check).exists()
        assert history_files(tree, host, check) == ["check-2026-11.jsonl"]  # history stays
    assert (tree / "state" / "host" / "web1" / "ping" / "check.json").exists()
    assert threading.active_count() == threads  # nothing started
    assert parts.check_pool.threads() == [] and parts.alert_pool.threads() == []
    assert runner.calls == []


def test_check_tick_submits_the_due_runs_to_the_pool_without_starting_it(tree: Path) -> None:
    config = load_config(write_config(tree, V1))
    stores = Stores.open(config)
    for host in ("web1", "web2"):
        ran(stores.state, stores.history, "ping", host, 0, T0 - timedelta(minutes=1))
    ran(stores.state, stores.history, "http", "web1", 0, T0 - timedelta(minutes=2))
    clock, runner = FakeClock(T0), FakeRunner()
    parts = build_parts(config, stores, RunningConfig(config, 1, T0), clock, T0, runner=runner)
    threads = threading.active_count()

    MinuteLoops(parts, DaemonStatus(config.path, started=T0), threading.Event()).check_tick(
        T0, first=False
    )

    pool = parts.check_pool
    assert pool.stats()["queued"] == 2 and pool.stats()["busy"] == 0
    assert pool.scheduled() == 2  # spread over the minute, nobody has taken them
    assert pool.snapshot() == []  # queue.json lists only what is due or running
    assert pool.is_busy_with("check:ping") and pool.is_busy_with("check:disk")
    assert not pool.is_busy_with("check:http@web1")  # every-5m, ran two minutes ago
    assert (tree / "state" / "host" / "web2" / "disk").is_dir()  # made ahead of its first run
    assert threading.active_count() == threads and runner.calls == []

    items = work_off(parts.check_pool, T0 + timedelta(minutes=1))
    assert runs(items) == {("ping", ("web1", "web2")), ("disk", ("web2",))}
    for item in items:
        assert T0.timestamp() <= item.planned < T0.timestamp() + 60
    assert sorted(c.name for c in runner.calls_to("check")) == ["disk", "ping"]
    disk = parts.book.get("disk", "web2")
    assert disk is not None and disk.rc == 0 and disk.comment == "canned web2"


def test_confirm_fix_queues_a_rerun_of_that_pair_at_once(tree: Path) -> None:
    config = load_config(write_config(tree, V1))
    clock, runner = FakeClock(T0 + timedelta(seconds=20)), FakeRunner()
    parts = build(config, clock, runner)
    runner.on("check", "ping", check_lines({"web1": 0}))

    parts.confirm_fix("ping", "web1")

    state = parts.book.get("ping", "web1")
    assert state is not None and state.reschedule  # the next tick runs it if this is refused
    [item] = work_off(parts.check_pool, clock.now())  # due now, not at a slot later in the minute
    assert item.reason == "fix-confirm" and runs([item]) == {("ping", ("web1",))}
    [call] = runner.calls_to("check", "ping")
    assert call.doc is not None and [h["name"] for h in call.doc["hosts"]] == ["web1"]
    confirmed = parts.book.get("ping", "web1")
    assert confirmed is not None and confirmed.last_start == clock.now()


def test_alert_tick_queues_an_alert_and_decides_nothing_more_while_it_is_queued(
    tree: Path,
) -> None:
    config = load_config(write_config(tree, V1))
    stores = Stores.open(config)
    ran(stores.state, stores.history, "ping", "web1", 1, T0 - timedelta(minutes=1))
    clock, runner = FakeClock(T0 + timedelta(seconds=30)), FakeRunner()
    parts = build_parts(config, stores, RunningConfig(config, 1, T0), clock, T0, runner=runner)
    loops = MinuteLoops(parts, DaemonStatus(config.path, started=T0), threading.Event())

    loops.alert_tick(clock.now())
    assert parts.alert_pool.stats()["queued"] == 1 and parts.alert_pool.is_busy_with(
        "alert:ping@web1"
    )
    clock.advance(timedelta(minutes=1))
    assert parts.alert_scheduler.tick(config, clock.now()) == []  # still queued: not decided
    assert runner.calls == []

    [item] = work_off(parts.alert_pool, clock.now())
    assert item.key == "alert:ping@web1"
    [transmit] = runner.calls_to("transmit", "file")
    assert transmit.doc is not None and transmit.doc["recipients"] == [
        {"person": "alice", "address": "alice@example.org"}
    ]
    assert (tree / "state" / "host" / "web1" / "ping" / "alert.json").exists()
    assert parts.alert_stats.sent == 1


def test_a_step_of_the_clock_wakes_the_check_loop_to_plan_its_minute_again(tree: Path) -> None:
    # A real wait: the loop sleeps until the next minute, a minute of real time at most.
    clock = SteppedClock(offset=60.0 - time.time() % 60.0 + 1.0)  # a second into a minute
    parts = build(load_config(write_config(tree, V1)), clock, FakeRunner())
    loops = MinuteLoops(
        parts, DaemonStatus(tree / "etc" / "survivor.yaml", started=T0), threading.Event()
    )
    ticks: list[tuple[datetime, bool]] = []
    loops.check_tick = lambda now, first, planned_at=None: ticks.append((now, first))  # type: ignore[method-assign]
    thread = threading.Thread(target=loops.check_loop, daemon=True)
    thread.start()
    wait_until(lambda: len(ticks) == 1, 10, "the first tick")
    start = ticks[0][0]

    clock.step(-300.0)  # back 5 minutes: a tick at once, as after a start (first)
    loops.clock_stepped()
    wait_until(lambda: len(ticks) == 2, 5, "a tick after the step back")
    assert ticks[1][1] is True
    assert floor_minute(ticks[1][0]) == floor_minute(start) - timedelta(minutes=5)

    clock.step(10.0)  # within the same minute: its tick was had; wait for the next one
    loops.clock_stepped()
    wait_until(lambda: not loops._stepped.is_set(), 5, "the loop to notice the step")
    clock.step(7200.0)  # forward 2 hours: a tick at once, again as after a start
    loops.clock_stepped()
    wait_until(lambda: len(ticks) == 3, 5, "a tick after the step forward")
    assert ticks[2][1] is True
    assert floor_minute(ticks[2][0]) == floor_minute(start) + timedelta(minutes=115)

    loops.halt()
    thread.join(5)
    assert not thread.is_alive() and len(ticks) == 3


# --------------------------------------------------------------------------- reload


class Rig:
    """A daemon's parts and the main thread's helpers, as Daemon.start() makes them."""

    def __init__(self, tree: Path) -> None:
        self.path = write_config(tree, V1)
        self.clock = FakeClock(T0)
        self.runner = FakeRunner()
        self.parts = build(load_config(self.path), self.clock, self.runner)
        self.status = DaemonStatus(self.path, started=T0, mood=Mood.RUNNING)
        heartbeat = Heartbeat(self.parts, self.status)
        self.events: list[tuple[str, Mood, dict[str, Any]]] = []
        self.reloader = Reloader(
            self.parts,
            self.status,
            heartbeat,
            ConfigOnDisk(self.parts, self.status, heartbeat),
            self.event,
        )
        self.loops = MinuteLoops(self.parts, self.status, threading.Event())

    def event(self, name: str, **fields: Any) -> None:
        self.events.append((name, self.status.mood, fields))

    def minute(self, n: int) -> set[tuple[str, tuple[str, ...]]]:
        """The check tick of minute `n`, and the runs it queued, run."""
        self.clock.set(T0 + timedelta(minutes=n))
        self.loops.check_tick(self.clock.now(), first=False)
        return runs(work_off(self.parts.check_pool, self.clock.now() + timedelta(minutes=1)))

    def daemon_json(self) -> dict[str, Any]:
        doc = json.loads((self.parts.stores.state.layout.daemon).read_text())
        assert isinstance(doc, dict)
        return doc


@pytest.fixture
def rig(tree: Path) -> Iterator[Rig]:
    rig = Rig(tree)
    threads = threading.active_count()
    yield rig
    assert threading.active_count() == threads  # nothing was started on the way


def test_reload_swaps_the_config_between_ticks_and_prunes_removed_state(
    tree: Path, rig: Rig
) -> None:
    assert rig.minute(0) == {("ping", ("web1", "web2")), ("http", ("web1",)), ("disk", ("web2",))}
    ping = rig.parts.book.get("ping", "web1")
    config, generation = rig.parts.running.get()
    write_config(tree, V2)

    assert rig.reloader.reload() is True

    new, new_generation = rig.parts.running.get()
    assert new is not config and new_generation == generation + 1
    assert "load" in new.checks and "disk" not in new.checks
    assert rig.status.mood is Mood.RUNNING
    assert rig.status.last_reload is not None
    assert rig.status.last_reload["ok"] is True and rig.status.last_reload["errors"] == []
    assert rig.status.last_reload["diff"] == "1 check added, 0 changed, 1 removed"
    [(name, mood, fields)] = rig.events
    assert name == "reload" and mood is Mood.RELOADING and fields["generation"] == new_generation
    assert rig.daemon_json()["config"]["generation"] == new_generation
    assert rig.daemon_json()["last_reload"]["ok"] is True
    # The removed pair's state goes, its history stays; a kept pair keeps its state.
    assert not (tree / "state" / "host" / "web2" / "disk").exists()
    assert rig.parts.book.get("disk", "web2") is None
    assert history_files(tree, "web2", "disk") == ["check-2026-11.jsonl"]
    assert rig.parts.book.get("ping", "web1") == ping

    # The next tick runs on the new config: the new check, not the removed one.
    assert rig.minute(1) == {("ping", ("web1", "web2")), ("load", ("web1",))}
    assert [c.name for c in rig.runner.calls_to("check", "disk")] == ["disk"]  # minute 0 only
    load = rig.parts.book.get("load", "web1")
    assert load is not None and load.generation == new_generation


def test_a_broken_config_is_not_applied_and_says_where(tree: Path, rig: Rig) -> None:
    rig.minute(0)
    config, generation = rig.parts.running.get()
    write_config(tree, BROKEN)

    assert rig.reloader.reload() is False

    kept, kept_generation = rig.parts.running.get()
    assert kept is config and kept_generation == generation
    assert rig.status.mood is Mood.RUNNING
    reload = rig.status.last_reload
    assert reload is not None and reload["ok"] is False
    assert len(reload["errors"]) >= 2  # every problem, not the first only
    lines = {m[1] for e in reload["errors"] if (m := re.search(r"survivor\.yaml:(\d+): ", e))}
    broken = [n for n, line in enumerate(BROKEN.splitlines(), 1) if line.startswith("  load")]
    assert lines == {str(broken[0]), str(broken[0] + 1)}  # the `load` and `disk` lines
    assert all(re.search(r"survivor\.yaml:\d+: ", e) for e in reload["errors"])
    [(name, _, fields)] = rig.events
    assert name == "reload-failed" and fields["generation"] == generation
    assert fields["errors"] == reload["errors"]
    assert rig.daemon_json()["last_reload"]["ok"] is False
    assert (tree / "state" / "host" / "web2" / "disk" / "check.json").exists()
    assert rig.minute(1) == {("ping", ("web1", "web2")), ("disk", ("web2",))}
