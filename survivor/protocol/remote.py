"""The documents of remote work (DESIGN §7b): a request to a worker group and a worker's reply.

A request is the Survivor-protocol document of §4 (`version`, `kind`,
`check`, `timeout`, `args`, `hosts`) plus `work_id`, `fingerprint` and
`deadline`, and says *what* to run by name only: `module` (a Survivor
protocol module, one run for all hosts) or `plugin` with its `argv`
templates (one host per request; the worker expands them from the host
fields, as the scheduler would). Never a path, never shell text: a plugin
the config names by absolute path runs only on the scheduler. A check with
`limits:` sends them as `limits` (`{"memory": bytes, "cpu": seconds, "files":
n}`, only the keys set), and the worker sets them on the module as the daemon
does; a worker older than that field ignores it.

A reply is `{"v", "work_id", "status", "worker"}` plus, for `ok`, the start
time `t`, `duration_ms`, `module_sha256` and one result per host (§4 result
objects); `busy` says the worker is at its concurrency limit; `error` says
why it refused. The parsers are strict and raise `Refused` with the reason:
the worker answers a bad request with an `error` reply; the scheduler drops a
bad reply (`accept_reply` logs it) and the run counts as not answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from survivor.clock import utc_iso
from survivor.model.config import CheckDef, Host, ModuleLimits
from survivor.model.names import is_safe_name
from survivor.model.work import CheckResult
from survivor.protocol.modules import PROTOCOL_VERSION, _jsonable, result_from_dict

log = logging.getLogger(__name__)

REPLY_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20  # nats-server's default max_payload
REPLY_BASE_BYTES = 16 << 10  # a reply may hold this plus the output cap per host


class Status(StrEnum):
    OK = "ok"
    BUSY = "busy"  # at the concurrency limit: try another member or group
    ERROR = "error"  # the worker refused the request (the reply says why)


class Refused(ValueError):
    """A request or reply that is not used; the message says why."""


@dataclass(frozen=True, slots=True)
class WorkRequest:
    work_id: str
    check: str
    hosts: tuple[Host, ...]
    timeout: float
    fingerprint: str
    deadline: datetime
    module: str | None = None
    plugin: str | None = None
    argv: tuple[str, ...] = ()
    args: Mapping[str, Any] | None = None
    limits: ModuleLimits | None = None


@dataclass(frozen=True, slots=True)
class WorkReply:
    work_id: str
    status: Status
    worker: str
    results: tuple[CheckResult, ...] = ()
    started: datetime | None = None
    duration_ms: int = 0
    module_sha256: str = ""
    error: str = ""


# --------------------------------------------------------------------------- times


def _moment(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise Refused(f"{what} must be an ISO 8601 time, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{what} {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Refused(f"{what} {value!r} has no time zone")
    return moment


# --------------------------------------------------------------------------- requests


def work_request(
    check: CheckDef,
    hosts: Sequence[Host],
    *,
    work_id: str,
    fingerprint: str,
    deadline: datetime,
) -> bytes:
    """The request for `check` on `hosts`; ValueError when it cannot run remotely."""
    why = not_remote(check, hosts)
    if why is not None:
        raise ValueError(why)
    doc: dict[str, Any] = {
        "version": PROTOCOL_VERSION,
        "kind": "check",
        "check": check.name,
        "timeout": check.timeout,
        "args": check.args,
        "hosts": [host.to_dict() for host in hosts],
        "work_id": work_id,
        "fingerprint": fingerprint,
        "deadline": utc_iso(deadline),
    }
    if check.limits is not None:
        doc["limits"] = check.limits.to_dict()
    if check.module is not None:
        doc["module"] = check.module
    else:
        doc["plugin"] = check.plugin
        doc["argv"] = list(check.argv)
    return _REQUEST.encode(doc).encode()


def not_remote(check: CheckDef, hosts: Sequence[Host]) -> str | None:
    """Why `check` on `hosts` cannot be sent to a worker, or None when it can."""
    if check.module is not None:
        return None
    if check.plugin is not None and is_safe_name(check.plugin):
        if len(hosts) != 1:
            return f"check {check.name}: a plugin request names one host"
        return None
    return f"check {check.name}: only modules and plugins named by name run remotely"


def parse_request(data: bytes) -> WorkRequest:
    """A worker's reading of a request; Refused names what is wrong."""
    doc = _object(data, MAX_REQUEST_BYTES, "request")
    if doc.get("version") != PROTOCOL_VERSION or doc.get("kind") != "check":
        raise Refused(f"not a version {PROTOCOL_VERSION} check request")
    work_id = _text(doc, "work_id")
    check = _name(doc, "check")
    module = _name(doc, "module") if "module" in doc else None
    plugin = _name(doc, "plugin") if "plugin" in doc else None
    if (module is None) == (plugin is None):
        raise Refused("a request names exactly one of module or plugin")
    argv = doc.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise Refused("argv must be a list of strings")
    if module is not None and argv:
        raise Refused("argv goes with a plugin, not a module")
    args = doc.get("args", {})
    if not isinstance(args, dict):
        raise Refused("args must be a mapping")
    hosts = _hosts(doc.get("hosts"))
    if plugin is not None and len(hosts) != 1:
        raise Refused("a plugin request names exactly one host")
    timeout = doc.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 86400:
        raise Refused("timeout must be a number of seconds")
    limits = None
    if "limits" in doc:
        if not isinstance(doc["limits"], dict):
            raise Refused("limits must be a mapping")
        try:
            limits = ModuleLimits.from_dict(doc["limits"])
        except ValueError as exc:
            raise Refused(str(exc)) from None
    return WorkRequest(
        work_id=work_id,
        check=check,
        hosts=hosts,
        timeout=float(timeout),
        fingerprint=_text(doc, "fingerprint"),
        deadline=_moment(doc.get("deadline"), "deadline"),
        module=module,
        plugin=plugin,
        argv=tuple(argv),
        args=args,
        limits=limits,
    )


