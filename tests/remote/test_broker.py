"""Remote workers against a real nats-server with real certificates (DESIGN §7b).

The broker configuration is the one `survivor broker-config` renders; the
scheduler side is nats-py used directly (dispatch from the scheduler comes
later); workers are real `survivor worker` processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from survivor.cli import main
from survivor.model.config import CheckDef, CheckKind, Host
from survivor.protocol.remote import Status, WorkReply, parse_reply, work_request
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
PREFIX = "survivor.t"
WEB1 = Host("web1", "192.0.2.10", {"v": 5})
SLOW = """\
#!/usr/bin/env python3
import json, sys, time
doc = json.load(sys.stdin)
open(doc["args"]["marker"], "w").close()
time.sleep(doc["args"]["seconds"])
for host in doc["hosts"]:
    print(json.dumps({"host": host["name"], "rc": 0, "comment": "slept"}), flush=True)
"""


@dataclass
class Site:
    root: Path
    pki: Pki
    broker: Broker
    config: Path
    mod: Path

    def worker_file(self, name: str, groups: list[str], concurrency: int = 10) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(
            textwrap.dedent(f"""\
                name: {name}
                groups: {json.dumps(groups)}
                broker: {{servers: ["{self.broker.url}"], ca: pki/ca.pem,
                          cert: pki/{name}.pem, key: pki/{name}.key, subject_prefix: {PREFIX}}}
                module_dir: mod
                plugin_dirs: [plugins]
                concurrency: {concurrency}
                log: {{target: stderr, level: debug}}
                """)
        )
        return path


SCHEDULER_CONFIG = """\
instance: {{name: t, state_dir: state, history_dir: history}}
hosts: {{web1: {{}}}}
classes: {{web: {{hosts: [web1], schedule: s}}}}
schedules: {{s: [{{every: 5m}}]}}
checks: {{disk: {{module: ok, hosts: all}}}}
workers:
  broker: {{servers: ["tls://127.0.0.1:{port}"], ca: pki/ca.pem, cert: pki/scheduler.pem,
           key: pki/scheduler.key, subject_prefix: {prefix}}}
  approved:
    dc1-a: {{subject: "CN=dc1-a"}}
    dc1-b: {{subject: "CN=dc1-b"}}
    dc2-a: {{subject: "CN=dc2-a"}}
worker_groups:
  dc1: {{workers: [dc1-a, dc1-b]}}
  dc2: {{workers: [dc2-a]}}
placement: {{web: [dc1, dc2]}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    pki = Pki(root / "pki")
    for name in ("server", "scheduler", "dc1-a", "dc1-b", "dc2-a", "rogue"):
        pki.issue(name)
    port = free_port()
    config = root / "survivor.yaml"
    config.write_text(SCHEDULER_CONFIG.format(port=port, prefix=PREFIX))
    render_broker_config(config, pki, port, root / "nats.conf")
    mod = root / "mod" / "check"
    mod.mkdir(parents=True)
    for name in ("ok", "plugin-dummy", "hang"):
        shutil.copy2(FIXTURES / "mod" / "check" / name, mod / name)
    (mod / "slow").write_text(SLOW)
    (mod / "slow").chmod(0o755)
    assert NATS_SERVER is not None
    broker = Broker(NATS_SERVER, root / "nats.conf", port, root / "nats.log").start()
    try:
        yield Site(root, pki, broker, config, root / "mod")
    finally:
        broker.stop()


@pytest.fixture
def workers(site: Site) -> Iterator[list[WorkerProc]]:
    started: list[WorkerProc] = []
    yield started
    for proc in started:
        proc.stop()


def start_worker(site: Site, started: list[WorkerProc], name: str, **kw: Any) -> WorkerProc:
    groups = kw.pop("groups", ["dc1"])
    proc = WorkerProc(site.worker_file(name, groups, **kw), site.root).start()
    started.append(proc)
    proc.wait_for("STATUS=connected")
    return proc


def check(name: str = "disk", **kw: Any) -> CheckDef:
    kind = CheckKind.PLUGIN if "plugin" in kw else CheckKind.MODULE
    return CheckDef(name=name, kind=kind, hosts=("web1",), timeout=kw.pop("timeout", 10), **kw)


async def ask(
    nc: Any, group: str, chk: CheckDef, work_id: str, timeout: float = 15, *, settle: float = 5.0
) -> WorkReply:
    """Send one request and read its reply. Right after a worker said it is connected, a
    busy broker answered "no responders" for a moment in CI (twice in three runs, though
    the worker flushes its subscriptions first): that is retried for `settle` seconds."""
    import nats.errors

    loop = asyncio.get_running_loop()
    until = loop.time() + settle
    while True:
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        data = work_request(chk, [WEB1], work_id=work_id, fingerprint="f00", deadline=deadline)
        try:
            msg = await nc.request(f"{PREFIX}.check.{group}", data, timeout=timeout)
        except nats.errors.NoRespondersError:
            if loop.time() >= until:
                raise
            await asyncio.sleep(0.05)
            continue
        return parse_reply(msg.data, work_id=work_id, hosts=["web1"], max_bytes=1 << 20)


def private_broker(site: Site, tmp_path: Path) -> Broker:
    """A second nats-server (not started) with the site's configuration on another port."""
    port = free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(
        (site.root / "nats.conf").read_text().replace(f":{site.broker.port}", f":{port}")
    )
    assert NATS_SERVER is not None
    return Broker(NATS_SERVER, conf, port, tmp_path / "nats.log")


def worker_for_port(site: Site, workers: list[WorkerProc], port: int, stem: str) -> WorkerProc:
    """Worker dc1-a (not waited for) whose broker is at `port`."""
    text = site.worker_file("dc1-a", ["dc1"]).read_text()
    (site.root / f"{stem}.yaml").write_text(text.replace(f":{site.broker.port}", f":{port}"))
    proc = WorkerProc(site.root / f"{stem}.yaml", site.root).start()
    workers.append(proc)
    return proc


# --------------------------------------------------------------------------- approval


def test_a_certificate_from_the_ca_whose_subject_is_not_approved_cannot_connect(site: Site) -> None:
    async def main() -> None:
        with pytest.raises(Exception) as refused:
            await connect(site.broker.url, site.pki.tls("rogue"))
        assert "authorization" in repr(refused.value).lower()
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))  # approved: connects
        await nc.close()

    asyncio.run(main())


