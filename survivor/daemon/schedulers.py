"""The two scheduler threads: a check tick and an alert tick once per wall-clock minute.

Each thread waits for the next minute (the alert thread `alert_shift` later,
so that alerts look at the results of the minute before), calls its tick and
hands the work to its pool. A tick that fails is logged and tried again the
next minute; after a stall the missed minutes are skipped, not replayed. The
wait for the next minute is never longer than a minute, and a step of the wall
clock (noticed by the main loop) wakes the check thread to tick at once when
the step changed the minute.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from survivor.clock import MINUTE, floor_minute, from_epoch, read_both, utc_iso
from survivor.daemon.heartbeat import DaemonStatus
from survivor.daemon.wiring import Parts
from survivor.model.config import Config
from survivor.model.work import WorkItem

log = logging.getLogger(__name__)

START_PREPARE_S = 60.0  # the longest the first checks wait for never-run pairs' directories

Reading = tuple[float, float]  # (wall, monotonic), read together
Tick = Callable[[datetime, bool, Reading], None]  # tick(now, first, the reading `now` is from)


class MinuteLoops:
    def __init__(self, parts: Parts, status: DaemonStatus, stop: threading.Event) -> None:
        self.parts = parts
        self.status = status
        self.stop = stop
        self._prepared_for: Config | None = None  # the config whose new pairs have directories
        self._stepped = threading.Event()  # the wall clock was stepped (or the loops stop)

    # ---------------------------------------------------------------- the threads' bodies

    def check_loop(self) -> None:
        # Before the first tick, for at most START_PREPARE_S; what is left, after it.
        config, _ = self.parts.running.get()
        now = self.parts.clock.now()
        made, fresh = self.prepare_new_pairs(config, now, START_PREPARE_S, "start")
        if made == fresh:
            self._prepared_for = config
        self._minute_loop(
            "check",
            timedelta(0),
            lambda now, first, reading: self.check_tick(now, first, planned_at=reading),
            self._stepped,
        )

    def alert_loop(self) -> None:
        # Alerts look at the results of the minute before: alert_shift after the check tick,
        # and the first run only after one shift (Survivor delays the first alert run).
        clock = self.parts.clock
        shift = self.parts.running.config.instance.alert_shift
        first_at = clock.monotonic() + shift.total_seconds()
        if shift and clock.sleep_until(first_at, self.stop):
            return
        self._minute_loop(
            "alert",
            shift,
            lambda now, first, reading: self.alert_tick(now, planned_at=reading),
            self.stop,
        )

    def clock_stepped(self) -> None:
        """The wall clock was stepped (the main loop noticed; the pools move their queued work
        themselves): the check loop wakes and plans its minute again from the new time."""
        self._stepped.set()

    def halt(self) -> None:
        """Stop both loops, waking them at once."""
        self.stop.set()
        self._stepped.set()

    def _minute_loop(self, name: str, shift: timedelta, tick: Tick, wake: threading.Event) -> None:
        """Call `tick(now, first, reading)` once per wall-clock minute (+ shift); skip missed
        minutes.

        The wait for the next minute is reckoned from one reading of the wall clock, so it
        is never longer than a minute, whatever the clock does meanwhile. When `wake` is set
        without `stop`, the wall clock was stepped: if that moved it to another minute, the
        tick comes at once and as `first`, as after a start, so that the minute's slots
        already past are not a burst (a step forward) and none waits for the old time (a
        step back); within the same minute the loop only waits for the next one again.
        """
        clock = self.parts.clock
        first = True
        stepped = False
        last_minute: datetime | None = None
        while not self.stop.is_set():
            reading = read_both(clock)
            now = from_epoch(reading[0])
            minute = floor_minute(now - shift)
            if stepped:
                stepped = False
                first = first or minute != last_minute
            if not first and minute == last_minute:
                nxt = minute + timedelta(minutes=1) + shift
                deadline = reading[1] + (nxt - now).total_seconds()
                if clock.sleep_until(deadline, wake):
                    if self.stop.is_set():
                        return
                    wake.clear()
                    stepped = True
                continue
            try:
                tick(now, first, reading)
            except Exception:
                log.exception(
                    "%s scheduler: tick at %s failed; trying again next minute",
                    name,
                    utc_iso(minute),
                )
            self.status.last_tick[name] = utc_iso(now)
            first = False
            last_minute = minute

    # ---------------------------------------------------------------- ticks

    def check_tick(self, now: datetime, first: bool, planned_at: Reading | None = None) -> None:
        """The check tick at `now`; `planned_at`, the clock reading `now` comes from, lets the
        pool move the items if the wall clock was stepped while the tick planned them."""
        parts = self.parts
        config, generation = parts.running.get()
        report = parts.scheduler.tick(config, now, first=first)
        refused = parts.check_pool.submit(report.items, planned_at=planned_at)
        if first and refused:  # nothing is queued at a start: this is a step of the clock
            log.debug(
                "check tick %s: %d pairs keep their re-planned run", utc_iso(now), len(refused)
            )
        else:
            log_refused("check", refused)
        for check, host, why in report.blocked:
            parts.recorder.record_blocked(config, generation, check, host, why, now)
        if config is not self._prepared_for:  # started with pairs left over, or reloaded
            self._prepared_for = config
            left = (report.minute + MINUTE - now).total_seconds()
            self.prepare_new_pairs(config, now, left, f"check tick {utc_iso(report.minute)}")
        log.debug(
            "check tick %s: %d items, %d pairs due, %d blocked",
            utc_iso(now),
            len(report.items),
            report.due_pairs,
            len(report.blocked),
        )

    def alert_tick(self, now: datetime, planned_at: Reading | None = None) -> None:
        parts = self.parts
        config, _ = parts.running.get()
        items = parts.alert_scheduler.tick(config, now)
        log_refused("alert", parts.alert_pool.submit(items, planned_at=planned_at))

    def prepare_new_pairs(
        self, config: Config, now: datetime, seconds: float, when: str
    ) -> tuple[int, int]:
        """Make the directories of the pairs that have never run, in slot order from `now`,
        for at most `seconds` or until the daemon stops; returns (made, pairs never run).

        Made while checks run, they take about half the check loop's throughput for
        as long as they last (the GIL, and a file system busy with new directories):
        on a fresh state directory with 50,000 services the first checks fell 10-30 s
        behind. So at start they are made before the first tick (about 20 s at
        50,000 on our test VM; the first checks then fell 6-9 s behind at most, and
        caught up sooner; docs/benchmarks.md), and after a reload that adds pairs
        right after its first tick, until that minute ends, while the checks go on.
        A restart has nothing to make.
        """
        clock = self.parts.clock
        fresh = self.parts.scheduler.never_run(config, now)
        if not fresh:
            return 0, 0
        began = clock.monotonic()
        until = began + seconds

        def keep_going() -> bool:
            return not self.stop.is_set() and clock.monotonic() < until

        made = self.parts.recorder.prepare(fresh, keep_going)
        log.info(
            "%s: directories ready for %d of %d pairs that have never run, in %.1f s",
            when,
            made,
            len(fresh),
            clock.monotonic() - began,
        )
        return made, len(fresh)


def log_refused(kind: str, refused: list[WorkItem]) -> None:
    """One line per tick, not one per item: a backlog of 20,000 would be a log storm."""
    if refused:
        names = ", ".join(item.key.split(":", 1)[1] for item in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        log.warning(
            "%s: %d still queued or running, not queued again: %s%s",
            kind,
            len(refused),
            names,
            more,
        )
