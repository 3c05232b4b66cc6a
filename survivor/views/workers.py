"""Remote workers as people see them (DESIGN §7b), from state/workers.json and daemon.json.

`survivor workers` prints `table()`; `status` and the web page show
`summary_lines()` under the daemon's lines. Nothing here raises for a bad or
missing document: a reader gets what can be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from survivor.clock import parse_time
from survivor.views.rows import age_text


@dataclass(frozen=True, slots=True)
class WorkerRow:
    name: str
    groups: tuple[str, ...]
    version: str
    last_seen: datetime | None
    in_flight: int | None
    alive: bool
    draining: bool
    module_mismatch: Mapping[str, Any]

    @property
    def state(self) -> str:
        if not self.alive:
            return "DOWN" if self.last_seen is not None else "never seen"
        return "draining" if self.draining else "alive"


def worker_rows(doc: Mapping[str, Any] | None) -> list[WorkerRow]:
    rows: list[WorkerRow] = []
    items = (doc or {}).get("workers")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        groups = item.get("groups")
        in_flight = item.get("in_flight")
        mismatch = item.get("module_mismatch")
        rows.append(
            WorkerRow(
                name=item["name"],
                groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
                version=str(item.get("version") or "?"),
                last_seen=parse_time(item.get("last_seen")),
                in_flight=in_flight if isinstance(in_flight, int) else None,
                alive=item.get("alive") is True,
                draining=item.get("draining") is True,
                module_mismatch=mismatch if isinstance(mismatch, Mapping) else {},
            )
        )
    return rows


def broker_line(broker: Mapping[str, Any] | None, now: datetime) -> str | None:
    """daemon.json `broker`, for people; None when the daemon has no remote workers."""
    if not isinstance(broker, Mapping):
        return None
    since = age_text(parse_time(broker.get("since")), now)
    if broker.get("connected") is True:
        return f"broker: connected to {broker.get('server') or '?'} since {since}"
    return f"broker: UNREACHABLE since {since}; placed checks run on the scheduler"


def summary_lines(doc: Mapping[str, Any] | None, now: datetime) -> list[str]:
    """A line on the workers and one per problem: down, module differs, breaker open."""
    rows = worker_rows(doc)
    if not rows:
        return []
    alive = [r for r in rows if r.alive]
    out = [f"workers: {len(alive)} of {len(rows)} alive"]
    for row in rows:
        if not row.alive and row.last_seen is not None:
            out.append(f"worker {row.name}: DOWN, last heartbeat {age_text(row.last_seen, now)}")
        for module in sorted(row.module_mismatch):
            out.append(f"worker {row.name}: module {module} DIFFERS from the scheduler's")
    breakers = (doc or {}).get("breakers")
    for group, b in sorted(breakers.items()) if isinstance(breakers, Mapping) else []:
        if isinstance(b, Mapping) and b.get("open"):
            out.append(f"worker group {group}: skipped (breaker open) for {b.get('open_for_s')}s")
    return out


def table(doc: Mapping[str, Any] | None, now: datetime) -> list[str]:
    """`survivor workers`: one line per worker, then the problems."""
    rows = worker_rows(doc)
    if not rows:
        return ["no workers seen (no workers: section, or the daemon has not written it yet)"]
    width = max(len(r.name) for r in rows)
    out = [f"{'WORKER':<{width}}  {'STATE':<10}  {'LAST SEEN':<10}  IN FLIGHT  GROUPS"]
    for r in rows:
        flight = "-" if r.in_flight is None else str(r.in_flight)
        out.append(
            f"{r.name:<{width}}  {r.state:<10}  {age_text(r.last_seen, now):<10}  "
            f"{flight:>9}  {','.join(r.groups)}"
        )
    out.extend(line for line in summary_lines(doc, now)[1:] if "DOWN" not in line)
    return out
