"""Which check@host pairs are due at a tick (DESIGN §6), as work items planned in the minute.

`CheckScheduler.tick(config, now)` is the whole scheduling decision of a minute:
due pairs from schedules, retry intervals and reschedule requests, one work item
per Survivor-protocol check for all its due hosts (one per host for plugins), each
planned at its slot: the minute's runs evenly spaced in the order of a stable hash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from survivor import schedule
from survivor.clock import MINUTE_S, floor_minute
from survivor.model.codes import blocks_dependents, is_failing
from survivor.model.config import CheckDef, CheckKind, Config, Host
from survivor.model.documents import CheckState
from survivor.model.work import ItemIds, WorkItem, WorkKind
from survivor.store.books import CheckBook

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    pass

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- scheduling


@dataclass(slots=True)
class TickReport:
    """What one tick decided, for logs and daemon.json."""

    minute: datetime
    items: list[WorkItem] = field(default_factory=list)
    due_pairs: int = 0
    blocked: list[tuple[CheckDef, Host, str]] = field(default_factory=list)  # Type I dependency


def slot_key(check: CheckDef, hosts: tuple[str, ...]) -> str:
    """What a run is known by: "check@host" for a plugin (one run per host), else "check"."""
    return f"{check.name}@{hosts[0]}" if check.kind is CheckKind.PLUGIN else check.name


def check_item(
    ids: ItemIds, check: CheckDef, hosts: tuple[str, ...], planned: float, reason: str = "schedule"
) -> WorkItem:
    """A work item running `check` for `hosts` at `planned` (epoch seconds)."""
    return WorkItem(
        id=ids.next("check"),
        kind=WorkKind.CHECK,
        check=check.name,
        hosts=hosts,
        planned=planned,
        key=f"check:{slot_key(check, hosts)}",
        reason=reason,
    )


def slot_keys(config: Config) -> Iterator[str]:
    """The key of every run a minute can hold: each plugin pair, each Survivor-protocol check."""
    for check in config.checks.values():
        if check.kind is CheckKind.PLUGIN:
            for host in check.hosts:
                yield slot_key(check, (host,))
        else:
            yield slot_key(check, check.hosts)


class CheckScheduler:
    def __init__(self, book: CheckBook, ids: ItemIds, tz: tzinfo) -> None:
        self.book = book
        self.ids = ids
        self.tz = tz
        self._slots: tuple[Config, Mapping[str, float]] | None = None

    def slots(self, config: Config) -> Mapping[str, float]:
        """Each run's offset inside the minute (schedule.even_slots), worked out once a config."""
        if self._slots is None or self._slots[0] is not config:
            self._slots = (config, schedule.even_slots(slot_keys(config), MINUTE_S))
        return self._slots[1]

    def tick(self, config: Config, now: datetime, *, first: bool = False) -> TickReport:
        """Work due at `now`'s minute, each item at its stable offset inside the minute.

        With `first` (start-up, mid-minute) items whose offset has already passed are left
        for the next tick, so a start is never a burst: every pair keeps the cadence it
        will have from then on.
        """
        minute = floor_minute(now)
        report = TickReport(minute)
        slots = self.slots(config)
        base = minute.timestamp()
        earliest = now.timestamp() if first else base
        for check in config.checks.values():
            due: list[str] = []
            for host_name in check.hosts:
                host = config.hosts[host_name]
                state = self.book.get(check.name, host_name)
                if not self.is_due(config, check, host, state, minute):
                    continue
                blocker = self.blocking_dependency(config, check, host)
                if blocker is not None:
                    report.blocked.append((check, host, blocker))
                    continue
                due.append(host_name)
            if not due:
                continue
            batches = [(h,) for h in due] if check.kind is CheckKind.PLUGIN else [tuple(due)]
            for hosts in batches:
                planned = base + slots[slot_key(check, hosts)]
                if planned < earliest:
                    continue  # first tick: its slot in this minute has passed; next minute
                report.due_pairs += len(hosts)
                report.items.append(check_item(self.ids, check, hosts, planned))
        return report

    def never_run(self, config: Config, now: datetime) -> list[tuple[str, str]]:
        """The (check, host) pairs without state, in slot order: the slots still ahead of
        `now` in its minute first, then those that come round in the next minute."""
        slots = self.slots(config)
        ahead = now.timestamp() - floor_minute(now).timestamp()
        fresh = [
            (slots[slot_key(check, (host_name,))], check.name, host_name)
            for check in config.checks.values()
            for host_name in check.hosts
            if self.book.get(check.name, host_name) is None
        ]
        fresh.sort(key=lambda f: (f[0] < ahead, f[0]))
        return [(check_name, host_name) for _, check_name, host_name in fresh]

    def is_due(
        self,
        config: Config,
        check: CheckDef,
        host: Host,
        state: CheckState | None,
        minute: datetime,
    ) -> bool:
        if state is None or state.last_planned is None or state.reschedule:
            return True
        if state.last_planned > minute:
            return True  # the clock was stepped back: run now rather than wait it out
        if (
            check.retry is not None
            and is_failing(state.rc)
            and minute - floor_minute(state.last_planned) >= check.retry
        ):
            return True
        sched = config.schedule_for(check, host)
        if sched is None:
            return False
        return schedule.is_due(sched, state.last_planned, minute, self.tz)

    def blocking_dependency(self, config: Config, check: CheckDef, host: Host) -> str | None:
        """A Type I dependency that is not OK on its host, as "ping@gw1 is PROBLEM", else None."""
        for dep in config.dependencies:
            if dep.run_first or not dep.covers(check.name, host.name):
                continue
            dep_host = dep.on_host or host.name
            state = self.book.get(dep.on_check, dep_host)
            if state is None or state.last_start is None:
                continue  # never run: does not block
            if blocks_dependents(state.rc):
                return f"{dep.on_check}@{dep_host} is {state.code}"
        return None


def pairs_of(config: Config) -> Iterable[tuple[str, str]]:
    return ((c.name, h.name) for c, h in config.pairs())
