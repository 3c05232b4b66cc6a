"""Every document survivor stores under `state_dir`, in one place: its VERSION and fields.

    host/<h>/<c>/check.json     CheckState       (the daemon)
    host/<h>/<c>/alert.json     AlertState       (the daemon)
    host/<h>/<c>/ack.json       Ack              (operator commands)
    host/<h>/<c>/inhibit.json   Inhibit          (operator commands)
    host/<h>/<c>/escalate.json  Escalation       (operator commands)
    running-config.json         ConfigSnapshot   (the daemon: the config it runs)
    calllist/<name>.json        CallListState    (the daemon, `calllist substitute`)
    fixlocks/<name>.json        FixLock          (whoever runs a fix)
    requests/<id>.json          Request          (operator commands, for the daemon)

Each carries "version" and `to_dict()`; `from_dict()` is strict and raises
StateError (the daemon moves such a file aside), while the views read with
`CheckState.from_dict_lenient` and `Inhibit.from_dict_lenient`, which give what
they can and say what was wrong, because a view must never die on the files it
is meant to show. daemon.json and queue.json are built by the daemon and read
leniently by the views (survivor.views).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from survivor.clock import parse_iso, parse_time, utc_iso
from survivor.errors import StateError
from survivor.model.codes import ReturnCode, code_name
from survivor.model.work import CheckResult, PerfDatum


def encode(doc: Mapping[str, Any]) -> bytes:
    """One line of JSON: the C encoder (indent would force the slow Python one); `jq .` reads it."""
    return (_ONE_LINE.encode(doc) + "\n").encode()


# One encoder for every document and record: json.dumps with options builds a new one per call.
_ONE_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_with_list(doc: Mapping[str, Any], key: str, items_text: str) -> bytes:
    """`encode` of `doc` plus `key` whose value is the JSON text `items_text` (RowTexts.join)."""
    head = _ONE_LINE.encode(doc)
    comma = "," if len(doc) else ""
    return (f"{head[:-1]}{comma}{_ONE_LINE.encode(key)}:{items_text}}}\n").encode()


class RowTexts:
    """The JSON text of a list of rows, each row encoded once for as long as the caller
    hands in the same object: queue.json lists every running check each second, and a
    check runs for many seconds (the rows must not be changed in place)."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[Mapping[str, Any], str]] = {}  # id(row) -> (row, text)

    def join(self, rows: list[dict[str, Any]]) -> str:
        old: dict[int, tuple[Mapping[str, Any], str]] = self._texts
        new: dict[int, tuple[Mapping[str, Any], str]] = {}
        texts = []
        for row in rows:
            known = old.get(id(row))
            # the row kept in the cache holds its id: no other object can have it meanwhile
            text = known[1] if known is not None and known[0] is row else _ONE_LINE.encode(row)
            new[id(row)] = (row, text)
            texts.append(text)
        self._texts = new
        return f"[{','.join(texts)}]"


def check_version(d: Mapping[str, Any], version: int, what: str) -> None:
    """Refuse a document of another version: StateError naming it and what this survivor reads."""
    if d.get("version") != version:
        raise StateError(f"{what} version {d.get('version')!r} (this survivor reads {version})")


@contextmanager
def reading(d: Mapping[str, Any], version: int, what: str) -> Iterator[None]:
    """Check the version, and turn a missing or mistyped field into a StateError naming
    `what` (the daemon moves such a file aside; a view reads it leniently instead)."""
    check_version(d, version, what)
    try:
        yield
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        # OverflowError: int(1e400); RecursionError: a value nested too deep to convert
        raise StateError(f"{what} is malformed: {exc!r}") from exc


EPOCH = datetime.fromtimestamp(0, UTC)  # a lenient reader's stand-in for a time it cannot read


def _iso(t: datetime | None) -> str | None:
    return None if t is None else utc_iso(t)


def _time(v: Any) -> datetime | None:
    """A stored time, strictly: None or "" for absent, else it must parse."""
    return parse_iso(str(v)) if v is not None and v != "" else None


def as_int(value: object) -> int | None:
    """A lenient reader's int: ints, whole floats and digit strings; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_float(value: object) -> float | None:
    """A lenient reader's float; None for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):  # OverflowError: an int of 400 digits
        return None


def _code_from_name(name: object) -> int | None:
    if not isinstance(name, str):
        return None
    if name in ReturnCode.__members__:
        return int(ReturnCode[name])
    if name.startswith("CUSTOM-"):
        return as_int(name[7:])
    return None


# --------------------------------------------------------------------------- check.json


