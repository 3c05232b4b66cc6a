"""What a form on the web page does: the CLI's own actions, with the logged-in user.

`survivor web` hands `web_act(...)` to the page (views/web/auth `Act`). It is
here, in the command line's layer, because the views and the actions are
side by side in the layer map (layer 3) and may not import each other; the
command line is above both and wires them, as it wires the CLI commands.
Each call resolves the selection against the configuration (`selection`,
as `survivor ack SELECTION` does), makes one `Operator` with the web user's
name and a new operation id, and runs `actions.pairs` / `actions.downtimes`
on each pair: the same checks, the same files, the same command records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from survivor.actions import downtimes, pairs
from survivor.actions.operator import Operator, OpError, operation_id
from survivor.clock import Clock, local_zone
from survivor.errors import SurvivorError
from survivor.model.config import Config
from survivor.selection import describe, parse_selection, resolve
from survivor.timespec import _shown, parse_until, parse_when
from survivor.views.web.auth import Act, ActRequest, ActResult

if TYPE_CHECKING:
    from collections.abc import Callable

# The actions on one pair that take only a comment (inhibit and downtime take times).
SIMPLE = ("ack", "unack", "uninhibit", "escalate", "reschedule")


def web_act(config: Config, state: Any, history: Any, clock: Clock) -> Act:
    """The page's `act`: runs one form's action and says what became of each pair."""
    tz = local_zone(config.instance.timezone)

    def act(req: ActRequest) -> ActResult:
        selectors = parse_selection(req.selection, req.groups)
        chosen = resolve(config, selectors)
        now = clock.now()
        op = Operator(config, state, history, req.user, operation=operation_id(now))
        comment = req.comment or None
        if req.action == "downtime":
            if not req.until:
                raise OpError("a downtime needs its end (until): +2h, 18:00, 2026-12-24T06:00")
            start = parse_when(req.start or "now", now=now, tz=tz)
            end = parse_until(req.until, now=now, tz=tz)
            what = describe(selectors)
            done = downtimes.add(op, what, chosen, start=start, end=end, comment=comment, now=now)
            line = (
                f"downtime {done.id}: {len(done.pairs)} pair(s) of {what} from "
                f"{_shown(done.start, tz)} until {_shown(done.end, tz)}: {done.comment}"
            )
            return ActResult((line,), (), op.operation)
        if req.start:
            raise OpError(f"{req.action} takes no start (only a downtime does)")
        run: Callable[[str, str], str]
        if req.action == "inhibit":
            until = parse_until(req.until, now=now, tz=tz) if req.until else None

            def run(h: str, c: str) -> str:
                return pairs.inhibit(op, h, c, comment=comment, until=until, now=now)

        elif req.action in SIMPLE:
            if req.until:
                raise OpError(f"{req.action} takes no until (only inhibit and downtime do)")
            action = getattr(pairs, req.action)

            def run(h: str, c: str) -> str:
                message: str = action(op, h, c, comment=comment, now=now)
                return message

        else:
            raise OpError(f"unknown action {req.action!r}")
        return _each(chosen, run, op.operation)

    return act


def _each(
    chosen: list[tuple[str, str]], run: Callable[[str, str], str], operation: str | None
) -> ActResult:
    done: list[str] = []
    refused: list[str] = []
    for host, check in chosen:
        try:
            done.append(run(host, check))
        except SurvivorError as err:
            refused.append(str(err))
    return ActResult(tuple(done), tuple(refused), operation)