def test_a_worker_cannot_subscribe_to_another_groups_subject(site: Site) -> None:
    async def main() -> None:
        errors: list[Exception] = []
        intruder = await connect(site.broker.url, site.pki.tls("dc1-a"), errors=errors)
        got: list[bytes] = []

        async def take(msg: Any) -> None:
            got.append(msg.data)

        await intruder.subscribe(f"{PREFIX}.check.dc2", queue="dc2", cb=take)
        await intruder.flush()
        await asyncio.wait_for(_until(lambda: errors), 5)
        assert "permissions violation" in str(errors[0]).lower()
        scheduler = await connect(site.broker.url, site.pki.tls("scheduler"))
        with pytest.raises(nats.errors.NoRespondersError):
            await scheduler.request(f"{PREFIX}.check.dc2", b"{}", timeout=2)
        assert got == []
        await intruder.close()
        await scheduler.close()

    asyncio.run(main())


def test_a_request_to_a_group_with_no_live_member_gets_no_responders(site: Site) -> None:
    async def main() -> None:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request(f"{PREFIX}.check.dc2", b"{}", timeout=5)
        assert loop.time() - began < 4  # answered, not timed out
        await nc.close()

    asyncio.run(main())


async def slow_run(
    nc: Any, group: str, marker: Path, seconds: float, work_id: str
) -> asyncio.Task[WorkReply]:
    """Ask `group` to run the `slow` module; return once it runs (it touched `marker`)."""
    slow = check("slow", module="slow", args={"marker": str(marker), "seconds": seconds})
    asked = asyncio.create_task(ask(nc, group, slow, work_id))
    await asyncio.wait_for(_until(marker.exists), 10)
    return asked


async def _until(cond: Any, step: float = 0.02) -> None:
    while not cond():
        await asyncio.sleep(step)


async def _answered(nc: Any, group: str) -> None:
    """Ask `group` for a quick check until a worker answers (its subscription is live)."""
    import nats.errors

    while True:
        try:
            await ask(nc, group, check(module="ok"), "w-ready", 5, settle=0)
            return
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the worker


def test_worker_runs_a_module_and_a_plugin_and_heartbeats(
    site: Site, workers: list[WorkerProc]
) -> None:
    async def main() -> None:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        beats: list[dict[str, Any]] = []

        async def beat(msg: Any) -> None:
            beats.append(json.loads(msg.data))

        await nc.subscribe(f"{PREFIX}.hb.>", cb=beat)
        await nc.flush()
        start_worker(site, workers, "dc1-a")
        sent = datetime.now(UTC)
        reply = await ask(nc, "dc1", check(module="ok"), "w-1")
        assert reply.status is Status.OK and reply.worker == "dc1-a"
        [result] = reply.results
        assert (result.host, result.rc, result.comment, result.scalar) == ("web1", 0, "all fine", 1)
        module = site.mod / "check" / "ok"
        assert reply.module_sha256 == hashlib.sha256(module.read_bytes()).hexdigest()
        assert reply.started is not None and sent - timedelta(seconds=1) <= reply.started
        plugin = check(
            "load", plugin="plugin-dummy", argv=("1", "on {host} at {address}", "v={vars.v}")
        )
        reply = await ask(nc, "dc1", plugin, "w-2")
        [result] = reply.results
        assert (result.rc, result.comment, result.scalar) == (
            2,
            "WARNING: on web1 at 192.0.2.10",
            5,
        )
        await asyncio.wait_for(_until(lambda: beats), 5)
        assert beats[0]["name"] == "dc1-a" and beats[0]["groups"] == ["dc1"]
        await nc.close()

    asyncio.run(main())


