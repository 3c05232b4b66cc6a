"""The check scheduler's decisions (fake time) and the executor with real fixture modules."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from survivor.checks import execute as checks_execute
from survivor.checks.execute import CheckExecutor, CheckRunner
from survivor.checks.record import CheckRecorder, ResultsLog
from survivor.checks.scheduler import CheckScheduler
from survivor.clock import SystemClock
from survivor.config import load_config
from survivor.model.config import Config, FsyncPolicy
from survivor.model.documents import CheckState
from survivor.model.work import CheckResult, ItemIds, WorkItem, WorkKind
from survivor.proc.runner import ModuleRunner, Running
from survivor.store.books import CheckBook
from survivor.store.fsio import FileWriter
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore
from survivor.work.loop import LoopPool
from survivor.work.queue import WorkContext
from survivor.work.steps import PAUSE, Offload, run_step
from tests.conftest import wait_until
from tests.fakes import FakeClock

UTCZ = UTC
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday

CONFIG = """\
instance:
  name: t
  state_dir: state
  history_dir: history
  module_dir: {mod}
hosts:
  web1: {{address: 127.0.0.1}}
  web2: {{address: 127.0.0.2}}
  gw1: {{address: 127.0.0.3}}
classes:
  web: {{hosts: [web1, web2], schedule: every-5m}}
  net: {{hosts: [gw1], schedule: every-minute}}
schedules:
  every-minute: [{{every: 1m}}]
  every-5m: [{{every: 5m}}]
  nightly: [{{at: ["02:30"]}}]