@dataclass(frozen=True, slots=True)
class CheckState:
    """check.json: the current status of one check@host."""

    VERSION: ClassVar[int] = 1
    rc: int = int(ReturnCode.NOTYET)
    since: datetime | None = None  # first result with this code
    consecutive: int = 0  # results in a row with this code
    last_start: datetime | None = None  # actual start of the last run
    last_planned: datetime | None = None  # the minute the last run was planned for
    duration_ms: int = 0
    scalar: float | None = None
    comment: str = ""
    perfdata: tuple[PerfDatum, ...] = ()
    next_due: datetime | None = None
    fingerprint: str = ""
    generation: int = 0
    reschedule: bool = False  # an operator asked for a run at the next tick
    long_output: str = ""  # a plugin's long output (its lines after the first); "" if none

    @property
    def code(self) -> str:
        return code_name(self.rc)

    def advance(
        self,
        result: CheckResult,
        *,
        start: datetime,
        planned: datetime,
        fingerprint: str,
        generation: int,
        next_due: datetime | None = None,
    ) -> CheckState:
        """The state after `result`: consecutive counting and `since` per Survivor."""
        same = result.rc == self.rc and self.last_start is not None
        return CheckState(
            rc=result.rc,
            since=self.since if same and self.since is not None else start,
            consecutive=self.consecutive + 1 if same else 1,
            last_start=start,
            last_planned=planned,
            duration_ms=result.duration_ms,
            scalar=result.scalar,
            comment=result.comment,
            perfdata=result.perfdata,
            next_due=next_due,
            fingerprint=fingerprint,
            generation=generation,
            reschedule=False,
            long_output=result.long_output,
        )

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "version": self.VERSION,
            "rc": self.rc,
            "code": self.code,
            "since": _iso(self.since),
            "consecutive": self.consecutive,
            "last_start": _iso(self.last_start),
            "last_planned": _iso(self.last_planned),
            "duration_ms": self.duration_ms,
            "scalar": self.scalar,
            "comment": self.comment,
            "perfdata": [p.to_dict() for p in self.perfdata],
            "next_due": _iso(self.next_due),
            "fingerprint": self.fingerprint,
            "generation": self.generation,
            "reschedule": self.reschedule,
        }
        if self.long_output:  # optional: most checks have none, and older files lack it
            doc["long_output"] = self.long_output
        return doc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "check state"):
            return cls(
                rc=int(d["rc"]),
                since=_time(d.get("since")),
                consecutive=int(d.get("consecutive", 0)),
                last_start=_time(d.get("last_start")),
                last_planned=_time(d.get("last_planned")),
                duration_ms=int(d.get("duration_ms", 0)),
                scalar=None if d.get("scalar") is None else float(d["scalar"]),
                comment=str(d.get("comment", "")),
                perfdata=tuple(PerfDatum.from_dict(p) for p in d.get("perfdata") or ()),
                next_due=_time(d.get("next_due")),
                fingerprint=str(d.get("fingerprint", "")),
                generation=int(d.get("generation", 0)),
                reschedule=bool(d.get("reschedule", False)),
                long_output=str(d.get("long_output") or ""),
            )

    @classmethod
    def from_dict_lenient(cls, doc: Mapping[str, Any]) -> tuple[Self, str | None]:
        """check.json even if it is old, new or damaged, and what was wrong (for the views)."""
        try:
            return cls.from_dict(doc), None
        except StateError as err:
            why = str(err)
        rc = as_int(doc.get("rc"))
        if rc is None:
            rc = _code_from_name(doc.get("code"))
        perfdata: list[PerfDatum] = []
        raw_perfdata = doc.get("perfdata")
        for item in raw_perfdata if isinstance(raw_perfdata, list) else ():
            try:
                perfdata.append(PerfDatum.from_dict(item))
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                continue
        state = cls(
            rc=int(ReturnCode.NOTYET) if rc is None else rc,
            since=parse_time(doc.get("since")),
            consecutive=as_int(doc.get("consecutive")) or 0,
            last_start=parse_time(doc.get("last_start")),
            last_planned=parse_time(doc.get("last_planned")),
            duration_ms=as_int(doc.get("duration_ms")) or 0,
            scalar=as_float(doc.get("scalar")),
            comment=str(doc.get("comment") or ""),
            perfdata=tuple(perfdata),
            next_due=parse_time(doc.get("next_due")),
            fingerprint=str(doc.get("fingerprint") or ""),
            generation=as_int(doc.get("generation")) or 0,
            long_output=str(doc.get("long_output") or ""),
        )
        return state, why

    def with_reschedule(self) -> CheckState:
        """Marked to run at the next tick (other fields kept, as Survivor's reschedule)."""
        return replace(self, reschedule=True)