def test_worker_refuses_a_path_from_the_wire(site: Site, workers: list[WorkerProc]) -> None:
    async def main() -> None:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        start_worker(site, workers, "dc1-a")
        doc = json.loads(
            work_request(
                check(module="ok"), [WEB1], work_id="w-3", fingerprint="f",
                deadline=datetime.now(UTC) + timedelta(seconds=30),
            )
        )  # fmt: skip
        doc["module"] = "../../../bin/sh"
        msg = await nc.request(f"{PREFIX}.check.dc1", json.dumps(doc).encode(), timeout=10)
        reply = parse_reply(msg.data, work_id="w-3", hosts=["web1"], max_bytes=1 << 20)
        assert reply.status is Status.ERROR and "never a path" in reply.error
        await nc.close()

    asyncio.run(main())


def test_worker_answers_busy_past_its_concurrency(site: Site, workers: list[WorkerProc]) -> None:
    marker = site.root / "busy.marker"

    async def main() -> None:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        start_worker(site, workers, "dc1-b", concurrency=1)
        first = await slow_run(nc, "dc1", marker, 1.5, "w-10")
        second = await ask(nc, "dc1", check(module="ok"), "w-11")
        assert second.status is Status.BUSY and second.worker == "dc1-b"
        done = await first
        assert done.status is Status.OK and done.results[0].comment == "slept"
        third = await ask(nc, "dc1", check(module="ok"), "w-12")  # free again
        assert third.status is Status.OK
        await nc.close()

    asyncio.run(main())


def test_worker_drains_on_sigterm(site: Site, workers: list[WorkerProc]) -> None:
    marker = site.root / "drain.marker"

    async def main() -> None:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        proc = start_worker(site, workers, "dc2-a", groups=["dc2"])
        in_flight = await slow_run(nc, "dc2", marker, 2, "w-20")
        proc.signal(signal.SIGTERM)
        proc.wait_for("STOPPING=1")

        async def no_responders() -> bool:
            try:
                await ask(nc, "dc2", check(module="ok"), "w-21", timeout=2, settle=0)
            except nats.errors.NoRespondersError:
                return True
            return False

        for _ in range(100):  # the worker stops taking work: NATS has nobody for dc2
            if await no_responders():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("dc2 still had a responder after SIGTERM")
        reply = await in_flight  # the run in flight finished and was answered
        assert reply.status is Status.OK and reply.results[0].comment == "slept"
        await nc.close()
        return proc.wait_exit()

    assert asyncio.run(main()) == 0
    assert wait_until(lambda: "draining" in workers[0].log_text(), 5)


# --------------------------------------------------------------------------- revocation


def test_a_revoked_worker_is_refused_after_a_reload_and_its_open_connection_is_cut(
    site: Site, tmp_path: Path
) -> None:
    """Remove the worker, re-render, `nats-server --signal reload=PID`: a new connection
    is refused, and the connection it had open is closed by the server."""
    config = tmp_path / "survivor.yaml"
    shutil.copytree(site.pki.root, tmp_path / "pki")
    port = free_port()
    config.write_text(SCHEDULER_CONFIG.format(port=port, prefix=PREFIX))

    def render() -> None:
        args = ["--config", str(config), "broker-config", "--listen", f"127.0.0.1:{port}",
                "--server-cert", str(site.pki.root / "server.pem"),
                "--server-key", str(site.pki.root / "server.key")]  # fmt: skip
        rendered = CliRunner().invoke(main, args)
        assert rendered.exit_code == 0, rendered.output
        (tmp_path / "nats.conf").write_text(rendered.output)

    render()
    assert NATS_SERVER is not None
    broker = Broker(NATS_SERVER, tmp_path / "nats.conf", port, tmp_path / "nats.log").start()
    try:

        async def main_() -> None:
            closed = asyncio.Event()

            async def on_closed() -> None:
                closed.set()

            revoked = await connect(broker.url, site.pki.tls("dc1-b"), closed_cb=on_closed)
            await revoked.subscribe(f"{PREFIX}.check.dc1", queue="dc1")
            await revoked.flush()
            text = config.read_text().replace('    dc1-b: {subject: "CN=dc1-b"}\n', "")
            config.write_text(text.replace("[dc1-a, dc1-b]", "[dc1-a]"))
            render()
            subprocess.run(
                [NATS_SERVER, "--signal", f"reload={broker.proc.pid}"],  # type: ignore[union-attr]
                check=True,
                capture_output=True,
            )
            await asyncio.wait_for(closed.wait(), 10)  # the server cut the open connection
            with pytest.raises(Exception) as refused:
                await connect(broker.url, site.pki.tls("dc1-b"))
            assert "authorization" in repr(refused.value).lower()
            kept = await connect(broker.url, site.pki.tls("dc1-a"))  # others are unaffected
            await kept.close()

        asyncio.run(main_())
    finally:
        broker.stop()


