"""The pure parts of dispatch (DESIGN §7b): where a run goes, breakers, what a reply may say.

The scheduler's NATS thread (survivor.work.remote) and the check executor
(survivor.checks.placed) ask these functions; nothing here reads the clock,
starts a thread or touches the network, so each rule is tested with plain
values and a fake clock.

- `batches`: the hosts of one run grouped by their failover lists, in order.
- `chain`: a failover list cut at its first `local` (the scheduler always
  answers, so nothing after it is ever tried), and whether local is allowed.
- `Breakers`: per worker group, timeouts in a row; `after` of them open the
  group for `for_s` seconds, during which it is skipped (a hung group costs a
  check's timeout + grace once, not at every run). Any answer closes it.
- `Tried`: what each group said, for logs and the TIMEDOUT comment.
- `clamp_start`: history's `t` for a remote run is the worker's start time,
  but never outside [sent, replied] (a worker's clock may be off).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from survivor.model.config import LOCAL_TARGET, CheckDef, Config, Host

BUSY_RETRIES = 2  # `busy`: at most this many more tries on the same group, then the next


class Said(StrEnum):
    """What a worker group did with one request."""

    NO_RESPONDERS = "no responders"  # no live member: NATS says so at once
    BUSY = "busy"  # every member asked was at its limit
    TIMEOUT = "no answer"  # nothing valid within the check's timeout + dispatch_grace
    REFUSED = "refused"  # a worker answered `error`
    BREAKER = "skipped: breaker open"
    BROKER = "broker unreachable"


@dataclass(frozen=True, slots=True)
class Tried:
    group: str
    said: Said
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.group} ({self.said.value}{': ' + self.detail if self.detail else ''})"


def batches(
    config: Config, check: CheckDef, hosts: Sequence[Host]
) -> list[tuple[tuple[str, ...], list[Host]]]:
    """The hosts of one run grouped by failover list, each list once, in order of first host."""
    grouped: dict[tuple[str, ...], list[Host]] = {}
    for host in hosts:
        grouped.setdefault(config.targets_for(check, host), []).append(host)
    return list(grouped.items())


def chain(targets: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The worker groups to try in order, and whether the scheduler runs it after them."""
    groups: list[str] = []
    for target in targets:
        if target == LOCAL_TARGET:
            return tuple(groups), True
        groups.append(target)
    return tuple(groups), False


def not_served(tried: Iterable[Tried]) -> str:
    """The comment of a TIMEDOUT result with `local: false`: which groups were tried, and how."""
    said = ", ".join(str(t) for t in tried)
    return f"not run: no worker group served it and local is off: {said or 'nothing tried'}"


@dataclass(slots=True)
class _Breaker:
    timeouts: int = 0  # in a row
    open_until: float | None = None  # monotonic


@dataclass(slots=True)
class Breakers:
    """One breaker per worker group, on monotonic seconds passed in by the caller."""

    after: int = 3
    for_s: float = 60.0
    _groups: dict[str, _Breaker] = field(default_factory=dict)

    def is_open(self, group: str, now: float) -> bool:
        breaker = self._groups.get(group)
        if breaker is None or breaker.open_until is None:
            return False
        if now < breaker.open_until:
            return True
        # Half open: the next request goes through; one more timeout opens it again.
        breaker.open_until = None
        breaker.timeouts = self.after - 1
        return False

    def timed_out(self, group: str, now: float) -> bool:
        """Count a timeout; True when this one opened the breaker."""
        breaker = self._groups.setdefault(group, _Breaker())
        breaker.timeouts += 1
        if breaker.timeouts >= self.after and breaker.open_until is None:
            breaker.open_until = now + self.for_s
            return True
        return False

    def answered(self, group: str) -> None:
        """A member answered (ok, busy or error): the group is alive."""
        self._groups.pop(group, None)

    def to_dict(self, now: float) -> dict[str, dict[str, float | int | bool]]:
        """Each group with timeouts: how many in a row, and seconds left open."""
        return {
            name: {
                "timeouts": b.timeouts,
                "open": b.open_until is not None and now < b.open_until,
                "open_for_s": round(max(0.0, (b.open_until or now) - now), 1),
            }
            for name, b in sorted(self._groups.items())
        }


def clamp_start(worker_start: datetime | None, sent: datetime, replied: datetime) -> datetime:
    """The worker's start time, clamped into [sent, replied]."""
    if worker_start is None:
        return sent
    return min(max(worker_start, sent), replied)
