"""The daemon judged from daemon.json and its pidfile: there, alive, on its config, writing?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from survivor.clock import parse_time
from survivor.model.documents import as_float, as_int
from survivor.views.rows import age_text, iso
from survivor.views.workers import broker_line, summary_lines


@dataclass(frozen=True, slots=True)
class DaemonHealth:
    """daemon.json and the pidfile, judged: is the daemon there, alive and on its config?"""

    running: bool
    pid: int | None
    mood: str
    started: datetime | None
    heartbeat: datetime | None
    heartbeat_stale: bool
    generation: int | None
    config_stale: bool
    last_reload: Mapping[str, Any] | None
    disk_failing: bool
    disk_error: str | None
    pools: Mapping[str, Any]
    error: str | None = None  # daemon.json unreadable
    broker: Mapping[str, Any] | None = None  # daemon.json `broker` (remote workers, §7b)
    workers: Mapping[str, Any] | None = None  # state/workers.json

    @property
    def level(self) -> str:
        """ok, warning or problem: the colour of the daemon's line in every view."""
        if not self.running or self.heartbeat_stale or self.disk_failing or self.error:
            return "problem"
        reload_failed = (self.last_reload or {}).get("ok") is False
        broker_down = self.broker is not None and self.broker.get("connected") is not True
        if self.config_stale or reload_failed or broker_down:
            return "warning"
        return "ok"

    def lines(self, now: datetime) -> list[str]:
        """For people, most important first: the daemon, its config, its disk."""
        out: list[str] = []
        if self.error:
            out.append(f"daemon.json: unreadable ({self.error})")
        if not self.running:
            seen = f" (last seen {age_text(self.heartbeat, now)})" if self.heartbeat else ""
            out.append(f"daemon: NOT RUNNING{seen}")
        else:
            gen = "?" if self.generation is None else str(self.generation)
            out.append(
                f"daemon: {self.mood}, pid {self.pid}, generation {gen}, "
                f"heartbeat {age_text(self.heartbeat, now)}"
                + (" (STALE: the daemon may be hung)" if self.heartbeat_stale else "")
            )
        if self.config_stale:
            out.append(
                "config: CHANGED ON DISK since it was loaded; run `survivor reload` to apply it"
            )
        last = self.last_reload or {}
        if last.get("ok") is False:
            out.append(
                f"config: last reload FAILED {age_text(parse_time(last.get('at')), now)}; "
                "still running the previous config:"
            )
            errors = last.get("errors")
            out.extend(f"  {e}" for e in (errors if isinstance(errors, list) else [])[:10])
        if self.disk_failing:
            out.append(f"disk: FAILING: {self.disk_error or 'write errors'}")
        if self.running:
            for name, stats in sorted(self.pools.items()):
                waiting = stats.get("waiting")
                out.append(
                    f"pool {name}: {stats.get('busy', '?')} of {stats.get('size', '?')} workers "
                    f"busy, {stats.get('queued', '?')} queued, {stats.get('completed', '?')} "
                    f"done, {stats.get('failed', '?')} failed"
                    + (
                        f"; {waiting} WAITING for room, the oldest {stats.get('waiting_s', '?')}s"
                        if waiting
                        else ""
                    )
                )
            line = broker_line(self.broker, now)
            if line is not None:
                out.append(line)
                out.extend(summary_lines(self.workers, now))
        return out

    def to_dict(self, now: datetime) -> dict[str, Any]:
        last = dict(self.last_reload) if self.last_reload else None
        if last is not None:
            last["age"] = age_text(parse_time(last.get("at")), now)
        return {
            "running": self.running,
            "pid": self.pid,
            "mood": self.mood,
            "level": self.level,
            "started": iso(self.started),
            "heartbeat": iso(self.heartbeat),
            "heartbeat_age": age_text(self.heartbeat, now),
            "heartbeat_stale": self.heartbeat_stale,
            "generation": self.generation,
            "config_stale": self.config_stale,
            "last_reload": last,
            "disk_failing": self.disk_failing,
            "disk_error": self.disk_error,
            "pools": dict(self.pools),
            "broker": None if self.broker is None else dict(self.broker),
            "error": self.error,
            "lines": self.lines(now),
        }


def daemon_health(
    doc: Mapping[str, Any] | None,
    pid: int | None,
    now: datetime,
    *,
    error: str | None = None,
    workers: Mapping[str, Any] | None = None,
) -> DaemonHealth:
    """Judge daemon.json (None if absent) and the pid holding the pidfile (None: no daemon)."""
    d: Mapping[str, Any] = doc or {}
    config = _mapping(d.get("config"))
    health = _mapping(d.get("health"))
    heartbeat = parse_time(d.get("updated"))
    beat_s = as_float(d.get("heartbeat_s")) or 15.0
    # Three missed beats (and at least a minute) before calling a running daemon hung.
    limit = max(3 * beat_s, 60.0)
    stale = pid is not None and (heartbeat is None or (now - heartbeat).total_seconds() > limit)
    if pid is not None and heartbeat is None and not d:
        stale = False  # just started: daemon.json not written yet
    last_reload = d.get("last_reload")
    return DaemonHealth(
        running=pid is not None,
        pid=pid,
        mood=str(d.get("mood") or ("running" if pid else "stopped")),
        started=parse_time(d.get("started")),
        heartbeat=heartbeat,
        heartbeat_stale=stale,
        generation=as_int(config.get("generation")),
        config_stale=bool(config.get("stale")),
        last_reload=last_reload if isinstance(last_reload, Mapping) else None,
        disk_failing=health.get("disk") not in (None, "ok"),
        disk_error=None
        if health.get("last_disk_error") is None
        else str(health["last_disk_error"]),
        pools={k: v for k, v in _mapping(d.get("pools")).items() if isinstance(v, Mapping)},
        error=error,
        broker=d["broker"] if isinstance(d.get("broker"), Mapping) else None,
        workers=workers,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
