"""Dispatch from the scheduler to remote workers (DESIGN §7b), against a real nats-server.

Real certificates made here with openssl, the broker configuration `survivor
broker-config` renders, real `survivor worker` processes. The scheduler side
is the daemon's own parts (build_parts: the executor, the recorder, the
dispatcher thread) with the real clock; each test drives check runs through
the executor's steps and reads what they wrote to history, as the daemon
would. Nothing is mocked at the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from survivor.checks.scheduler import check_item
from survivor.cli import main
from survivor.clock import SystemClock
from survivor.config import load_config
from survivor.daemon.wiring import Parts, RunningConfig, Stores, build_parts
from survivor.protocol.remote import work_request
from survivor.work.queue import WorkContext
from survivor.work.remote import Job, NotServed, Outcome
from survivor.work.steps import drive
from tests.conftest import FIXTURES, wait_until
from tests.remote.natskit import (
    Broker,
    Pki,
    WorkerProc,
    connect,
    find_nats_server,
    free_port,
    render_broker_config,
)

nats = pytest.importorskip("nats", reason="nats-py is in the [dev] extra")
NATS_SERVER = find_nats_server()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(NATS_SERVER is None, reason="no nats-server (apt nats-server, or [dev])"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make certificates"),
]
PREFIX = "survivor.d"
WORKERS = ("dc1-a", "dc1-b", "dc2-a")
SLOW = """\
#!/usr/bin/env python3
import json, os, sys, time
doc = json.load(sys.stdin)
open(doc["args"]["marker"], "a").write(os.environ.get("SURVIVOR_WORKER", "scheduler") + "\\n")
time.sleep(doc["args"]["seconds"])
for host in doc["hosts"]:
    print(json.dumps({"host": host["name"], "rc": 0, "comment": "slept"}), flush=True)
"""

SCHEDULER = """\
instance: {{name: t, state_dir: state, history_dir: history, module_dir: {mod}}}
hosts: {{web1: {{}}, web2: {{}}, db1: {{}}, br1: {{}}}}
classes:
  web: {{hosts: [web1, web2], schedule: s}}
  db: {{hosts: [db1], schedule: s}}
  branch: {{hosts: [br1], schedule: s}}
schedules: {{s: [{{every: 5m}}]}}
checks:
  disk: {{module: ok, hosts: all, timeout: 2s}}
  load: {{plugin: plugin-dummy, argv: ["0", "on {{host}}"], hosts: [web1, db1], timeout: 2s}}
  slow: {{module: slow, hosts: [web1], timeout: {slow_timeout}s,
          args: {{marker: "{marker}", seconds: {slow_s}}}}}
workers:
  broker: {{servers: ["tls://127.0.0.1:{port}"], ca: {pki}/ca.pem, cert: {pki}/scheduler.pem,
           key: {pki}/scheduler.key, subject_prefix: {prefix}}}
  approved:
    dc1-a: {{subject: "CN=dc1-a"}}
    dc1-b: {{subject: "CN=dc1-b"}}
    dc2-a: {{subject: "CN=dc2-a"}}
  dispatch_grace: 1s
worker_groups:
  dc1: {{workers: [dc1-a, dc1-b]}}
  dc2: {{workers: [dc2-a]}}
