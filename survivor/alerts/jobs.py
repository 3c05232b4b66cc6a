"""What the alert scheduler hands an alert worker, the counters they share, and the
operator's silencers (ack, inhibit, escalate) both of them read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from survivor.alertplan import AlertAction, Decision
from survivor.errors import StateError
from survivor.model.documents import Ack, Escalation, Inhibit, Recipient
from survivor.store.state import StateStore

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    pass

log = logging.getLogger(__name__)


SYSTEM_USER = "survivor"


@dataclass(frozen=True, slots=True)
class AlertJob:
    """One alert worker job: a decision about one pair, or a digest for one recipient."""

    check: str
    host: str
    action: AlertAction
    decision: Decision | None
    recipients: tuple[Recipient, ...] = ()
    tell: tuple[Recipient, ...] = ()
    doc: Mapping[str, Any] = field(default_factory=dict)
    digest: tuple[Mapping[str, Any], ...] = ()


@dataclass(slots=True)
class AlertStats:
    """Counters for daemon.json and metrics."""

    sent: int = 0
    failed: int = 0
    throttled: int = 0
    digests: int = 0
    fixes: int = 0
    held: int = 0  # alert decisions about failing pairs held by a downtime
    in_downtime: int = 0  # pairs in downtime at the last alert tick (a gauge)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def to_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "throttled": self.throttled,
            "digests": self.digests,
            "fixes": self.fixes,
            "held": self.held,
            "in_downtime": self.in_downtime,
        }


# --------------------------------------------------------------------------- operator documents


@dataclass(frozen=True, slots=True)
class Silencers:
    ack: Ack | None = None
    inhibit: Inhibit | None = None
    escalate: Escalation | None = None


def read_silencers(state: StateStore, check: str, host: str) -> Silencers:
    """ack.json, inhibit.json and escalate.json of a pair; a bad file is logged and ignored."""
    found: dict[str, Any] = {}
    for name, cls in (("ack", Ack), ("inhibit", Inhibit), ("escalate", Escalation)):
        try:
            doc = state.read_pair_doc(host, check, name)
            found[name] = None if doc is None else cls.from_dict(doc)
        except StateError as err:
            log.error("alert %s@%s: ignoring %s.json: %s", check, host, name, err)
            found[name] = None
    return Silencers(found["ack"], found["inhibit"], found["escalate"])


def job_key(check: str, host: str) -> str:
    return f"alert:{check}@{host}"