def _hosts(value: object) -> tuple[Host, ...]:
    if not isinstance(value, list) or not value:
        raise Refused("hosts must be a non-empty list")
    hosts: list[Host] = []
    for item in value:
        if not isinstance(item, dict) or not is_safe_name(item.get("name")):
            raise Refused("every host needs a safe name")
        address = item.get("address", item["name"])
        if (
            not isinstance(address, str)
            or address.startswith("-")
            or any(c.isspace() for c in address)
        ):
            raise Refused(f"host {item['name']}: address must be a string without spaces or '-'")
        variables = item.get("vars", {})
        if not isinstance(variables, dict):
            raise Refused(f"host {item['name']}: vars must be a mapping")
        hosts.append(Host(item["name"], address, variables))
    if len({h.name for h in hosts}) != len(hosts):
        raise Refused("a host is listed twice")
    return tuple(hosts)


# --------------------------------------------------------------------------- replies


def work_reply(
    request: WorkRequest,
    worker: str,
    results: Sequence[CheckResult],
    *,
    started: datetime,
    duration_ms: int,
    module_sha256: str,
) -> bytes:
    return _reply(
        request.work_id,
        Status.OK,
        worker,
        t=utc_iso(started),
        duration_ms=duration_ms,
        module_sha256=module_sha256,
        results=[result_dict(r) for r in results],
    )


def busy_reply(work_id: str, worker: str) -> bytes:
    return _reply(work_id, Status.BUSY, worker)


def error_reply(work_id: str, worker: str, error: str) -> bytes:
    return _reply(work_id, Status.ERROR, worker, error=error[:1000])


def _reply(work_id: str, status: Status, worker: str, **extra: Any) -> bytes:
    doc = {"v": REPLY_VERSION, "work_id": work_id, "status": status.value, "worker": worker}
    return _COMPACT.encode({**doc, **extra}).encode()


def result_dict(result: CheckResult) -> dict[str, Any]:
    """A result as the §4 object a module prints."""
    return {
        "host": result.host,
        "rc": result.rc,
        "scalar": result.scalar,
        "comment": result.comment,
        "duration_ms": result.duration_ms,
        "perfdata": [p.to_dict() for p in result.perfdata],
    }


def reply_limit(host_count: int, output_cap: int) -> int:
    """The largest reply accepted for a request naming `host_count` hosts."""
    return REPLY_BASE_BYTES + output_cap * max(1, host_count)


def parse_reply(data: bytes, *, work_id: str, hosts: Collection[str], max_bytes: int) -> WorkReply:
    """The scheduler's reading of a reply to `work_id` for `hosts`; Refused says why not."""
    doc = _object(data, max_bytes, "reply")
    if doc.get("v") != REPLY_VERSION:
        raise Refused(f"not a version {REPLY_VERSION} reply")
    got = doc.get("work_id")
    if got != work_id:
        raise Refused(f"reply for work {str(got)[:40]!r}, not {work_id!r}")
    worker = _name(doc, "worker")
    try:
        status = Status(str(doc.get("status")))
    except ValueError:
        raise Refused(f"unknown status {str(doc.get('status'))[:20]!r}") from None
    if status is not Status.OK:
        error = doc.get("error", "")
        return WorkReply(work_id, status, worker, error=error if isinstance(error, str) else "")
    items = doc.get("results")
    if not isinstance(items, list):
        raise Refused("results must be a list")
    asked = set(hosts)
    results: dict[str, CheckResult] = {}
    for item in items:
        result = result_from_dict(item) if isinstance(item, dict) else None
        if result is None:
            raise Refused("a result is not a valid result object")
        if result.host not in asked:
            raise Refused(f"a result for host {result.host[:80]!r}, which was not asked")
        if result.host in results:
            raise Refused(f"two results for host {result.host!r}")
        results[result.host] = result
    duration = doc.get("duration_ms")
    sha = doc.get("module_sha256", "")
    return WorkReply(
        work_id,
        status,
        worker,
        results=tuple(results[h] for h in hosts if h in results),
        started=_moment(doc.get("t"), "t"),
        duration_ms=duration if isinstance(duration, int) and duration >= 0 else 0,
        module_sha256=sha if isinstance(sha, str) else "",
    )


def accept_reply(
    data: bytes, *, work_id: str, hosts: Collection[str], max_bytes: int, what: str
) -> WorkReply | None:
    """`parse_reply`, with a refused reply logged (naming `what`, e.g. `disk@web1`) and None."""
    try:
        return parse_reply(data, work_id=work_id, hosts=hosts, max_bytes=max_bytes)
    except Refused as why:
        log.warning("remote %s: reply dropped (work %s): %s", what, work_id, why)
        return None


# --------------------------------------------------------------------------- reading


def _object(data: bytes, max_bytes: int, what: str) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise Refused(f"{what} of {len(data)} bytes is over the limit of {max_bytes}")
    try:
        doc = _STRICT.decode(data.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Refused(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise Refused(f"{what} is not a JSON object")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.dumps and json.loads with options build a new coder per call, and a
# scheduler encodes a request and decodes a reply for every remote run.
_STRICT = json.JSONDecoder(parse_constant=_no_constant)  # no NaN or Infinity from the wire
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_REQUEST = json.JSONEncoder(separators=(",", ":"), default=_jsonable)


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Refused(f"{key} must be a short string")
    return value


def _name(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not is_safe_name(value):
        raise Refused(f"{key} must be a safe name (never a path), got {str(value)[:80]!r}")
    assert isinstance(value, str)
    return value