placement: {{web: [dc1, dc2], branch: [dc2, {{local: false}}]}}
"""


@dataclass
class Site:
    root: Path
    pki: Pki
    broker: Broker
    mod: Path

    def another_broker(self, workdir: Path, name: str = "nats") -> Broker:
        """A broker of its own (not started) with the site's configuration on a free port:
        for a test that stops, kills or replaces it."""
        assert NATS_SERVER is not None
        port = free_port()
        conf = workdir / f"{name}.conf"
        conf.write_text(
            (self.root / "nats.conf").read_text().replace(f":{self.broker.port}", f":{port}")
        )
        return Broker(NATS_SERVER, conf, port, workdir / f"{name}.log")

    def worker_file(
        self, name: str, groups: list[str], *, port: int | None = None, mod: str = "mod"
    ) -> Path:
        path = self.root / f"{name}-{port or self.broker.port}-{mod}.yaml"
        path.write_text(
            textwrap.dedent(f"""\
                name: {name}
                groups: {json.dumps(groups)}
                broker: {{servers: ["tls://127.0.0.1:{port or self.broker.port}"],
                          ca: pki/ca.pem, cert: pki/{name}.pem, key: pki/{name}.key,
                          subject_prefix: {PREFIX}}}
                module_dir: {mod}
                plugin_dirs: [plugins]
                concurrency: 4
                log: {{target: stderr, level: debug}}
                """)
        )
        return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site_in(tmp_path_factory.mktemp("dispatch")) as made:
        yield made


@contextlib.contextmanager
def site_in(root: Path) -> Iterator[Site]:
    """Certificates, modules, the rendered broker configuration and a running broker in `root`
    (also used by bench/failover.py)."""
    root.mkdir(parents=True, exist_ok=True)
    pki = Pki(root / "pki")
    for name in ("server", "scheduler", *WORKERS):
        pki.issue(name)
    port = free_port()
    for mod_name in ("mod", "mod-other"):
        mod = root / mod_name / "check"
        mod.mkdir(parents=True)
        for name in ("ok", "plugin-dummy"):
            shutil.copy2(FIXTURES / "mod" / "check" / name, mod / name)
        (mod / "slow").write_text(SLOW)
        (mod / "slow").chmod(0o755)
    with (root / "mod-other" / "check" / "ok").open("a") as other:
        other.write("# another version of the module\n")
    config = root / "render.yaml"
    config.write_text(
        SCHEDULER.format(
            mod=root / "mod", port=port, pki=pki.root, prefix=PREFIX,
            marker=root / "m", slow_s=1, slow_timeout=3,
        )
    )  # fmt: skip
    render_broker_config(config, pki, port, root / "nats.conf")
    assert NATS_SERVER is not None
    broker = Broker(NATS_SERVER, root / "nats.conf", port, root / "nats.log").start()
    try:
        yield Site(root, pki, broker, root / "mod")
    finally:
        broker.stop()


@dataclass
class Scheduler:
    """The daemon's parts on a scratch state tree, with the dispatcher thread running."""

    parts: Parts
    root: Path
    marker: Path
    items: int = 0
    workers: list[WorkerProc] = field(default_factory=list)

    def run(self, check: str, hosts: tuple[str, ...]) -> None:
        """One planned run of `check` for `hosts`, through the executor (blocks until recorded)."""
        config = self.parts.running.config
        item = check_item(self.parts.ids, config.checks[check], hosts, time.time())
        drive(self.parts.check_pool.steps(item, WorkContext(item)))

    def history(self, host: str, check: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for path in sorted((self.root / "history" / "host" / host / check).glob("check-*.jsonl")):
            records.extend(json.loads(line) for line in path.read_text().splitlines())
        return records

    def connected(self) -> bool:
        assert self.parts.dispatcher is not None
        return self.parts.dispatcher.connected


@pytest.fixture
def make_scheduler(site: Site, tmp_path: Path) -> Iterator[Any]:
    with make_scheduler_in(site, tmp_path) as make:
        yield make


@contextlib.contextmanager
def make_scheduler_in(site: Site, tmp_path: Path) -> Iterator[Any]:
    """`make()` builds a Scheduler on a scratch tree in `tmp_path`; all are stopped after."""
    made: list[Scheduler] = []
    workers: list[WorkerProc] = []

    def make(port: int | None = None, slow_s: float = 1, slow_timeout: float = 3) -> Scheduler:
        root = tmp_path / f"s{len(made)}"
        root.mkdir()
        marker = root / "marker"
        path = root / "survivor.yaml"
        path.write_text(
            SCHEDULER.format(
                mod=site.mod, port=port or site.broker.port, pki=site.pki.root, prefix=PREFIX,
                marker=marker, slow_s=slow_s, slow_timeout=slow_timeout,
            )
        )  # fmt: skip
        config = load_config(path)
        clock = SystemClock()
        now = clock.now()
        parts = build_parts(config, Stores.open(config), RunningConfig(config, 1, now), clock, now)
        assert parts.dispatcher is not None
        parts.dispatcher.start()
        sched = Scheduler(parts, root, marker, workers=workers)
        made.append(sched)
        return sched

    try:
        yield make
    finally:
        for proc in workers:
            proc.stop()
        for sched in made:
            assert sched.parts.dispatcher is not None
            sched.parts.dispatcher.stop()


def start_worker(
    site: Site, sched: Scheduler, name: str, groups: list[str], **kw: Any
) -> WorkerProc:
    proc = WorkerProc(site.worker_file(name, groups, **kw), site.root).start()
    sched.workers.append(proc)
    proc.wait_for("STATUS=connected")
    return proc


def kill(proc: WorkerProc) -> None:
    assert proc.proc is not None
    proc.signal(signal.SIGKILL)
    proc.proc.wait(10)


# --------------------------------------------------------------------------- placement


def test_a_placed_check_runs_on_the_worker_and_an_unplaced_one_locally(
    site: Site, make_scheduler: Any
) -> None:
    sched = make_scheduler()
    start_worker(site, sched, "dc1-a", ["dc1"])
    wait_until(sched.connected, what="the scheduler's connection")
    sent = datetime.now(UTC)
    sched.run("disk", ("web1", "web2", "db1"))  # one module run: web placed, db not
    [web1] = sched.history("web1", "disk")
    [web2] = sched.history("web2", "disk")
    [db1] = sched.history("db1", "disk")
    assert (web1["w"], web2["w"], web1["comment"]) == ("dc1-a", "dc1-a", "all fine")
    assert "w" not in db1 and db1["comment"] == "all fine"
    t = datetime.fromisoformat(web1["t"])
    assert sent.replace(microsecond=sent.microsecond // 1000 * 1000) <= t <= datetime.now(UTC)
    sched.run("load", ("web1",))  # a plugin, one host a run
    sched.run("load", ("db1",))
    [remote] = sched.history("web1", "load")
    [here] = sched.history("db1", "load")
    assert remote["w"] == "dc1-a" and remote["comment"] == "OK: on web1"
    assert "w" not in here and here["comment"] == "OK: on db1"
    state = json.loads((sched.root / "state" / "host" / "web1" / "disk" / "check.json").read_text())
    assert state["code"] == "OK"


def test_every_group_down_runs_locally_and_local_false_is_timedout_naming_the_groups(
    site: Site, make_scheduler: Any
) -> None:
    sched = make_scheduler()
    wait_until(sched.connected, what="the scheduler's connection")
    began = time.monotonic()
    sched.run("disk", ("web1", "br1"))
    took = time.monotonic() - began
    [web1] = sched.history("web1", "disk")
    [br1] = sched.history("br1", "disk")
    assert "w" not in web1 and web1["code"] == "OK"  # dc1, dc2: no responders -> local
    assert br1["code"] == "TIMEDOUT" and "w" not in br1
    assert "dc2 (no responders)" in br1["comment"] and "local is off" in br1["comment"]
    assert took < 2.0  # "no responders" is an answer, not a timeout


def test_the_next_group_serves_when_the_first_has_no_live_member(
    site: Site, make_scheduler: Any
) -> None:
    sched = make_scheduler()
    start_worker(site, sched, "dc2-a", ["dc2"])
    wait_until(sched.connected, what="the scheduler's connection")
    began = time.monotonic()
    sched.run("disk", ("web1",))
    assert time.monotonic() - began < 1.0  # failover within 1 s (the target)
    [web1] = sched.history("web1", "disk")
    assert web1["w"] == "dc2-a"


def test_a_worker_killed_mid_run_yields_exactly_one_result_then_the_next_group_serves(
    site: Site, make_scheduler: Any
) -> None:
    sched = make_scheduler(slow_s=2, slow_timeout=3)
    first = start_worker(site, sched, "dc1-a", ["dc1"])
    start_worker(site, sched, "dc2-a", ["dc2"])
    wait_until(sched.connected, what="the scheduler's connection")
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sched.run("slow", ("web1",))
        except BaseException as err:
            failure.append(err)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    wait_until(lambda: sched.marker.exists() and "dc1-a" in sched.marker.read_text())
    kill(first)
    began = time.monotonic()
    assert done.wait(20) and not failure
    waited = time.monotonic() - began
    records = sched.history("web1", "slow")
    assert len(records) == 1  # never two, never none
    assert records[0]["code"] in ("OK", "TIMEDOUT")
    assert records[0].get("w") != "dc1-a"  # its reply never came
    assert waited <= 3 + 1 + 2 + 1.5  # timeout + grace, then dc2 (or local) ran it once
    # the next run: dc1 has nobody now, so dc2 at once
    began = time.monotonic()
    sched.run("disk", ("web1",))
    assert time.monotonic() - began < 1.0
    assert sched.history("web1", "disk")[-1]["w"] == "dc2-a"


def test_a_hung_group_costs_the_timeout_once_then_its_breaker_skips_it(
    site: Site, make_scheduler: Any
) -> None:
    """A member that takes requests and never answers (here: a client on dc1-a's certificate)."""
    sched = make_scheduler()
    start_worker(site, sched, "dc2-a", ["dc2"])
    wait_until(sched.connected, what="the scheduler's connection")
    parts = sched.parts
    assert parts.dispatcher is not None
    parts.dispatcher.breakers.after = 1

    with hung_member(site, "dc1-a", "dc1"):
        # After a timeout the next group is tried only while the run's minute lasts.
        wait_until(lambda: time.time() % 60 < 45, timeout=20, what="a minute with time left")
        began = time.monotonic()
        sched.run("disk", ("web1",))
        first = time.monotonic() - began
        began = time.monotonic()
        sched.run("disk", ("web1",))
        second = time.monotonic() - began
    runs = sched.history("web1", "disk")
    assert [r.get("w") for r in runs] == ["dc2-a", "dc2-a"], runs
    assert 2.0 <= first < 2 + 1 + 1.0  # the check's timeout + dispatch_grace, once
    assert second < 1.0  # the breaker skips dc1
    assert parts.dispatcher.workers_doc()["breakers"]["dc1"]["open"] is True


def test_busy_is_tried_twice_more_on_the_group_then_the_next(
    site: Site, make_scheduler: Any
) -> None:
    sched = make_scheduler()
    start_worker(site, sched, "dc2-a", ["dc2"])
    wait_until(sched.connected, what="the scheduler's connection")

    def busy(request: dict[str, Any], n: int) -> bytes:
        doc = {"v": 1, "work_id": request["work_id"], "status": "busy", "worker": "dc1-a"}
        return json.dumps(doc).encode()

    with hung_member(site, "dc1-a", "dc1", busy) as member:
        began = time.monotonic()
        sched.run("disk", ("web1",))
        took = time.monotonic() - began
    assert len(member.got) == 3  # the first try and two more
    assert sched.history("web1", "disk")[0]["w"] == "dc2-a"
    assert took < 1.0
    assert sched.parts.dispatcher is not None
    assert sched.parts.dispatcher.workers_doc()["breakers"] == {}  # busy is an answer


class hung_member:
    """A NATS client with a worker's certificate, in a queue group, that never answers; or,
    with `answer`, answers each request with what `answer(request)` returns."""

    def __init__(self, site: Site, name: str, group: str, answer: Any = None) -> None:
        self.site, self.name, self.group, self.answer = site, name, group, answer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.got: list[dict[str, Any]] = []

    def __enter__(self) -> hung_member:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(15)
        return self

    async def _start(self) -> None:
        self.nc = await connect(self.site.broker.url, self.site.pki.tls(self.name))

        async def take(msg: Any) -> None:
            request = json.loads(msg.data)
            self.got.append(request)
            if self.answer is not None:
                await msg.respond(self.answer(request, len(self.got)))

        await self.nc.subscribe(f"{PREFIX}.check.{self.group}", queue=self.group, cb=take)
        await self.nc.flush()

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.nc.close(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --------------------------------------------------------------------------- hostile replies


def _reply(request: dict[str, Any], **changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "v": 1,
        "work_id": request["work_id"],
        "status": "ok",
        "worker": "dc1-a",
        "t": datetime.now(UTC).isoformat(),
        "duration_ms": 1,
        "module_sha256": "",
        "results": [{"host": h["name"], "rc": 0, "comment": "forged"} for h in request["hosts"]],
    }
    doc.update(changes)
    return json.dumps(doc).encode()


HOSTILE = {
    1: lambda r: b"\x00garbage{",
    2: lambda r: _reply(r, work_id="c0000.0"),
    3: lambda r: _reply(r, comment="x" * 300_000),
    4: lambda r: _reply(r, results=[{"host": "db1", "rc": 0, "comment": "not asked"}]),
    5: lambda r: _reply(r, worker="dc2-a"),  # approved, but not for dc1
}


def test_hostile_replies_are_dropped_and_logged(
    site: Site, make_scheduler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sched = make_scheduler()
    wait_until(sched.connected, what="the scheduler's connection")
    dispatcher = sched.parts.dispatcher
    assert dispatcher is not None
    caplog.set_level(logging.INFO)

    def answer(request: dict[str, Any], n: int) -> bytes:
        kind = int(request["work_id"].split("-")[1])
        return HOSTILE[kind](request)

    config = sched.parts.running.config
    chk, web1 = config.checks["disk"], config.hosts["web1"]
    with hung_member(site, "dc1-a", "dc1", answer):
        futures: list[Future[Outcome]] = []
        for kind in HOSTILE:
            request = partial(work_request, chk, [web1], work_id=f"w-{kind}", fingerprint="f")
            job = Job(
                what=f"disk@web1 #{kind}",
                work_id=f"w-{kind}",
                groups=("dc1",),
                request=lambda deadline, request=request: request(deadline=deadline),
                hosts=("web1",),
                wait_s=2.0,
                until=time.monotonic() + 60,
                max_bytes=80_000,
            )
            futures.append(dispatcher.dispatch(job))
        outcomes = [f.result(15) for f in futures]
    assert all(isinstance(o, NotServed) and not o.broker for o in outcomes)
    assert [str(o.tried[0]) for o in outcomes if isinstance(o, NotServed)] == [
        "dc1 (no answer: within 2 s)"
    ] * len(HOSTILE)
    dropped = [r.getMessage() for r in caplog.records if "reply dropped" in r.getMessage()]
    assert len(dropped) == len(HOSTILE), dropped
    text = "\n".join(dropped)
    assert "reply is not JSON" in text
    assert "reply for work 'c0000.0', not 'w-2'" in text
    assert "over the limit of 80000" in text
    assert "host 'db1', which was not asked" in text
    assert "worker dc2-a is not approved for group dc1" in text


# --------------------------------------------------------------------------- module hash


def test_a_worker_whose_module_differs_is_reported(site: Site, make_scheduler: Any) -> None:
    sched = make_scheduler()
    start_worker(site, sched, "dc1-b", ["dc1"], mod="mod-other")
    wait_until(sched.connected, what="the scheduler's connection")
    sched.run("disk", ("web1",))
    assert sched.history("web1", "disk")[0]["w"] == "dc1-b"
    dispatcher = sched.parts.dispatcher
    assert dispatcher is not None
    rows = {row["name"]: row for row in dispatcher.workers_doc()["workers"]}
    mismatch = rows["dc1-b"]["module_mismatch"]
    assert list(mismatch) == ["ok"]
    assert mismatch["ok"]["worker"] != mismatch["ok"]["scheduler"]
    assert rows["dc1-a"]["module_mismatch"] == {}


# --------------------------------------------------------------------------- broker outage


def test_a_broker_outage_runs_placed_checks_locally_at_once_and_placement_resumes(
    site: Site, make_scheduler: Any, tmp_path: Path
) -> None:
    broker = site.another_broker(tmp_path).start()
    port = broker.port
    try:
        sched = make_scheduler(port=port, slow_s=3, slow_timeout=10)
        start_worker(site, sched, "dc1-a", ["dc1"], port=port)
        wait_until(sched.connected, what="the scheduler's connection")
        sched.run("disk", ("web1",))
        assert sched.history("web1", "disk")[-1]["w"] == "dc1-a"
        # a run in flight on the worker when the broker dies
        done = threading.Event()
        threading.Thread(
            target=lambda: (sched.run("slow", ("web1",)), done.set()), daemon=True
        ).start()
        wait_until(lambda: sched.marker.exists())
        assert broker.proc is not None
        broker.proc.kill()  # SIGKILL
        broker.proc.wait()
        killed = time.monotonic()
        wait_until(lambda: not sched.connected(), timeout=2, what="the scheduler noticing")
        assert done.wait(10)
        [slow] = sched.history("web1", "slow")  # exactly one result, run by the scheduler
        assert "w" not in slow and slow["code"] == "OK"
        assert sched.marker.read_text().splitlines() == ["dc1-a", "scheduler"]
        began = time.monotonic()
        sched.run("disk", ("web1", "br1"))  # while the broker is down
        assert time.monotonic() - began < 1.0
        assert time.monotonic() - killed < 1.0 + 3 + 1  # noticed at once; local run of slow
        web1 = sched.history("web1", "disk")[-1]
        br1 = sched.history("br1", "disk")[-1]
        assert "w" not in web1 and web1["code"] == "OK"
        assert br1["code"] == "TIMEDOUT" and "broker" in br1["comment"]
        broker.start()  # back: placement resumes by itself
        wait_until(sched.connected, timeout=10, what="the scheduler reconnecting")
        deadline = time.monotonic() + 15
        while True:  # the worker reconnects on its own schedule
            sched.run("disk", ("web1",))
            if sched.history("web1", "disk")[-1].get("w") == "dc1-a":
                break
            assert time.monotonic() < deadline, "remote placement did not resume"
            time.sleep(0.2)
        assert sched.parts.dispatcher is not None
        assert sched.parts.dispatcher.broker_doc()["connected"] is True
    finally:
        broker.stop()


# --------------------------------------------------------------------------- the daemon

DAEMON = """\
instance: {{name: d, state_dir: state, history_dir: history, module_dir: {mod},
           results_log: results.jsonl}}
hosts: {{web1: {{}}, web2: {{}}, db1: {{}}}}
classes:
  web: {{hosts: [web1, web2], schedule: s}}
  db: {{hosts: [db1], schedule: s}}
schedules: {{s: [{{every: 1m}}]}}
checks:
  disk: {{module: ok, hosts: all, timeout: 5s}}
  load: {{plugin: plugin-dummy, argv: ["0", "fine"], hosts: [web1, db1], timeout: 5s}}
workers:
  broker: {{servers: ["tls://127.0.0.1:{port}"], ca: {pki}/ca.pem, cert: {pki}/scheduler.pem,
           key: {pki}/scheduler.key, subject_prefix: {prefix}}}
  approved: {{dc1-a: {{subject: "CN=dc1-a"}}, dc1-b: {{subject: "CN=dc1-b"}},
             dc2-a: {{subject: "CN=dc2-a"}}}}
  dispatch_grace: 1s
worker_groups: {{dc1: {{workers: [dc1-a, dc1-b]}}, dc2: {{workers: [dc2-a]}}}}
placement: {{web: [dc1]}}
"""


def test_the_daemon_loses_no_run_and_doubles_none_when_the_broker_is_killed(
    site: Site, tmp_path: Path
) -> None:
    """A real daemon on a clock 60x fast (a minute a second), its broker SIGKILLed and back."""
    from tests.integration.daemonproc import DaemonProcess

    broker = site.another_broker(tmp_path).start()
    port = broker.port
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "survivor.yaml"
    config.write_text(DAEMON.format(mod=site.mod, port=port, pki=site.pki.root, prefix=PREFIX))
    results = tmp_path / "etc" / "results.jsonl"
    daemon = DaemonProcess(config, tmp_path)
    worker = WorkerProc(site.worker_file("dc1-a", ["dc1"], port=port), tmp_path)

    def lines() -> list[dict[str, Any]]:
        return result_lines(results)

    def remote_runs() -> int:
        return sum(1 for r in lines() if r.get("w") == "dc1-a")

    state = tmp_path / "etc" / "state"

    def broker_connected() -> bool:
        doc = json.loads((state / "daemon.json").read_text())
        return bool(doc.get("broker", {}).get("connected"))

    try:
        daemon.start().wait_ready()
        wait_until(broker_connected, timeout=20, what="daemon.json saying the broker is there")
        worker.start().wait_for("STATUS=connected")  # its first heartbeat reaches the daemon
        wait_until(lambda: remote_runs() >= 6, timeout=20, what="runs on dc1-a")
        # Its heartbeat is in workers.json (alive or not by now: 90 s of the daemon's fast
        # clock are 1.5 s, and a worker beats every 30 s).
        wait_until(lambda: "dc1-a" in seen_workers(config), what="survivor workers --json")
        assert seen_workers(config)["dc1-a"]["groups"] == ["dc1"]
        status = CliRunner().invoke(main, ["--config", str(config), "status"])
        assert "broker: connected to 127.0.0.1:" in status.output
        assert re.search(r"workers: [01] of 3 alive", status.output), status.output
        assert not any(r.get("w") for r in lines() if r["host"] == "db1")  # unplaced: local
        assert broker.proc is not None
        broker.proc.kill()  # SIGKILL, mid-minute of the daemon's clock
        broker.proc.wait()
        killed, seen = time.monotonic(), len(lines())

        def local_web_run() -> bool:
            return any(r["host"] == "web1" and "w" not in r for r in lines()[seen:])

        wait_until(local_web_run, timeout=5, what="placed checks running locally")
        assert time.monotonic() - killed < 1.5  # within a second (and one poll of ours)
        wait_until(lambda: not broker_connected(), what="daemon.json saying the broker is gone")
        assert "broker: UNREACHABLE" in workers_cli(config)

        def local_minutes() -> int:
            return sum(1 for r in lines()[seen:] if r["host"] == "web1" and "w" not in r)

        wait_until(lambda: local_minutes() >= 6, timeout=10, what="an outage of some minutes")
        broker.start()
        before = remote_runs()
        wait_until(lambda: remote_runs() > before + 4, timeout=20, what="placement resuming")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
    finally:
        daemon.kill()
        worker.stop()
        broker.stop()
    runs = each_minute_once(lines())
    assert set(runs) == {(c, h) for c in ("disk",) for h in ("web1", "web2", "db1")} | {
        ("load", "web1"),
        ("load", "db1"),
    }


def result_lines(results: Path) -> list[dict[str, Any]]:
    """The daemon's results_log, a record per finished run."""
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text().splitlines()]


def each_minute_once(lines: list[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """The planned minutes of each (check, host) in `lines`, after asserting that none ran
    twice and none is missing between its first and its last."""
    runs: dict[tuple[str, str], list[float]] = {}
    for r in lines:
        runs.setdefault((r["check"], r["host"]), []).append(r["planned"] // 60)
    for pair, minutes in runs.items():
        assert len(minutes) == len(set(minutes)), f"{pair}: a minute ran twice"
        span = int(max(minutes) - min(minutes)) + 1
        missing = sorted(set(range(int(min(minutes)), int(max(minutes)) + 1)) - set(minutes))
        assert len(minutes) == span, f"{pair}: minutes lost: {missing}"
    return runs


def workers_cli(config: Path) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), "workers"])
    assert result.exit_code == 0, result.output
    return result.output


def seen_workers(config: Path) -> dict[str, dict[str, Any]]:
    """`survivor workers --json`: the workers with a heartbeat, by name."""
    result = CliRunner().invoke(main, ["--config", str(config), "workers", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {w["name"] for w in doc["workers"]} == set(WORKERS)
    return {w["name"]: w for w in doc["workers"] if w["last_seen"] is not None}


def test_a_reload_turns_remote_workers_on_moves_them_to_another_broker_and_off(
    site: Site, tmp_path: Path
) -> None:
    """SIGHUP applies the whole `workers:` section without a restart: added (runs go to the
    workers), pointed at another broker (a new connection, the old one closes), removed
    (runs are local again); and no pair loses or doubles a minute through any of it."""
    from tests.integration.daemonproc import DaemonProcess

    brokers = {name: site.another_broker(tmp_path, f"nats-{name}") for name in ("a", "b")}
    local_only = DAEMON[: DAEMON.index("workers:")]
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "survivor.yaml"
    state = tmp_path / "etc" / "state"
    results = tmp_path / "etc" / "results.jsonl"

    def write_config(broker: str | None) -> None:
        text = DAEMON if broker else local_only
        port = brokers[broker].port if broker else 0
        config.write_text(text.format(mod=site.mod, port=port, pki=site.pki.root, prefix=PREFIX))

    def lines() -> list[dict[str, Any]]:
        return result_lines(results)

    def web1_after(seen: int, worker: str | None) -> int:
        return sum(1 for r in lines()[seen:] if r["host"] == "web1" and r.get("w") == worker)

    def reloaded(generation: int) -> bool:
        doc = json.loads((state / "daemon.json").read_text())
        return bool(doc["config"]["generation"] == generation and doc["last_reload"]["ok"])

    def broker_server() -> str:
        doc = json.loads((state / "daemon.json").read_text())
        broker = doc.get("broker") or {}
        return str(broker.get("server")) if broker.get("connected") else ""

    write_config(None)
    daemon = DaemonProcess(config, tmp_path)
    workers = [
        WorkerProc(site.worker_file("dc1-a", ["dc1"], port=brokers["a"].port), tmp_path),
        WorkerProc(site.worker_file("dc1-b", ["dc1"], port=brokers["b"].port), tmp_path),
    ]
    try:
        for broker in brokers.values():
            broker.start()
        for worker in workers:
            worker.start().wait_for("STATUS=connected")
        daemon.start().wait_ready()
        wait_until(lambda: web1_after(0, None) >= 3, timeout=20, what="local runs")
        steps = [("a", "dc1-a"), ("b", "dc1-b"), (None, None)]
        for generation, (broker, worker) in enumerate(steps, start=2):
            write_config(broker)
            seen = len(lines())
            daemon.signal(signal.SIGHUP)
            wait_until(lambda g=generation: reloaded(g), timeout=20, what=f"reload {generation}")
            if broker is not None:
                port = f":{brokers[broker].port}"
                wait_until(lambda p=port: broker_server().endswith(p), what=f"broker {broker}")
            wait_until(
                lambda s=seen, w=worker: web1_after(s, w) >= 4,
                timeout=20,
                what=f"web1 run by {worker or 'the scheduler'} after reload {generation}",
            )
        assert "the connection to 127.0.0.1:" in daemon.log()  # broker a's, then b's
        assert daemon.log().count("the connection to 127.0.0.1:") == 2
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
    finally:
        daemon.kill()
        for worker in workers:
            worker.stop()
        for broker in brokers.values():
            broker.stop()
    reloads = [e for e in daemon_events(tmp_path) if e["event"] == "reload"]
    assert len(reloads) == 3 and not [e for e in reloads if e["not_applied"]]
    assert each_minute_once(lines())


def daemon_events(workdir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((workdir / "etc" / "history" / "daemon").glob("events-*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines()]
    return events


def test_a_renewed_certificate_or_another_broker_is_a_new_connection_a_moved_line_is_not(
    site: Site, tmp_path: Path
) -> None:
    """What makes a reload reconnect (Dispatcher.serves): the broker's settings and its TLS
    files on disk, not where the section sits in the file."""
    from survivor.work.remote import Dispatcher

    def workers(text: str) -> Any:
        path = tmp_path / "survivor.yaml"
        path.write_text(text)
        config = load_config(path)
        assert config.workers is not None
        return config.workers

    text = DAEMON.format(mod=site.mod, port=4222, pki=site.pki.root, prefix=PREFIX)
    first = workers(text)
    dispatcher = Dispatcher(first, {}, SystemClock())  # never started: no connection made
    assert dispatcher.serves(first.broker)
    moved = workers("\n\n" + text)
    assert moved.broker.mark != first.broker.mark and dispatcher.serves(moved.broker)
    assert not dispatcher.serves(workers(text.replace(":4222", ":4223")).broker)
    assert not dispatcher.serves(workers(text.replace(PREFIX, PREFIX + "x")).broker)
    cert = first.broker.cert
    renewed = tmp_path / "renewed.pem"
    shutil.copy2(cert, renewed)
    original = cert.read_bytes()
    try:
        renewed.replace(cert)  # the same bytes in a new file, as an operator's renewal
        assert not dispatcher.serves(first.broker)
    finally:
        cert.write_bytes(original)


def test_without_nats_py_the_log_says_what_to_install_and_placed_runs_stay_local(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The core install has no nats-py: a config with `workers:` must not kill the daemon
    (nor a reload that adds the section); the log names the extra to install."""
    from survivor.work.remote import Dispatcher

    path = tmp_path / "survivor.yaml"
    path.write_text(DAEMON.format(mod=site.mod, port=site.broker.port, pki=site.pki.root,
                                  prefix=PREFIX))  # fmt: skip
    config = load_config(path)
    assert config.workers is not None
    monkeypatch.setitem(sys.modules, "nats", None)  # `import nats` fails as if not installed
    dispatcher = Dispatcher(config.workers, config.worker_groups, SystemClock())
    with caplog.at_level(logging.ERROR, logger="survivor.work.remote"):
        dispatcher.start()
        assert dispatcher._thread is not None
        dispatcher._thread.join(10)
    assert "pip install 'survivor[remote]'" in caplog.text
    assert "Traceback" not in caplog.text
    job = Job("disk@web1", "w1", ("dc1",), lambda _: b"{}", ("web1",), 5.0, 0.0, 1024)
    outcome = dispatcher.dispatch(job).result(1)
    assert isinstance(outcome, NotServed) and outcome.broker