@dataclass(frozen=True, slots=True)
class Request:
    """An operator request the daemon applies within seconds (reschedule, cancel, ...)."""

    VERSION: ClassVar[int] = 1
    id: str
    action: str  # reschedule | cancel
    user: str
    at: datetime
    host: str | None = None
    check: str | None = None
    target: str | None = None  # a queue item id for cancel
    comment: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "id": self.id,
            "action": self.action,
            "user": self.user,
            "at": utc_iso(self.at),
            "host": self.host,
            "check": self.check,
            "target": self.target,
            "comment": self.comment,
            **dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        known = {"version", "id", "action", "user", "at", "host", "check", "target", "comment"}
        with reading(d, cls.VERSION, "request"):
            return cls(
                id=str(d["id"]),
                action=str(d["action"]),
                user=str(d.get("user", "?")),
                at=parse_iso(str(d["at"])),
                host=d.get("host"),
                check=d.get("check"),
                target=d.get("target"),
                comment=str(d.get("comment", "")),
                extra={k: v for k, v in d.items() if k not in known},
            )


# --------------------------------------------------------------------------- alert.json


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

    def with_told(self, recipients: Iterable[Recipient]) -> AlertState:
        """After a delivery: add these to everyone told about this problem (the clear's list).

        Alerts and a fix try's `tell` alike: whoever heard of the problem hears
        that it is over. Each person at each address once (whatever the list
        that reached them), in the order first told.
        """
        told: dict[tuple[str, str, str], Recipient] = {}
        for r in (*self.last_recipients, *recipients):
            told.setdefault((r.person, r.address, r.via), r)
        return self.with_recipients(tuple(told.values()))

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
        with reading(d, cls.VERSION, "alert state"):
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


def _note(version: int, user: str, comment: str, at: datetime) -> dict[str, Any]:
    """What every operator's document says first: who, why, when."""
    return {"version": version, "user": user, "comment": comment, "at": utc_iso(at)}


def _note_fields(d: Mapping[str, Any]) -> tuple[str, str, datetime]:
    return str(d["user"]), str(d.get("comment", "")), parse_iso(d["at"])


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
            **_note(self.VERSION, self.user, self.comment, self.at),
            "about_rc": self.about_rc,
            "about_code": code_name(self.about_rc),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "acknowledgement"):
            return cls(*_note_fields(d), int(d["about_rc"]))


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

    @classmethod
    def from_dict_lenient(cls, d: Mapping[str, Any]) -> tuple[Self | None, str | None]:
        """inhibit.json for the views, and what was wrong with it (never raises).

        A damaged one (an `until` that does not parse, say) fails closed: not
        inhibited, as the daemon ignores it and sends alerts; never "inhibited
        forever", which would hide exactly what the operator must see.
        """
        try:
            return cls.from_dict(d), None
        except StateError as err:
            return None, f"{err}; not inhibited"

    def to_dict(self) -> dict[str, Any]:
        return {**_note(self.VERSION, self.user, self.comment, self.at), "until": _iso(self.until)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "inhibition"):
            return cls(*_note_fields(d), _time(d.get("until")))


@dataclass(frozen=True, slots=True)
class Escalation:
    """escalate.json: the operator asked for the next rung; `level` attempts count as done."""

    VERSION: ClassVar[int] = 1
    user: str
    comment: str
    at: datetime
    level: int

    def to_dict(self) -> dict[str, Any]:
        return {**_note(self.VERSION, self.user, self.comment, self.at), "level": self.level}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "escalation"):
            return cls(*_note_fields(d), int(d["level"]))


@dataclass(frozen=True, slots=True)
class Downtime:
    """downtime/<id>.json: scheduled maintenance; alerts of `pairs` are held in [start, end).

    `selection` is what the operator typed; `pairs` what it meant when the
    downtime was added (a host added to a group later is not in it).
    """

    VERSION: ClassVar[int] = 1
    id: str
    user: str
    comment: str
    at: datetime
    selection: str
    pairs: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def to_dict(self) -> dict[str, Any]:
        return {
            **_note(self.VERSION, self.user, self.comment, self.at),
            "id": self.id,
            "selection": self.selection,
            "pairs": [f"{host}/{check}" for host, check in self.pairs],
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "downtime"):
            pairs = []
            for text in d["pairs"]:
                host, slash, check = str(text).partition("/")
                if not slash:
                    raise ValueError(f"pair {text!r} is not HOST/CHECK")
                pairs.append((host, check))
            return cls(
                str(d["id"]),
                *_note_fields(d),
                str(d["selection"]),
                tuple(pairs),
                parse_iso(d["start"]),
                parse_iso(d["end"]),
            )


# --------------------------------------------------------------------------- call lists