checks:
  ping: {{module: ok, hosts: [web1, web2, gw1]}}
  http: {{plugin: plugin-dummy, argv: ["0", "{{host}} fine"], hosts: [web1, web2], retry: 1m}}
  backup: {{module: ok, hosts: [web1], schedule: nightly}}
{extra}
"""


def make_config(tmp_path: Path, scratch: Path, extra: str = "") -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(CONFIG.format(mod=scratch / "mod", extra=extra))
    return load_config(path)


def ran(book: CheckBook, check: str, host: str, rc: int, at: datetime) -> None:
    old = book.get(check, host) or CheckState()
    book.put(
        check,
        host,
        old.advance(CheckResult(host, rc), start=at, planned=at, fingerprint="f", generation=1),
    )


def due(report_items: list, check: str) -> set[str]:  # type: ignore[type-arg]
    return {h for i in report_items if i.check == check for h in i.hosts}


def test_everything_is_due_at_the_first_tick_and_spread_inside_the_minute(
    tmp_path: Path, scratch: Path
) -> None:
    config = make_config(tmp_path, scratch)
    sched = CheckScheduler(CheckBook(), ItemIds("t"), UTC)
    report = sched.tick(config, T0)
    assert due(report.items, "ping") == {"web1", "web2", "gw1"}
    assert due(report.items, "http") == {"web1", "web2"}
    assert due(report.items, "backup") == {"web1"}  # `at` never ran: due at once
    ping = [i for i in report.items if i.check == "ping"]
    assert len(ping) == 1 and ping[0].kind is WorkKind.CHECK  # one module run for all hosts
    assert len([i for i in report.items if i.check == "http"]) == 2  # a plugin runs per host
    for item in report.items:
        assert T0.timestamp() <= item.planned < T0.timestamp() + 60


def test_a_minutes_runs_are_evenly_spaced_and_follow_a_reload(
    tmp_path: Path, scratch: Path
) -> None:
    config = make_config(tmp_path, scratch)
    sched = CheckScheduler(CheckBook(), ItemIds("t"), UTC)
    first = sched.tick(config, T0)
    # four runs a minute: ping and backup (one each), http@web1 and http@web2
    offsets = sorted(item.planned - T0.timestamp() for item in first.items)
    assert offsets == [7.5, 22.5, 37.5, 52.5]
    more = make_config(tmp_path, scratch, "  disk: {module: ok, hosts: [gw1]}")
    later = sched.tick(more, T0 + timedelta(minutes=5))
    offsets = sorted(item.planned - later.minute.timestamp() for item in later.items)
    assert offsets == [6.0, 18.0, 30.0, 42.0, 54.0]


def test_first_tick_after_start_is_not_a_burst(tmp_path: Path, scratch: Path) -> None:
    """Mid-minute start: only pairs whose slot is still ahead run now; the rest next minute,
    each at the same offset it keeps from then on."""
    config = make_config(tmp_path, scratch)
    now = T0 + timedelta(seconds=30)
    sched = CheckScheduler(CheckBook(), ItemIds("t"), UTC)
    first = sched.tick(config, now, first=True).items
    full = sched.tick(config, T0).items
    assert all(now.timestamp() <= i.planned < T0.timestamp() + 60 for i in first)
    assert {i.key for i in first} == {i.key for i in full if i.planned >= now.timestamp()}
    assert {i.key: i.planned for i in first}.items() <= {i.key: i.planned for i in full}.items()


def test_never_run_lists_the_pairs_that_never_ran_slots_still_ahead_first(
    tmp_path: Path, scratch: Path
) -> None:
    config = make_config(tmp_path, scratch)
    book = CheckBook()
    sched = CheckScheduler(book, ItemIds("t"), UTC)
    slots = sched.slots(config)
    now = T0 + timedelta(seconds=30)
    fresh = sched.never_run(config, now)  # what the daemon prepares before the first tick
    assert sorted(fresh) == sorted((c.name, h) for c, host in config.pairs() for h in [host.name])
    offsets = [slots[f"{c}@{h}" if c == "http" else c] for c, h in fresh]
    ahead = [o for o in offsets if o >= 30]
    assert offsets == sorted(ahead) + sorted(o for o in offsets if o < 30) and ahead
    ran(book, "ping", "gw1", 0, T0)
    assert sched.never_run(config, now) == [p for p in fresh if p != ("ping", "gw1")]


def test_prepare_makes_both_directories_and_stops_when_told(tmp_path: Path) -> None:
    recorder, _ = _recorder(tmp_path)
    state, history = recorder.state, recorder.history
    pairs = [("ping", "web1"), ("ping", "web2"), ("http", "web1")]
    assert recorder.prepare(pairs, lambda: True) == 3
    for check, host in pairs:
        assert state.pair_dir(host, check).is_dir() and history.pair_dir(host, check).is_dir()
    assert recorder.prepare(pairs, lambda: True) == 3  # made already: nothing to undo
    calls = iter([True, False])
    assert recorder.prepare([("disk", "web1"), ("disk", "web2")], lambda: next(calls)) == 1
    assert state.pair_dir("web1", "disk").is_dir() and not state.pair_dir("web2", "disk").exists()


def test_every_counts_from_the_planned_minute_and_retry_applies_while_failing(
    tmp_path: Path, scratch: Path
) -> None:
    config = make_config(tmp_path, scratch)
    book = CheckBook()
    sched = CheckScheduler(book, ItemIds("t"), UTC)
    for host in ("web1", "web2"):
        ran(book, "ping", host, 0, T0)
        ran(book, "http", host, 0, T0)
    ran(book, "http", "web2", 1, T0)  # failing: retry every minute
    for minutes, expect in [(1, {"web2"}), (2, {"web2"}), (5, {"web1", "web2"})]:
        report = sched.tick(config, T0 + timedelta(minutes=minutes, seconds=3))
        assert due(report.items, "http") == expect, minutes
        assert due(report.items, "ping") == (
            {"web1", "web2", "gw1"} if minutes == 5 else {"gw1"}
        ), minutes


def test_reschedule_and_a_clock_stepped_back_make_a_pair_due(tmp_path: Path, scratch: Path) -> None:
    config = make_config(tmp_path, scratch)
    book = CheckBook()
    sched = CheckScheduler(book, ItemIds("t"), UTC)
    ran(book, "ping", "web1", 0, T0)
    ran(book, "ping", "web2", 0, T0)
    assert due(sched.tick(config, T0 + timedelta(minutes=1)).items, "ping") == {"gw1"}
    book.reschedule("ping", "web1")
    assert due(sched.tick(config, T0 + timedelta(minutes=1)).items, "ping") == {"web1", "gw1"}
    assert due(sched.tick(config, T0 - timedelta(hours=1)).items, "ping") == {"web1", "web2", "gw1"}


def test_at_schedule_runs_once_per_time(tmp_path: Path, scratch: Path) -> None:
    config = make_config(tmp_path, scratch)
    book = CheckBook()
    sched = CheckScheduler(book, ItemIds("t"), UTC)
    night = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    ran(book, "backup", "web1", 0, night - timedelta(days=1))
    clock = FakeClock(night - timedelta(minutes=2))
    runs = []
    for _ in range(24 * 60):
        if due(sched.tick(config, clock.now()).items, "backup"):
            runs.append(clock.now())
            ran(book, "backup", "web1", 0, clock.now())
        clock.advance(timedelta(minutes=1))
    assert runs == [night]


def test_type_one_dependency_blocks_only_while_not_ok(tmp_path: Path, scratch: Path) -> None:
    config = make_config(
        tmp_path, scratch, "dependencies:\n  - {checks: [http], hosts: all, on: ping@gw1}\n"
    )
    book = CheckBook()
    sched = CheckScheduler(book, ItemIds("t"), UTC)
    report = sched.tick(config, T0)
    assert due(report.items, "http") == {"web1", "web2"}  # never-run dependency does not block
    ran(book, "ping", "gw1", 1, T0)
    report = sched.tick(config, T0 + timedelta(minutes=1))
    assert due(report.items, "http") == set()
    assert {(c.name, h.name) for c, h, _ in report.blocked} == {("http", "web1"), ("http", "web2")}
    assert all(why == "ping@gw1 is PROBLEM" for _, _, why in report.blocked)
    ran(book, "ping", "gw1", 0, T0 + timedelta(minutes=1))
    assert due(sched.tick(config, T0 + timedelta(minutes=2)).items, "http") == {"web1", "web2"}


def _recorder(
    tmp_path: Path, policy: FsyncPolicy = FsyncPolicy.NEVER
) -> tuple[CheckRecorder, FakeClock]:
    writer = FileWriter(policy)
    state = StateStore(tmp_path / "state", writer)
    history = HistoryStore(tmp_path / "history", writer)
    clock = FakeClock(T0)
    results = ResultsLog(tmp_path / "results.jsonl", clock)
    return CheckRecorder(CheckBook(), state, history, results, DiskHealth(clock), UTC), clock


def _executor(
    tmp_path: Path, config: Config, policy: FsyncPolicy = FsyncPolicy.NEVER
) -> tuple[CheckExecutor, CheckBook, HistoryStore]:
    recorder, clock = _recorder(tmp_path, policy)
    runner = CheckRunner(ModuleRunner(config.instance.module_dirs, config.instance.plugin_dirs))
    executor = CheckExecutor(runner, recorder, clock, lambda: (config, 3))
    return executor, recorder.book, recorder.history


def test_type_two_dependency_runs_first_and_records_depend(tmp_path: Path, scratch: Path) -> None:
    config = make_config(
        tmp_path,
        scratch,
        "  broken: {module: warn, hosts: [gw1]}\n"
        "dependencies:\n"
        "  - {checks: [ping], hosts: [web1], on: broken@gw1, run_first: true}\n",
    )
    executor, book, history = _executor(tmp_path, config)
    [item] = [
        i
        for i in CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items
        if i.check == "ping"
    ]
    executor.execute(item, WorkContext(item))
    assert book.get("ping", "web1") is None  # state of a blocked pair is not touched
    assert book.get("ping", "web2") is not None and book.get("ping", "web2").rc == 0  # type: ignore[union-attr]
    [record] = list(history.read("web1", "ping"))
    assert record["rc"] == 6 and record["comment"].startswith("dependency broken@gw1 failed")
    assert record["gen"] == 3


def test_executor_records_state_history_and_results_log(tmp_path: Path, scratch: Path) -> None:
    config = make_config(tmp_path, scratch)
    executor, book, history = _executor(tmp_path, config)
    items = CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items
    for item in items:
        executor.execute(item, WorkContext(item))
    state = book.get("http", "web1")
    assert state is not None and state.rc == 0 and state.comment == "OK: web1 fine"
    assert state.next_due == T0 + timedelta(minutes=5)
    assert [r["rc"] for r in history.read("web2", "http")] == [0]
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {(r["check"], r["host"]) for r in lines} >= {("http", "web1"), ("ping", "gw1")}


@pytest.mark.parametrize(("kind", "rc"), [("required", 1), ("optional", 0)])
def test_composite_runs_components_together(
    tmp_path: Path, scratch: Path, kind: str, rc: int
) -> None:
    config = make_config(
        tmp_path,
        scratch,
        "  bad: {module: garbage-output, hosts: [web1]}\n"
        "  site: {required: [ping], " + kind + ": [bad], hosts: [web1]}\n"
        if kind == "optional"
        else "  bad: {plugin: plugin-dummy, argv: ['2', 'down'], hosts: [web1]}\n"
        "  site: {required: [ping, bad], hosts: [web1]}\n",
    )
    runner = CheckRunner(ModuleRunner(config.instance.module_dirs, config.instance.plugin_dirs))
    [result] = runner.run(config, config.checks["site"], [config.hosts["web1"]])
    assert result.rc == rc
    assert result.scalar == 2 and "ping:" in result.comment and "bad:" in result.comment


def test_steps_hand_the_loop_only_runs_and_offloaded_blocking_work(
    tmp_path: Path, scratch: Path
) -> None:
    """The check loop must never block: a composite's components (threads joined) and
    Type II dependencies (runs of other checks) come as Offload steps, everything else as
    started runs; driven to the end, each records as `execute` does."""
    config = make_config(
        tmp_path,
        scratch,
        "  site: {required: [ping], hosts: [web1]}\n"
        "dependencies:\n"
        "  - {checks: [http], hosts: [web1], on: ping@gw1, run_first: true}\n",
    )
    executor, book, _ = _executor(tmp_path, config)
    items = {
        (i.check, i.hosts): i
        for i in CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items
    }
    expected = {
        ("ping", ("web1", "web2", "gw1")): [Running],
        ("http", ("web2",)): [Running],
        ("http", ("web1",)): [Offload, Running],  # its dependency first, then itself
        ("site", ("web1",)): [Offload],
    }
    for key, kinds in expected.items():
        item = items[key]
        steps = executor.steps(item, WorkContext(item))
        seen: list[type] = []
        value = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration:
                break
            seen.append(type(step))
            value = run_step(step)
        assert seen == kinds, key
    assert {key for key, _ in book.items()} >= {("site", "web1"), ("http", "web1")}


def test_a_batch_is_recorded_in_slices_with_pauses_between(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks_execute, "RECORD_SLICE", 2)
    config = make_config(tmp_path, scratch)
    executor, book, _ = _executor(tmp_path, config)
    [item] = [
        i
        for i in CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items
        if i.check == "ping"
    ]
    steps = executor.steps(item, WorkContext(item))
    run = steps.send(None)
    assert isinstance(run, Running)
    assert steps.send(run_step(run)) is PAUSE  # two of the three hosts recorded, then a pause
    assert [book.get("ping", h) is not None for h in ("web1", "web2", "gw1")] == [
        True,
        True,
        False,
    ]
    with pytest.raises(StopIteration):
        steps.send(None)
    assert book.get("ping", "gw1") is not None


def test_with_fsync_always_recording_is_an_offloaded_step(tmp_path: Path, scratch: Path) -> None:
    config = make_config(tmp_path, scratch)
    executor, book, history = _executor(tmp_path, config)
    executor.offload_records = True
    [item] = [
        i
        for i in CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items
        if i.check == "http" and i.hosts == ("web1",)
    ]
    steps = executor.steps(item, WorkContext(item))
    run = steps.send(None)
    assert isinstance(run, Running)
    record = steps.send(run_step(run))
    assert isinstance(record, Offload)
    assert book.get("http", "web1") is None  # not yet: the offloaded step records
    with pytest.raises(StopIteration):
        steps.send(run_step(record))
    assert [r["rc"] for r in history.read("web1", "http")] == [0]
    assert book.get("http", "web1") is not None


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_recording_under_fsync_always_leaks_no_descriptor(tmp_path: Path, scratch: Path) -> None:
    """With fsync: always each run is recorded on a fresh offload thread. The results log
    once kept a descriptor per writing thread until shutdown: one leaked per check run."""
    config = make_config(tmp_path, scratch)
    executor, _, history = _executor(tmp_path, config, FsyncPolicy.ALWAYS)
    executor.offload_records = True
    pool = LoopPool("t", 4, executor.steps, SystemClock())
    pool.start()
    try:
        before = open_descriptors()
        runs = 120
        items = [
            WorkItem(
                id=f"i{n}",
                kind=WorkKind.CHECK,
                check="http",
                hosts=(("web1", "web2")[n % 2],),
                planned=time.time(),
                key=f"check:http@{n}",
            )
            for n in range(runs)
        ]
        assert pool.submit(items) == []
        wait_until(lambda: pool.stats()["completed"] == runs, timeout=60)
        after = open_descriptors()
    finally:
        pool.stop(1.0, lambda ctx: None)
    assert len(list(history.read("web1", "http"))) == runs // 2
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == runs
    assert after - before <= 2, f"{after - before} descriptors more after {runs} runs"


# --------------------------------------------------------------------------- results stream


def test_results_log_lines_stay_whole_under_many_writers(tmp_path: Path) -> None:
    results = ResultsLog(tmp_path / "results.jsonl", FakeClock(T0))
    padding = "x" * 3000  # lines longer than a small buffer, so interleaving would show

    def work(index: int) -> None:
        for n in range(200):
            results.write({"thread": index, "n": n, "pad": padding})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    results.close()
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 8 * 200
    for index in range(8):  # each writer's lines in its own order
        assert [r["n"] for r in lines if r["thread"] == index] == list(range(200))


def test_results_log_follows_rotation_within_a_second(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "results.jsonl"
    results = ResultsLog(path, clock)
    results.write({"n": 1})
    path.rename(tmp_path / "results.jsonl.1")  # logrotate, create mode
    results.write({"n": 2})  # within the second: still the rotated file
    clock.advance(1.5)
    results.write({"n": 3})
    assert (tmp_path / "results.jsonl.1").read_text() == '{"n":1}\n{"n":2}\n'
    assert path.read_text() == '{"n":3}\n'
    results.close()
    results.write({"n": 4})  # a write after close opens the file again
    results.close()
    assert path.read_text() == '{"n":3}\n{"n":4}\n'


def test_plugin_long_output_and_stderr_reach_state_and_history(
    tmp_path: Path, scratch: Path
) -> None:
    talker = scratch / "mod" / "check" / "long-talker"
    talker.write_text(
        "#!/bin/sh\n"
        "echo 'WARNING: 2 of 5 disks degraded | degraded=2'\n"
        "echo 'sda: ok'\necho 'sdb: degraded (smart 5)'\necho 'sdc: degraded | more=1'\n"
        "echo 'sdd: after the bar is perfdata'\n"
        "exit 1\n"
    )
    mute = scratch / "mod" / "check" / "stderr-only"
    mute.write_text(
        "#!/bin/sh\necho >&2\necho 'cannot open /dev/sdz: no such device' >&2\nexit 3\n"
    )
    for plugin in (talker, mute):
        plugin.chmod(0o755)
    config = make_config(
        tmp_path,
        scratch,
        "  raid: {plugin: long-talker, hosts: [gw1]}\n  smart: {plugin: stderr-only, hosts: [gw1]}",
    )
    executor, book, history = _executor(tmp_path, config)
    for item in CheckScheduler(CheckBook(), ItemIds("t"), UTC).tick(config, T0).items:
        if item.check in ("raid", "smart"):
            executor.execute(item, WorkContext(item))
    long_output = "sda: ok\nsdb: degraded (smart 5)\nsdc: degraded "
    raid = book.get("raid", "gw1")
    assert raid is not None and raid.comment == "WARNING: 2 of 5 disks degraded"
    assert raid.long_output == long_output.rstrip()
    assert [p.label for p in raid.perfdata] == ["degraded", "more"]
    on_disk = json.loads((tmp_path / "state/host/gw1/raid/check.json").read_text())
    assert on_disk["long_output"] == raid.long_output
    [record] = list(history.read("gw1", "raid"))
    assert record["long_output"] == raid.long_output
    smart = book.get("smart", "gw1")
    assert smart is not None and smart.comment == "cannot open /dev/sdz: no such device"
    assert smart.code == "MISCONFIG" and smart.long_output == ""
    [record] = list(history.read("gw1", "smart"))
    assert record["comment"] == smart.comment and "long_output" not in record