def test_worker_waits_for_the_broker_and_reconnects_after_a_restart(
    site: Site, workers: list[WorkerProc], tmp_path: Path
) -> None:
    broker = private_broker(site, tmp_path)
    proc = worker_for_port(site, workers, broker.port, "late")
    try:
        proc.wait_for("READY=1")  # running, though no broker is there yet
        assert wait_until(lambda: "cannot connect to the broker" in proc.log_text(), 10)
        broker.start()
        proc.wait_for("STATUS=connected", timeout=20)

        async def served() -> Status:
            nc = await connect(broker.url, site.pki.tls("scheduler"))
            try:
                return (await ask(nc, "dc1", check(module="ok"), "w-30")).status
            finally:
                await nc.close()

        assert asyncio.run(served()) is Status.OK
        broker.stop()
        broker.start()
        assert wait_until(lambda: "reconnected" in proc.log_text(), 20)
        assert asyncio.run(served()) is Status.OK
    finally:
        broker.stop()


def test_a_worker_that_never_reached_the_broker_still_stops_at_sigterm(
    site: Site, workers: list[WorkerProc]
) -> None:
    proc = worker_for_port(site, workers, free_port(), "alone")
    proc.wait_for("READY=1")
    assert wait_until(lambda: "cannot connect to the broker" in proc.log_text(), 10)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(10) == 0


def test_worker_refuses_work_past_its_deadline(site: Site, workers: list[WorkerProc]) -> None:
    async def main() -> WorkReply:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        start_worker(site, workers, "dc1-a")
        late = datetime.now(UTC) - timedelta(seconds=1)
        data = work_request(check(module="ok"), [WEB1], work_id="w-40", fingerprint="f",
                            deadline=late)  # fmt: skip
        msg = await nc.request(f"{PREFIX}.check.dc1", data, timeout=10)
        await nc.close()
        return parse_reply(msg.data, work_id="w-40", hosts=["web1"], max_bytes=1 << 20)

    reply = asyncio.run(main())
    assert reply.status is Status.ERROR and reply.error == "deadline passed"


@pytest.mark.slow
def test_a_draining_worker_kills_what_outlives_the_grace_and_still_answers(
    site: Site, workers: list[WorkerProc]
) -> None:
    async def main() -> tuple[WorkReply, int]:
        nc = await connect(site.broker.url, site.pki.tls("scheduler"))
        proc = start_worker(site, workers, "dc2-a", groups=["dc2"])
        # The worker answers before it is asked for the run that hangs: on a busy machine
        # the broker's "no responders" was seen once right after the worker said connected.
        await asyncio.wait_for(_answered(nc, "dc2"), 10)
        hung = asyncio.create_task(ask(nc, "dc2", check(module="hang", timeout=60), "w-50", 40))
        await asyncio.wait_for(_until(lambda: _has_child(proc)), 10)
        proc.signal(signal.SIGTERM)
        reply = await hung
        await nc.close()
        return reply, proc.wait_exit(30)

    reply, status = asyncio.run(main())
    assert status == 0
    # like a check killed at the daemon's stop: no result, so the scheduler serves it elsewhere
    assert reply.status is Status.ERROR and reply.error == "worker stopping: run killed"
    assert "killing 1 run(s) still going after the grace" in workers[0].log_text()


def _has_child(proc: WorkerProc) -> bool:
    """Whether the worker has started a child (the `hang` module) yet."""
    assert proc.proc is not None
    children = Path(f"/proc/{proc.proc.pid}/task")
    return any(
        (task / "children").read_text().strip() for task in children.iterdir() if task.is_dir()
    )


def test_a_worker_whose_broker_is_gone_still_stops_at_sigterm(
    site: Site, workers: list[WorkerProc], tmp_path: Path
) -> None:
    broker = private_broker(site, tmp_path).start()
    proc = worker_for_port(site, workers, broker.port, "orphan")
    try:
        proc.wait_for("STATUS=connected")
    finally:
        broker.stop()
    assert wait_until(lambda: "disconnected from the broker" in proc.log_text(), 10)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(15) == 0