@dataclass(frozen=True, slots=True)
class Recipient:
    """One delivery: which person, at which address, by which method, for which list."""

    person: str
    address: str
    via: str
    calllist: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "address": self.address,
            "via": self.via,
            "calllist": self.calllist,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(str(d["person"]), str(d["address"]), str(d["via"]), str(d["calllist"]))


@dataclass(frozen=True, slots=True)
class Substitution:
    """`person` takes the place of `for_person` until `until` (exclusive)."""

    person: str
    for_person: str
    until: datetime
    by: str = ""  # the operator who asked for it
    at: datetime | None = None  # when it was asked for

    def active(self, now: datetime) -> bool:
        return now < self.until

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "for": self.for_person,
            "until": utc_iso(self.until),
            "by": self.by,
            "at": None if self.at is None else utc_iso(self.at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            person=str(d["person"]),
            for_person=str(d["for"]),
            until=parse_iso(d["until"]),
            by=str(d.get("by", "")),
            at=None if d.get("at") is None else parse_iso(d["at"]),
        )


@dataclass(frozen=True, slots=True)
class CallListState:
    """state/calllist/<name>.json; alias lists share their target's file.

    `members` is the membership when the state was last written: it is how a
    removed person's successor is found after a config change.
    """

    VERSION: ClassVar[int] = 1
    on_call: str | None = None  # rotating lists
    last_rotation: datetime | None = None  # rotating lists
    last_notified: str | None = None  # simple lists: the member notified last
    substitutions: tuple[Substitution, ...] = ()
    members: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "on_call": self.on_call,
            "last_rotation": None if self.last_rotation is None else utc_iso(self.last_rotation),
            "last_notified": self.last_notified,
            "substitutions": [s.to_dict() for s in self.substitutions],
            "members": list(self.members),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "call list state"):
            return cls(
                on_call=d.get("on_call"),
                last_rotation=(
                    None if d.get("last_rotation") is None else parse_iso(d["last_rotation"])
                ),
                last_notified=d.get("last_notified"),
                substitutions=tuple(Substitution.from_dict(s) for s in d.get("substitutions", [])),
                members=tuple(str(m) for m in d.get("members", [])),
            )

    def prune(self, now: datetime) -> CallListState:
        """The same state without substitutions that have expired."""
        return replace(self, substitutions=tuple(s for s in self.substitutions if s.active(now)))


# --------------------------------------------------------------------------- fix locks


@dataclass(frozen=True, slots=True)
class FixLock:
    """The content of one lock file: who holds it, since when, until when."""

    VERSION: ClassVar[int] = 1
    name: str
    token: str  # tells our lock from one taken over after ours expired
    pid: int
    by: str  # the user or "survivor" (the daemon)
    fix: str
    at: datetime
    expires: datetime

    def stale(self, now: datetime, alive: Callable[[int], bool]) -> str | None:
        """Why this lock may be taken over, or None while it is valid."""
        if now >= self.expires:
            return f"expired at {utc_iso(self.expires)}"
        if not alive(self.pid):
            return f"its process {self.pid} is gone"
        return None

    def describe(self) -> str:
        return f"{self.by} (pid {self.pid}, fix {self.fix}) since {utc_iso(self.at)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "name": self.name,
            "token": self.token,
            "pid": self.pid,
            "by": self.by,
            "fix": self.fix,
            "at": utc_iso(self.at),
            "expires": utc_iso(self.expires),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "fix lock"):
            return cls(
                name=str(d["name"]),
                token=str(d["token"]),
                pid=int(d["pid"]),
                by=str(d.get("by", "?")),
                fix=str(d.get("fix", "?")),
                at=parse_iso(str(d["at"])),
                expires=parse_iso(str(d["expires"])),
            )


# --------------------------------------------------------------------------- running config


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """running-config.json: the config files as the daemon read them for the generation it
    runs, so that read commands and operator actions work from the running config while
    the files on disk do not load (one typo must not disable the command line)."""

    VERSION: ClassVar[int] = 1
    path: str  # the instance file
    generation: int
    loaded_at: datetime
    files: tuple[tuple[str, bytes], ...]  # the instance file first, then its includes

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "path": self.path,
            "generation": self.generation,
            "loaded_at": utc_iso(self.loaded_at),
            "files": [
                {"path": p, "base64": base64.b64encode(data).decode("ascii")}
                for p, data in self.files
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        with reading(d, cls.VERSION, "running config"):
            return cls(
                path=str(d["path"]),
                generation=int(d["generation"]),
                loaded_at=parse_iso(d["loaded_at"]),
                files=tuple(
                    (str(f["path"]), base64.b64decode(f["base64"], validate=True))
                    for f in d["files"]
                ),
            )
