"""Dispatcher: the scheduler's side of remote work (DESIGN §7b), one asyncio loop in its own thread.

The loop owns the one NATS connection. `dispatch(job)` hands it a run from
any thread and returns a concurrent future that ends with `Served` (a valid
reply from an approved member of a group) or `NotServed` (every group tried,
or the broker unreachable): the check executor then runs it locally or
records TIMEDOUT, so one planned run yields exactly one result.

For each group of the job's list: skip it while its breaker is open; send the
request and wait up to the check's timeout + `dispatch_grace`. "No
responders" (the group has no live member; NATS answers at once): the next
group at once. `busy`: up to two more tries on the group, then the next. No
answer in time: counts for the breaker, then the next group if the job's
minute is not over. `error`: the next group.

Replies come back on one wildcard inbox subscription (`<inbox>.*`), one token
per request, not nats-py's `request()`: a reply that is not valid (garbage,
another work id, too big, a host that was not asked, a worker not approved
for the group) is dropped and logged and the request goes on waiting for a
valid one; a reply whose token is no longer waited for (late) is dropped.

While the broker is unreachable (before the first connection too) a job is
`NotServed(broker=True)` at once, without touching the loop; requests in
flight when the connection drops end the same way at once. nats-py
reconnects forever, and placement resumes when it is back.

Heartbeats on `<prefix>.hb.>` feed `workers_doc()` (state/workers.json).
nats is imported only in the loop's thread: a daemon without `workers:`
never builds a Dispatcher and never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from survivor.clock import Clock, utc_iso
from survivor.model.config import BrokerConfig, WorkerGroup, WorkersConfig
from survivor.model.names import is_safe_name
from survivor.protocol.remote import Status, WorkReply, accept_reply
from survivor.remote.brokerconf import check_subject
from survivor.remote.dispatchplan import BUSY_RETRIES, Breakers, Said, Tried

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 1.0  # between reconnection attempts: placement resumes this soon after
ALIVE_S = 90.0  # a worker is alive with a heartbeat this recent (DESIGN §7b)
STOP_S = 5.0
RETIRE_S = 900.0  # a replaced connection waits at most this long for its runs in flight


@dataclass(frozen=True, slots=True)
class Job:
    """One run for some hosts, as a request to send to worker groups in order."""

    what: str  # check@hosts, for logs
    work_id: str
    groups: tuple[str, ...]
    request: Callable[[datetime], bytes]  # the request document for a deadline (work_request)
    hosts: tuple[str, ...]
    wait_s: float  # the check's timeout + dispatch_grace
    until: float  # monotonic: after a timeout past this, no further group is tried
    max_bytes: int  # the largest reply accepted


@dataclass(frozen=True, slots=True)
class Served:
    group: str
    reply: WorkReply
    sent: datetime
    replied: datetime
    tried: tuple[Tried, ...] = ()


@dataclass(frozen=True, slots=True)
class NotServed:
    tried: tuple[Tried, ...]
    broker: bool = False  # the broker is unreachable


Outcome = Served | NotServed


@dataclass(slots=True)
class _Waiting:
    """A request waiting for its reply on the inbox."""

    job: Job
    group: str
    members: frozenset[str]
    answer: asyncio.Future[WorkReply | Said]


@dataclass(slots=True)
class _Seen:
    doc: dict[str, Any]
    mono: float
    at: datetime


@dataclass(slots=True)
class _Mismatch:
    worker: str
    module: str
    worker_sha256: str
    scheduler_sha256: str
    at: datetime


@dataclass(eq=False)
class Dispatcher:
    workers: WorkersConfig
    groups: Mapping[str, WorkerGroup]
    clock: Clock
    connected: bool = False
    since: datetime | None = None  # of the current connection state
    server: str = ""
    breakers: Breakers = field(init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _nc: Any = field(default=None, init=False)
    _inbox: str = field(default="", init=False)
    _waiting: dict[str, _Waiting] = field(default_factory=dict, init=False)
    _tokens: itertools.count[int] = field(default_factory=itertools.count, init=False)
    _stopping: asyncio.Event | None = field(default=None, init=False)
    _handed: deque[tuple[Job, Future[Outcome]]] = field(default_factory=deque, init=False)
    _wake_pending: bool = field(default=False, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _seen: dict[str, _Seen] = field(default_factory=dict, init=False)
    _mismatches: dict[tuple[str, str], _Mismatch] = field(default_factory=dict, init=False)
    _said: set[str] = field(default_factory=set, init=False)
    counts: dict[str, int] = field(default_factory=dict, init=False)
    connection: tuple[object, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        self.breakers = Breakers(self.workers.breaker_after, self.workers.breaker_for)
        self.since = self.clock.now()
        self.connection = connection_key(self.workers.broker)

    def serves(self, broker: BrokerConfig) -> bool:
        """Whether this connection is the one `broker` asks for: the same servers, prefix
        and TLS files, unchanged on disk (a renewed certificate at the same path is a
        reason to reconnect)."""
        return connection_key(broker) == self.connection

    # ----------------------------------------------------------------------- from any thread

    def start(self) -> None:
        logging.getLogger("asyncio").addFilter(_not_asyncio_ssl_eof)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            loop.call_soon_threadsafe(self._stop_soon)
        thread.join(STOP_S + 1)

    def configure(self, workers: WorkersConfig, groups: Mapping[str, WorkerGroup]) -> None:
        """A reload with the same `broker`: new groups, grace and breaker settings. (Another
        broker is another Dispatcher: daemon.wiring.apply_workers.)"""
        self.groups = groups
        self.workers = workers
        self.breakers.after, self.breakers.for_s = workers.breaker_after, workers.breaker_for

    def take_over(self, old: Dispatcher) -> None:
        """Before `start`, at a reload that changed the broker: go on with what `old` knew
        (workers' heartbeats, module mismatches) and counted (the metrics' counters must
        not go back), while `old` finishes its runs in flight (`retire`)."""
        self._seen, self._mismatches, self.counts = old._seen, old._mismatches, old.counts

    def retire(self) -> None:
        """Stop once the runs in flight are answered (each ends by its own timeout at the
        latest), on a thread of its own: a reload does not wait for it. A job handed over
        after that gets NotServed(broker=True), as in any outage: one result per run."""

        def wait_then_stop() -> None:
            deadline, pause = self.clock.after_real(RETIRE_S), threading.Event()
            while (self._tasks or self._handed) and self.clock.monotonic() < deadline:
                pause.wait(0.1)
            self.stop()
            log.info("dispatch: the connection to %s closed", self.server or "the old broker")

        threading.Thread(target=wait_then_stop, name="dispatch-retire", daemon=True).start()

    def dispatch(self, job: Job) -> Future[Outcome]:
        """Send `job` to its groups in order; the future ends with Served or NotServed.

        Jobs are handed over in batches: one wake-up of the loop for all the jobs queued
        before it runs, not one each (a wake-up is a write to asyncio's self-pipe, and the
        check loops start the runs of a quarter second together).
        """
        future: Future[Outcome] = Future()
        loop = self._loop
        if not self.connected or loop is None:
            future.set_result(NotServed((), broker=True))
            return future
        self._handed.append((job, future))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._take_jobs)
            except RuntimeError:  # the loop is closed: the daemon is stopping
                self._fail_handed()
        return future

    def note_module(self, worker: str, module: str, theirs: str, ours: str) -> None:
        """A worker ran a module whose SHA-256 differs from the scheduler's: log it once."""
        key = (worker, module)
        known = self._mismatches.get(key)
        if known is not None and known.worker_sha256 == theirs:
            return
        log.warning(
            "remote: worker %s runs module %s with SHA-256 %s, the scheduler has %s",
            worker,
            module,
            theirs[:12],
            ours[:12],
        )
        self._mismatches[key] = _Mismatch(worker, module, theirs, ours, self.clock.now())

    def module_matches(self, worker: str, module: str) -> None:
        self._mismatches.pop((worker, module), None)

    def broker_doc(self) -> dict[str, Any]:
        """daemon.json `broker`."""
        return {
            "connected": self.connected,
            "since": None if self.since is None else utc_iso(self.since),
            "server": self.server,
        }

    def daemon_part(self) -> dict[str, Any]:
        """daemon.json `broker`, and `workers` counts for the metrics."""
        doc = self.workers_doc()
        return {
            "broker": doc["broker"],
            "workers": {
                "alive": sum(1 for w in doc["workers"] if w["alive"]),
                "approved": len(self.workers.approved),
                "breakers_open": sum(1 for b in doc["breakers"].values() if b["open"]),
                "dispatched": doc["dispatched"],
            },
        }

    def workers_doc(self) -> dict[str, Any]:
        """state/workers.json: every approved worker and what its heartbeats say."""
        now, mono = self.clock.now(), self.clock.monotonic()
        # Copies (one C call each, so whole under the GIL): the loop's thread changes them.
        seen_by_name, mismatches = self._seen.copy(), list(self._mismatches.copy().values())
        rows = []
        for name in sorted(set(self.workers.approved) | set(seen_by_name)):
            seen = seen_by_name.get(name)
            doc = {} if seen is None else seen.doc
            groups = [g for g, grp in self.groups.items() if name in grp.workers]
            mismatched = {
                m.module: {"worker": m.worker_sha256, "scheduler": m.scheduler_sha256}
                for m in mismatches
                if m.worker == name
            }
            rows.append(
                {
                    "name": name,
                    "groups": doc.get("groups", groups),
                    "version": doc.get("version"),
                    "last_seen": None if seen is None else utc_iso(seen.at),
                    "in_flight": doc.get("in_flight"),
                    "load": doc.get("load"),
                    "draining": bool(doc.get("draining", False)),
                    "alive": seen is not None and mono - seen.mono <= ALIVE_S,
                    "module_mismatch": mismatched,
                }
            )
        return {
            "version": 1,
            "updated": utc_iso(now),
            "broker": self.broker_doc(),
            "workers": rows,
            "breakers": self.breakers.to_dict(mono),
            "dispatched": dict(self.counts),
        }

    # ----------------------------------------------------------------------- the loop's thread

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except ModuleNotFoundError as err:
            if err.name != "nats":
                raise
            log.error(
                "dispatch: workers: is configured but nats-py is not installed (pip install"
                " 'survivor[remote]'); placed checks run on the scheduler"
            )
        except Exception:
            log.exception("dispatch: the NATS loop failed; placed checks run locally")
        finally:
            self.connected = False
            self._loop.close()

    def _take_jobs(self) -> None:
        assert self._loop is not None
        self._wake_pending = False  # before taking: a job handed meanwhile wakes us again
        while self._handed:
            job, future = self._handed.popleft()
            task = self._loop.create_task(self._serve_into(job, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_into(self, job: Job, future: Future[Outcome]) -> None:
        try:
            outcome = await self._serve(job)
        except asyncio.CancelledError:
            outcome = NotServed((), broker=True)  # the loop stops: the run goes local
            raise
        except Exception:
            log.exception("dispatch: %s failed; it runs on the scheduler", job.what)
            outcome = NotServed((), broker=True)
        finally:
            if not future.done():
                future.set_result(outcome)

    def _fail_handed(self) -> None:
        while self._handed:
            _, future = self._handed.popleft()
            if not future.done():
                future.set_result(NotServed((), broker=True))

    def _stop_soon(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _main(self) -> None:
        import nats

        self._stopping = asyncio.Event()
        broker = self.workers.broker
        tls = ssl.create_default_context(cafile=str(broker.ca))
        tls.load_cert_chain(str(broker.cert), str(broker.key))
        connecting = asyncio.create_task(
            nats.connect(
                servers=list(broker.servers),
                tls=tls,
                name="survivor scheduler",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,
                connect_timeout=2,
                ping_interval=10,
                max_outstanding_pings=2,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        )
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            return
        try:
            self._nc = connecting.result()
            self._inbox = self._nc.new_inbox()
            await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
            await self._nc.subscribe(f"{broker.subject_prefix}.hb.>", cb=self._on_heartbeat)
            await self._nc.flush()
            self._connected()
            await stopping
        finally:
            self.connected = False
            self._fail_waiting()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._fail_handed()
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._nc.close(), STOP_S)

    def _connected(self) -> None:
        url = self._nc.connected_url
        self.server = url.netloc if url is not None else ""
        self.connected = True
        self.since = self.clock.now()
        self._said.clear()
        log.info("dispatch: connected to the broker %s; remote placement on", self.server)

    async def _serve(self, job: Job) -> Outcome:
        tried: list[Tried] = []
        for group in job.groups:
            if not self.connected:
                return NotServed((*tried, Tried(group, Said.BROKER)), broker=True)
            if self.breakers.is_open(group, self.clock.monotonic()):
                tried.append(Tried(group, Said.BREAKER))
                continue
            busy = 0
            while True:
                sent = self.clock.now()
                answer = await self._ask(group, job)
                if isinstance(answer, WorkReply):
                    self.breakers.answered(group)
                    if answer.status is Status.OK:
                        self._count("served")
                        return Served(group, answer, sent, self.clock.now(), tuple(tried))
                    if answer.status is Status.BUSY and busy < BUSY_RETRIES:
                        busy += 1
                        continue
                    said = Said.BUSY if answer.status is Status.BUSY else Said.REFUSED
                    tried.append(Tried(group, said, f"{answer.worker}: {answer.error}"[:200]))
                    break
                if answer is Said.BROKER:
                    self._count("broker lost")
                    return NotServed((*tried, Tried(group, answer)), broker=True)
                if answer is Said.TIMEOUT:
                    mono = self.clock.monotonic()
                    if self.breakers.timed_out(group, mono):
                        log.warning(
                            "dispatch: group %s: %d timeouts in a row; skipped for %.0f s",
                            group,
                            self.breakers.after,
                            self.breakers.for_s,
                        )
                    tried.append(Tried(group, answer, f"within {job.wait_s:g} s"))
                    log.warning("dispatch: %s: no answer from group %s", job.what, group)
                    if mono >= job.until:
                        self._count("not served")
                        return NotServed(tuple(tried))
                    break
                tried.append(Tried(group, answer))
                break
        self._count("not served")
        return NotServed(tuple(tried))

    async def _ask(self, group: str, job: Job) -> WorkReply | Said:
        """One request to `group`: its valid reply, or what happened instead."""
        assert self._loop is not None
        token = str(next(self._tokens))
        grp = self.groups.get(group)
        members = frozenset(() if grp is None else grp.workers) & frozenset(self.workers.approved)
        answer: asyncio.Future[WorkReply | Said] = self._loop.create_future()
        self._waiting[token] = _Waiting(job, group, members, answer)
        subject = check_subject(self.workers.broker.subject_prefix, group)
        # The deadline of this try: a worker refuses a request whose answer would come too late.
        data = job.request(self.clock.now() + timedelta(seconds=job.wait_s))
        # A timer that answers TIMEOUT itself: asyncio.wait_for costs a second future and
        # its callbacks for every run.
        timer = self._loop.call_later(job.wait_s, _answer_if_open, answer, Said.TIMEOUT)
        try:
            await self._nc.publish(subject, data, reply=f"{self._inbox}.{token}")
            return await answer
        except Exception as err:  # nats-py: closed, reconnecting, buffer full
            log.warning("dispatch: %s: not sent to %s: %s", job.what, group, err or type(err))
            return Said.BROKER
        finally:
            timer.cancel()
            self._waiting.pop(token, None)

    async def _on_reply(self, msg: Any) -> None:
        token = msg.subject[len(self._inbox) + 1 :]
        waiting = self._waiting.get(token)
        if waiting is None or waiting.answer.done():
            log.info("dispatch: a late or unknown reply on %s dropped", msg.subject[-40:])
            return
        headers = msg.headers or {}
        if headers.get("Status") == "503":
            waiting.answer.set_result(Said.NO_RESPONDERS)
            return
        job = waiting.job
        reply = accept_reply(
            msg.data, work_id=job.work_id, hosts=job.hosts, max_bytes=job.max_bytes, what=job.what
        )
        if reply is None:
            self._count("replies dropped")
            return  # logged by accept_reply; a valid reply may still come
        if reply.worker not in waiting.members:
            self._count("replies dropped")
            log.warning(
                "remote %s: reply dropped (work %s): worker %s is not approved for group %s",
                job.what,
                job.work_id,
                reply.worker,
                waiting.group,
            )
            return
        waiting.answer.set_result(reply)

    async def _on_heartbeat(self, msg: Any) -> None:
        try:
            doc = json.loads(msg.data)
        except (ValueError, RecursionError):
            doc = None
        name = doc.get("name") if isinstance(doc, dict) else None
        subject_name = msg.subject.rsplit(".", 1)[-1]
        if not isinstance(doc, dict) or name != subject_name or not is_safe_name(name):
            self._say(f"a heartbeat on {msg.subject[:80]} that is not one dropped")
            return
        if name not in self.workers.approved:
            self._say(f"a heartbeat from {name}, which is not approved, dropped")
            return
        keep = {k: doc.get(k) for k in ("groups", "version", "in_flight", "load", "draining")}
        self._seen[name] = _Seen(keep, self.clock.monotonic(), self.clock.now())

    def _fail_waiting(self) -> None:
        for waiting in list(self._waiting.values()):
            if not waiting.answer.done():
                waiting.answer.set_result(Said.BROKER)

    async def _on_disconnected(self) -> None:
        if self.connected:
            log.warning("dispatch: lost the broker; placed checks run locally until it is back")
            self.connected = False
            self.since = self.clock.now()
        self._fail_waiting()

    async def _on_reconnected(self) -> None:
        self._connected()

    async def _on_error(self, err: Exception) -> None:
        self._say(f"broker: {err or type(err).__name__}")

    def _say(self, message: str) -> None:
        """Log a problem once until the connection works again (no log storm on retries)."""
        if message not in self._said:
            self._said.add(message)
            log.warning("dispatch: %s", message)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def connection_key(broker: BrokerConfig) -> tuple[object, ...]:
    """What a connection is made of: `broker` but its place in the file, and the TLS
    files' modification time, size and inode (a file replaced by a renewed one)."""
    stamps: list[tuple[int, int, int] | None] = []
    for path in (broker.ca, broker.cert, broker.key):
        try:
            st = path.stat()
        except OSError:
            stamps.append(None)  # the connection reports it (logged by the loop)
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return (broker.servers, broker.subject_prefix, broker.ca, broker.cert, broker.key, *stamps)


def _not_asyncio_ssl_eof(record: logging.LogRecord) -> bool:
    # asyncio warns "returning true from eof_received() has no effect when using ssl" at
    # every broker disconnect: noise next to our own "lost the broker".
    return "eof_received()" not in record.getMessage()


def _answer_if_open(answer: asyncio.Future[WorkReply | Said], said: Said) -> None:
    if not answer.done():
        answer.set_result(said)
