"""Who acts on which instance, and what every operator action shares: reading a pair,
refusing with OpError, recording the command, asking the daemon for a run."""

from __future__ import annotations

import os
import pwd
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from survivor.clock import local_zone
from survivor.errors import SurvivorError
from survivor.model.codes import ReturnCode, is_failing
from survivor.model.config import CheckDef, Config, Host
from survivor.model.documents import (
    Ack,
    CheckState,
    Inhibit,
    Request,
)
from survivor.store.history import HistoryStore
from survivor.store.pidfile import read_pid
from survivor.store.state import StateStore

DEFAULT_COMMENT = "(no reason given)"


class OpError(SurvivorError):
    """An operator action was refused; the message says which pair and what stands in the way."""


def current_user() -> str:
    """The Unix user running this process: who is recorded in the command history."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


@dataclass(frozen=True, slots=True)
class Operator:
    """Who acts, and on which instance."""

    config: Config
    state: StateStore
    history: HistoryStore
    user: str
    operation: str | None = None  # shared by the command records of one invocation

    @property
    def tz(self) -> tzinfo:
        return local_zone(self.config.instance.timezone)


# --------------------------------------------------------------------------- pair plumbing


def pair(config: Config, host: str, check: str) -> tuple[CheckDef, Host]:
    """The configured check and host, or OpError saying which is not configured."""
    checkdef = config.checks.get(check)
    if checkdef is None:
        raise OpError(f"no check named {check!r} in {config.path}")
    hostdef = config.hosts.get(host)
    if hostdef is None:
        raise OpError(f"no host named {host!r} in {config.path}")
    if host not in checkdef.host_set:
        shown = ", ".join(checkdef.hosts[:8]) + (", ..." if len(checkdef.hosts) > 8 else "")
        raise OpError(f"check {check} does not run on host {host} (it runs on: {shown or 'none'})")
    return checkdef, hostdef


def label(host: str, check: str) -> str:
    return f"{host}/{check}"


def read_check(op: Operator, host: str, check: str) -> CheckState | None:
    return op.state.read_check(host, check)


def read_ack(op: Operator, host: str, check: str) -> Ack | None:
    doc = op.state.read_pair_doc(host, check, "ack")
    return None if doc is None else Ack.from_dict(doc)


def read_inhibit(op: Operator, host: str, check: str) -> Inhibit | None:
    doc = op.state.read_pair_doc(host, check, "inhibit")
    return None if doc is None else Inhibit.from_dict(doc)


def failing(st: CheckState | None) -> bool:
    return st is not None and is_failing(st.rc)


def require_failing(st: CheckState | None, host: str, check: str, verb: str) -> CheckState:
    if st is None:
        raise OpError(f"{label(host, check)} has no result yet; nothing to {verb}")
    if not is_failing(st.rc):
        why = {
            ReturnCode.OK: "is OK",
            ReturnCode.NOTYET: "has no result yet (NOTYET)",
            ReturnCode.DEPEND: "is DEPEND (skipped because a dependency is failing)",
        }[ReturnCode(st.rc)]
        raise OpError(f"{label(host, check)} {why}; nothing to {verb}")
    return st


def record_command(
    op: Operator, host: str, check: str, command: str, comment: str, now: datetime, **extra: Any
) -> None:
    record = {"user": op.user, "command": command, "comment": comment, **extra}
    if op.operation is not None:
        record["op_id"] = op.operation
    op.history.append(host, check, "command", now, record)


def comment_or_default(comment: str | None) -> str:
    text = (comment or "").strip()
    return text or DEFAULT_COMMENT


def operation_id(now: datetime) -> str:
    """A new id for one operator invocation: its command records all carry it as `op_id`."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def daemon_running(state: StateStore) -> bool:
    return read_pid(state.layout.pidfile) is not None


def request_reschedule(op: Operator, host: str, check: str, comment: str, now: datetime) -> Path:
    """Ask the daemon to run check@host at once (it applies requests within seconds)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    request = Request(
        id=f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        action="reschedule",
        user=op.user,
        at=now,
        host=host,
        check=check,
        comment=comment,
    )
    return op.state.submit_request(request)


def when_daemon(op: Operator) -> str:
    if daemon_running(op.state):
        return "the daemon runs it within seconds"
    return "the daemon is not running; it runs the check when it starts"
