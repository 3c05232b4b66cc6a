"""Recording a check result: state, then history, then the results log (DESIGN §5).

`CheckRecorder.record()` writes each result before the worker takes the next item;
`ResultsLog` is the `results_log` stream for pipelines and the benchmark.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survivor import schedule
from survivor.clock import MINUTE, Clock, floor_minute
from survivor.model.codes import ReturnCode, code_name
from survivor.model.config import CheckDef, Config, Host
from survivor.model.documents import CheckState
from survivor.model.work import CheckResult
from survivor.store.books import CheckBook
from survivor.store.fsio import Appender, DiskWriteError, ensure_dir
from survivor.store.health import DiskHealth
from survivor.store.history import HistoryStore
from survivor.store.state import StateStore

if TYPE_CHECKING:  # the pool hands it in; checks and alerts never import pool
    pass

log = logging.getLogger(__name__)
_RESULT_LINE = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per line


# --------------------------------------------------------------------------- recording


class ResultsLog:
    """`results_log`: one JSON line per finished check, one write() each, for pipelines
    (and the benchmark's results stream). No path: nothing is written."""

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self.path = path
        self._file = None if path is None else Appender(path, clock.monotonic)

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write((_RESULT_LINE.encode(record) + "\n").encode())

    def reopen(self) -> None:
        if self._file is not None:
            self._file.reopen()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(eq=False)
class CheckRecorder:
    book: CheckBook
    state: StateStore
    history: HistoryStore
    results: ResultsLog
    health: DiskHealth
    tz: tzinfo
    # (config, its fingerprints by pair), swapped as one: two check loops record at once.
    _fingerprints: tuple[Config | None, dict[tuple[str, str], str]] = field(
        default_factory=lambda: (None, {}), init=False, repr=False
    )

    def prepare(self, pairs: Iterable[tuple[str, str]], keep_going: Callable[[], bool]) -> int:
        """Make the state and history directories of (check, host) pairs ahead of their first run.

        A first run would make them itself, on the check loop: two directories
        cost about 0.4 ms of kernel time, which at 50,000 new pairs is 20 s of
        the loop's first minute, and a backlog for minutes after. Stops when
        `keep_going()` turns false or the disk refuses; what is not made here
        is made by the run, as before, which also reports a disk problem.
        Returns how many pairs it prepared.
        """
        made = 0
        for check, host in pairs:
            if not keep_going():
                break
            try:
                ensure_dir(self.state.pair_dir(host, check))
                ensure_dir(self.history.pair_dir(host, check))
            except OSError:
                break
            made += 1
        return made

    def record(
        self,
        config: Config,
        generation: int,
        check: CheckDef,
        host: Host,
        result: CheckResult,
        *,
        start: datetime,
        planned: datetime,
        keep_cadence: bool = False,
        worker: str | None = None,
    ) -> CheckState:
        """`keep_cadence` (an operator's extra run): the schedule counts on from the
        pair's last planned run, not from this one. `worker`: the remote worker that ran
        it (history's `"w"`, DESIGN §7b); None for a run on the scheduler."""
        fp = self.fingerprint(config, check, host)

        def advance(old: CheckState | None) -> CheckState:
            counted = planned
            if keep_cadence and old is not None and old.last_planned is not None:
                counted = old.last_planned
            due = None
            sched = config.schedule_for(check, host)
            if sched is not None:
                due = schedule.next_due(sched, counted, counted + MINUTE, self.tz)
                if check.retry is not None and result.rc != ReturnCode.OK:
                    retry_at = floor_minute(counted) + check.retry
                    due = retry_at if due is None else min(due, retry_at)
            return (old or CheckState()).advance(
                result,
                start=start,
                planned=counted,
                fingerprint=fp,
                generation=generation,
                next_due=due,
            )

        old, new = self.book.update(check.name, host.name, advance)
        if old is None or old.rc != new.rc:
            # A first result that is OK is routine (a whole site at start-up): debug only.
            level = logging.DEBUG if old is None and new.rc == ReturnCode.OK else logging.INFO
            log.log(
                level,
                "check %s@%s: %s -> %s: %s",
                check.name,
                host.name,
                code_name(old.rc) if old else "NEW",
                new.code,
                new.comment[:200],
            )
        record: dict[str, Any] = {
            "rc": result.rc,
            "code": result.code,
            "scalar": result.scalar,
            "comment": result.comment,
            "duration_ms": result.duration_ms,
            "fp": fp,
            "gen": generation,
        }
        if result.perfdata:
            record["perfdata"] = [p.to_dict() for p in result.perfdata]
        if result.long_output:
            record["long_output"] = result.long_output
        if worker is not None:
            record["w"] = worker
        self._write(lambda: self.state.write_check(host.name, check.name, new))
        self._write(lambda: self.history.append(host.name, check.name, "check", start, record))
        line = {
            "check": check.name,
            "host": host.name,
            "rc": result.rc,
            "planned": planned.timestamp(),
            "start": start.timestamp(),
            "duration_ms": result.duration_ms,
            "scalar": result.scalar,
            "perfdata": record.get("perfdata", []),
        }
        if worker is not None:
            line["w"] = worker
        self._write(lambda: self.results.write(line))
        return new

    def fingerprint(self, config: Config, check: CheckDef, host: Host) -> str:
        """Config.pair_fingerprint, computed once per pair and config generation."""
        cached_for, cache = self._fingerprints
        if config is not cached_for:
            cache = {}
            self._fingerprints = (config, cache)
        fp = cache.get((check.name, host.name))
        if fp is None:
            fp = cache[(check.name, host.name)] = config.pair_fingerprint(check, host)
        return fp

    def record_blocked(
        self, config: Config, generation: int, check: CheckDef, host: Host, why: str, now: datetime
    ) -> None:
        """A dependency kept this pair from running: history says so; state is kept.

        `why` is "ping@gw1 is PROBLEM" (Type I) or "dependency ... failed with ..." (Type II).
        """
        comment = why if why.startswith("dependency") else f"not run: dependency {why}"
        record = {
            "rc": int(ReturnCode.DEPEND),
            "code": ReturnCode.DEPEND.name,
            "scalar": None,
            "comment": comment,
            "duration_ms": 0,
            "fp": self.fingerprint(config, check, host),
            "gen": generation,
        }
        self._write(lambda: self.history.append(host.name, check.name, "check", now, record))

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
        except DiskWriteError as err:
            self.health.failed(err)
        else:
            self.health.succeeded()
