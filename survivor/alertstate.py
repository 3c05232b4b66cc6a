"""The alert documents stored per check@host: alert.json, ack.json, inhibit.json, escalate.json.

Written by the alert scheduler (alert.json) and by operator commands (the
others), read by the alert decision (alertplan), status, the web view and
metrics. Each carries "version": 1 and refuses any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Self

from survivor.calllist import Recipient
from survivor.clock import parse_iso, utc_iso
from survivor.errors import StateError
from survivor.model import code_name


def _iso(t: datetime | None) -> str | None:
    return None if t is None else utc_iso(t)


def _time(v: Any) -> datetime | None:
    return None if v is None else parse_iso(str(v))


def _check_version(d: Mapping[str, Any], version: int, what: str) -> None:
    if d.get("version") != version:
        raise StateError(f"{what} version {d.get('version')!r} is not supported")


# --------------------------------------------------------------------------- stored documents


@dataclass(frozen=True, slots=True)
class CheckView:
    """The part of check.json the alert decision reads."""

    rc: int
    consecutive: int  # results in a row with this code
    since: datetime  # first result with this code
    last_start: datetime | None = None  # start of the latest result
    comment: str = ""


@dataclass(frozen=True, slots=True)
class AlertState:
    """alert.json: what has been done about the current problem of one check@host.

    `pending_fix_confirm` is set when a fix reported success; until a check
    result that started after `last_fix` arrives, nothing is sent, so the
    re-check decides between a clear and the next try.
    """

    VERSION: ClassVar[int] = 1
    about_rc: int  # the code this state (and the alerts sent) are about
    status_since: datetime  # when that status began (the check's `since`)
    alerts_sent: int = 0
    fixes_tried: int = 0
    try_index: int | None = None  # rung of the `tries` ladder used last
    last_alert: datetime | None = None
    last_fix: datetime | None = None
    last_recipients: tuple[Recipient, ...] = ()  # who gets the clear notice
    escalated: bool = False  # the last rung used counts as escalated (for UIs)
    manual_escalation: int = 0  # attempts counted as done because of `survivor escalate`
    pending_fix_confirm: bool = False
    ok_streak: int = 0  # OK results seen while waiting for `recovery_after`

    @property
    def attempts(self) -> int:
        return self.alerts_sent + self.fixes_tried

    @property
    def last_action(self) -> datetime | None:
        """The later of the last alert and the last fix: what pacing counts from."""
        times = [t for t in (self.last_alert, self.last_fix) if t is not None]
        return max(times) if times else None

    def with_recipients(self, recipients: tuple[Recipient, ...]) -> AlertState:
        """After a delivery: these people get the clear notice (empty keeps the old ones)."""
        return replace(self, last_recipients=recipients) if recipients else self

    def with_fix_result(self, ok: bool) -> AlertState:
        """After the fix ran: a success waits for the re-check before anything else is sent."""
        return replace(self, pending_fix_confirm=ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "about_rc": self.about_rc,
            "about_code": code_name(self.about_rc),
            "status_since": utc_iso(self.status_since),
            "alerts_sent": self.alerts_sent,
            "fixes_tried": self.fixes_tried,
            "try": self.try_index,
            "last_alert": _iso(self.last_alert),
            "last_fix": _iso(self.last_fix),
            "last_recipients": [r.to_dict() for r in self.last_recipients],
            "escalated": self.escalated,
            "manual_escalation": self.manual_escalation,
            "pending_fix_confirm": self.pending_fix_confirm,
            "ok_streak": self.ok_streak,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        _check_version(d, cls.VERSION, "alert state")
        try:
            return cls(
                about_rc=int(d["about_rc"]),
                status_since=parse_iso(d["status_since"]),
                alerts_sent=int(d.get("alerts_sent", 0)),
                fixes_tried=int(d.get("fixes_tried", 0)),
                try_index=None if d.get("try") is None else int(d["try"]),
                last_alert=_time(d.get("last_alert")),
                last_fix=_time(d.get("last_fix")),
                last_recipients=tuple(Recipient.from_dict(r) for r in d.get("last_recipients", [])),
                escalated=bool(d.get("escalated", False)),
                manual_escalation=int(d.get("manual_escalation", 0)),
                pending_fix_confirm=bool(d.get("pending_fix_confirm", False)),
                ok_streak=int(d.get("ok_streak", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"alert state is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Ack:
    """ack.json: silence the problem with code `about_rc` until the code changes."""

    VERSION: ClassVar[int] = 1
    user: str
    comment: str
    at: datetime
    about_rc: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "user": self.user,
            "comment": self.comment,
            "at": utc_iso(self.at),
            "about_rc": self.about_rc,
            "about_code": code_name(self.about_rc),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        _check_version(d, cls.VERSION, "acknowledgement")
        try:
            return cls(
                str(d["user"]), str(d.get("comment", "")), parse_iso(d["at"]), int(d["about_rc"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"acknowledgement is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Inhibit:
    """inhibit.json: silence every notification until removed or until `until`.

    Unlike an ack it survives code changes and recoveries: it is a maintenance
    switch, allowed even while the check is OK.
    """

    VERSION: ClassVar[int] = 1
    user: str
    comment: str
    at: datetime
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "user": self.user,
            "comment": self.comment,
            "at": utc_iso(self.at),
            "until": _iso(self.until),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        _check_version(d, cls.VERSION, "inhibition")
        try:
            return cls(
                str(d["user"]), str(d.get("comment", "")), parse_iso(d["at"]), _time(d.get("until"))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"inhibition is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Escalation:
    """escalate.json: the operator asked for the next rung; `level` attempts count as done."""

    VERSION: ClassVar[int] = 1
    user: str
    comment: str
    at: datetime
    level: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "user": self.user,
            "comment": self.comment,
            "at": utc_iso(self.at),
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        _check_version(d, cls.VERSION, "escalation")
        try:
            return cls(
                str(d["user"]), str(d.get("comment", "")), parse_iso(d["at"]), int(d["level"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"escalation is malformed: {exc!r}") from exc
