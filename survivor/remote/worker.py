"""`survivor worker`: serve a scheduler's checks for some worker groups over NATS (DESIGN §7b).

One asyncio loop owns the connection. Each group is a queue subscription on
`<prefix>.check.<group>`, so NATS gives a request to one live member and answers
"no responders" when there is none. A request names a module or plugin (never
a path); it runs from the worker's own directories with the daemon's runner
(survivor.proc: own session, clean environment, timeout kills the process
group, capped output), on a pool of `concurrency` threads: a run blocks in
its own poll, and the loop keeps answering meanwhile. At the limit the answer
is `busy`, at once. A heartbeat goes to `<prefix>.hb.<name>` every 30 s.

SIGTERM (or SIGINT) drains: unsubscribe, let the runs in flight finish and
answer for up to DRAIN_GRACE_S, kill what is left, exit 0; a second signal
stops at once. The broker may come and go: the first connection is retried
forever, and nats-py reconnects forever after that. systemd hears READY=1 as
soon as the worker runs (it is useful before the broker is up: it will
connect), STATUS= with the connection state, and STOPPING=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from survivor import __version__
from survivor.checks.execute import CheckRunner
from survivor.clock import Clock, utc_iso
from survivor.daemon.notify import sd_notify
from survivor.errors import ModuleError
from survivor.model.config import CheckDef, CheckKind
from survivor.model.work import CheckResult
from survivor.proc.modules import ModuleHashes
from survivor.proc.runner import ModuleRunner
from survivor.protocol.remote import (
    Refused,
    WorkRequest,
    busy_reply,
    error_reply,
    parse_request,
    work_reply,
)
from survivor.remote.brokerconf import check_subject, heartbeat_subject
from survivor.remote.workerconf import WorkerConfig

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
DRAIN_GRACE_S = 10.0
RECONNECT_WAIT_S = 2.0
BROKER_CALL_S = 2.0  # at most this long for each call to the broker while stopping


# --------------------------------------------------------------------------- running one request


def run_request(
    runner: ModuleRunner, request: WorkRequest, output_cap: int
) -> tuple[list[CheckResult], Path | None]:
    """Run what `request` names (blocking); one result per host, and the file that ran.

    The run and the reading of its output are the scheduler's own
    (checks.execute.CheckRunner): a module's stderr is logged, a module or
    plugin killed by a signal says so, a silent plugin's stderr is its comment;
    the check's `limits:`, when the request carries them, are set on the module as
    the daemon sets them (survivor.proc.limits).
    """
    name = request.module if request.module is not None else request.plugin
    assert name is not None
    check = CheckDef(
        name=request.check,
        kind=CheckKind.MODULE if request.module is not None else CheckKind.PLUGIN,
        hosts=tuple(h.name for h in request.hosts),
        module=request.module,
        plugin=request.plugin,
        argv=request.argv,
        args=request.args or {},
        timeout=request.timeout,
        limits=request.limits,
    )
    results = CheckRunner(runner).run_named(check, list(request.hosts), output_cap)
    try:
        path: Path | None = runner.resolve("check", name)
    except ModuleError:
        path = None  # refused or missing: the results say so, and there is nothing to hash
    return results, path


# --------------------------------------------------------------------------- the worker


class Worker:
    """One worker process: connection, subscriptions, in-flight runs, heartbeat, drain."""

    def __init__(self, cfg: WorkerConfig, runner: ModuleRunner, clock: Clock) -> None:
        self.cfg = cfg
        self.runner = runner
        self.clock = clock
        self.hashes = ModuleHashes()
        self.in_flight = 0
        self.draining = False
        self.killing = False  # the drain grace is over: runs still going are being killed
        self._stop = asyncio.Event()  # first signal: drain
        self._stop_now = asyncio.Event()  # second signal: stop at once
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="worker-run")
        self._nc: Any = None
        self._subs: list[Any] = []
        self._said: set[str] = set()  # connection errors already logged

    # ----------------------------------------------------------------------- signals

    def request_stop(self) -> None:
        """SIGTERM/SIGINT on the loop: drain the first time, stop at once the second."""
        if self._stop.is_set():
            log.warning("worker %s: second signal: stopping now", self.cfg.name)
            self._stop_now.set()
        else:
            log.info("worker %s: stop requested: draining", self.cfg.name)
            self._stop.set()

    # ----------------------------------------------------------------------- main

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        sd_notify("READY=1", "STATUS=connecting to the broker")
        try:
            if await self._connect():
                await self._subscribe()
                heartbeat = asyncio.create_task(self._heartbeat())
                await self._stop.wait()
                heartbeat.cancel()
                await self._drain()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
            if self._nc is not None and not self._nc.is_closed:
                try:
                    await self._nc.close()
                except Exception as err:  # nats-py 2.x fails closing a connection that broke
                    log.debug("worker %s: close: %r", self.cfg.name, err)
        log.info("worker %s: stopped", self.cfg.name)
        return 0

    async def _connect(self) -> bool:
        """Connect, retrying forever until it works or a stop is asked; False when stopped.

        nats-py itself retries the first connection forever when reconnects are unlimited
        (each failure reaches `_on_error`), so the attempt races the stop event: a worker
        told to stop before the broker was ever reachable still exits at once.
        """
        import nats

        broker = self.cfg.broker
        tls = ssl.create_default_context(cafile=str(broker.ca))
        tls.load_cert_chain(str(broker.cert), str(broker.key))
        while not self._stop.is_set():
            connecting = asyncio.create_task(
                nats.connect(
                    servers=list(broker.servers),
                    tls=tls,
                    name=f"survivor-worker {self.cfg.name}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S,
                    connect_timeout=5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            )
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                return False
            try:
                self._nc = connecting.result()
            except Exception as err:  # nats-py raises many kinds; each is "not yet"
                self._say(f"cannot connect to {', '.join(broker.servers)}: {err or type(err)}")
                await self._wait(self._stop, RECONNECT_WAIT_S)
                continue
            log.info(
                "worker %s: connected to %s; serving %s",
                self.cfg.name,
                self._nc.connected_url.netloc if self._nc.connected_url else "?",
                ", ".join(self.cfg.groups),
            )
            self._said.clear()
            return True
        return False

    async def _subscribe(self) -> None:
        prefix = self.cfg.broker.subject_prefix
        for group in self.cfg.groups:
            sub = await self._nc.subscribe(
                check_subject(prefix, group),
                queue=group,
                cb=self._on_request,
                pending_msgs_limit=max(1024, self.cfg.concurrency * 4),
            )
            self._subs.append(sub)
        await self._nc.flush()  # the server has the subscriptions: requests reach us now
        sd_notify(f"STATUS=connected; serving {', '.join(self.cfg.groups)}")

    async def _drain(self) -> None:
        sd_notify("STOPPING=1", f"STATUS=draining {self.in_flight} in flight")
        self.draining = True
        for sub in self._subs:
            try:
                # drain, not unsubscribe: requests already delivered get `busy`, not silence
                await asyncio.wait_for(sub.drain(), BROKER_CALL_S)  # never hang a stop
            except Exception as err:  # a closed connection: nothing more will arrive anyway
                log.debug("worker %s: unsubscribe: %s", self.cfg.name, err)
        if self.in_flight:
            log.info("worker %s: waiting for %d run(s) in flight", self.cfg.name, self.in_flight)
            done = asyncio.create_task(self._idle.wait())
            now = asyncio.create_task(self._stop_now.wait())
            await asyncio.wait({done, now}, timeout=DRAIN_GRACE_S, return_when="FIRST_COMPLETED")
            now.cancel()
            done.cancel()
        if self.in_flight:
            log.warning(
                "worker %s: killing %d run(s) still going after the grace",
                self.cfg.name,
                self.in_flight,
            )
            self.killing = True
            for pid in self.runner.running():
                self.runner.kill_group(pid)
            await self._wait(self._idle, 2 * self.runner.kill_grace + 1)
        try:
            await asyncio.wait_for(self._publish_heartbeat(), BROKER_CALL_S)
            await self._nc.flush(timeout=BROKER_CALL_S)
        except Exception as err:
            log.debug("worker %s: last heartbeat: %s", self.cfg.name, err)

    # ----------------------------------------------------------------------- requests

    async def _on_request(self, msg: Any) -> None:
        """Answer busy or refuse at once; otherwise start the run and return."""
        try:
            await self._take(msg)
        except Exception:  # one bad request never stops the subscription
            log.exception("worker %s: request not handled", self.cfg.name)
            await self._respond(msg, error_reply(_work_id(msg.data), self.cfg.name, "internal"))

    async def _take(self, msg: Any) -> None:
        try:
            request = parse_request(msg.data)
        except Refused as why:
            log.warning("worker %s: request refused: %s", self.cfg.name, why)
            await self._respond(msg, error_reply(_work_id(msg.data), self.cfg.name, str(why)))
            return
        if self.draining or self.in_flight >= self.cfg.concurrency:
            await self._respond(msg, busy_reply(request.work_id, self.cfg.name))
            return
        if request.deadline <= self.clock.now():
            await self._respond(msg, error_reply(request.work_id, self.cfg.name, "deadline passed"))
            return
        self.in_flight += 1
        self._idle.clear()
        task = asyncio.create_task(self._run(msg, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg: Any, request: WorkRequest) -> None:
        what = f"{request.check}@{','.join(h.name for h in request.hosts)}"
        try:
            started = self.clock.now()
            began = self.clock.monotonic()
            loop = asyncio.get_running_loop()
            results, path = await loop.run_in_executor(
                self._executor, run_request, self.runner, request, self.cfg.output_cap
            )
            sha = "" if path is None else self._sha(path)  # cached; a new file is hashed once
            duration_ms = int((self.clock.monotonic() - began) * 1000)
            if self.killing:
                # Like a check killed at the daemon's shutdown, this run says nothing about
                # the service: `error`, so the scheduler serves it elsewhere.
                log.warning("worker %s: %s: killed at stop; no result", self.cfg.name, what)
                reply = error_reply(request.work_id, self.cfg.name, "worker stopping: run killed")
                await self._respond(msg, reply)
                return
            log.info(
                "worker %s: %s: %s (%d ms)",
                self.cfg.name,
                what,
                ", ".join(r.code for r in results),
                duration_ms,
            )
            reply = work_reply(
                request,
                self.cfg.name,
                results,
                started=started,
                duration_ms=duration_ms,
                module_sha256=sha,
            )
            await self._respond(msg, reply)
        except Exception:
            log.exception("worker %s: %s: run failed", self.cfg.name, what)
            await self._respond(msg, error_reply(request.work_id, self.cfg.name, "run failed"))
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    def _sha(self, path: Path) -> str:
        try:
            return self.hashes.of(path)
        except OSError:
            return ""

    async def _respond(self, msg: Any, data: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(data)
        except Exception as err:  # disconnected: the scheduler times out and fails over
            log.warning("worker %s: could not reply: %s", self.cfg.name, err)

    # ----------------------------------------------------------------------- heartbeat

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            try:
                await self._publish_heartbeat()
            except Exception as err:
                log.debug("worker %s: heartbeat not sent: %s", self.cfg.name, err)
            await self._wait(self._stop, HEARTBEAT_S)

    async def _publish_heartbeat(self) -> None:
        doc = {
            "v": 1,
            "name": self.cfg.name,
            "version": __version__,
            "groups": list(self.cfg.groups),
            "in_flight": self.in_flight,
            "concurrency": self.cfg.concurrency,
            "load": os.getloadavg()[0],
            "draining": self.draining,
            "t": utc_iso(self.clock.now()),
        }
        subject = heartbeat_subject(self.cfg.broker.subject_prefix, self.cfg.name)
        await self._nc.publish(subject, json.dumps(doc).encode())

    # ----------------------------------------------------------------------- connection events

    async def _on_error(self, err: Exception) -> None:
        if self._nc is None or not self._nc.is_connected:
            self._say(f"cannot connect to the broker: {err or type(err).__name__}; retrying")
        else:
            self._say(f"broker error: {err or type(err).__name__}")

    async def _on_disconnected(self) -> None:
        log.warning("worker %s: disconnected from the broker; reconnecting", self.cfg.name)
        sd_notify("STATUS=disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        self._said.clear()
        log.info("worker %s: reconnected", self.cfg.name)
        sd_notify(f"STATUS=connected; serving {', '.join(self.cfg.groups)}")

    def _say(self, message: str) -> None:
        """Log a connection problem once until the connection works again."""
        if message not in self._said:
            self._said.add(message)
            log.warning("worker %s: %s", self.cfg.name, message)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass


def _work_id(data: bytes) -> str:
    """The work id of a request that was refused, if it has a readable one."""
    try:
        value = json.loads(data).get("work_id")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return value[:200] if isinstance(value, str) else ""


def _not_asyncio_ssl_eof(record: logging.LogRecord) -> bool:
    # asyncio warns "returning true from eof_received() has no effect when using ssl" at
    # every broker disconnect: noise next to our own "disconnected from the broker".
    return "eof_received()" not in record.getMessage()


def run_worker(cfg: WorkerConfig, clock: Clock) -> int:
    """The worker's main: the runner from its own directories, then the loop until stopped."""
    logging.getLogger("asyncio").addFilter(_not_asyncio_ssl_eof)
    runner = ModuleRunner(
        cfg.module_dirs,
        cfg.plugin_dirs,
        output_cap=cfg.output_cap,
        extra_env={"SURVIVOR_WORKER": cfg.name},
    )
    return asyncio.run(Worker(cfg, runner, clock).serve())
