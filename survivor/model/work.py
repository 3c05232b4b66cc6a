"""What crosses between the schedulers, the pools and the recorders: results and work items.

Pure data: nothing here reads the clock, starts a thread or writes a file.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from survivor.model.codes import code_name


class WorkKind(StrEnum):
    CHECK = "check"
    FIX = "fix"
    ALERT = "alert"


class WorkState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One `'label'=value[UOM];warn;crit;min;max` item; value None means `U` (unknown)."""

    label: str
    value: float | None
    uom: str = ""
    warn: str | None = None
    crit: str | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "value": self.value}
        if self.uom:
            d["uom"] = self.uom
        for key in ("warn", "crit", "min", "max"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerfDatum:
        return cls(
            label=str(d["label"]),
            value=None if d.get("value") is None else float(d["value"]),
            uom=str(d.get("uom", "")),
            warn=d.get("warn"),
            crit=d.get("crit"),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
        )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one run of a check said about one host."""

    host: str
    rc: int
    comment: str = ""
    scalar: float | None = None
    duration_ms: int = 0
    perfdata: tuple[PerfDatum, ...] = ()
    long_output: str = ""  # a plugin's lines after the first (protocol.plugins)

    @property
    def code(self) -> str:
        return code_name(self.rc)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A unit of work for a pool: one check run for some hosts, one fix, or one alert."""

    id: str
    kind: WorkKind
    check: str
    hosts: tuple[str, ...]
    planned: float  # epoch seconds: when it should start (spread over the minute)
    key: str  # identity: never queue an item whose key is already queued or running
    reason: str = "schedule"  # schedule | retry | request | fix-confirm
    payload: Mapping[str, Any] = field(default_factory=dict, hash=False)


class Mood(Enum):
    """What the daemon's main loop is doing (Supervisor's word)."""

    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ItemIds:
    """Short ids, unique across daemon runs: a random run prefix and a counter."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix or secrets.token_hex(2)
        self._counter = itertools.count(1)

    def next(self, kind: str) -> str:
        return f"{kind[0]}{self._prefix}{next(self._counter):x}"
