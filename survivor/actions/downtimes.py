"""Scheduled downtime by hand: add, remove and list `state/downtime/<id>.json`.

A downtime holds the alerts of its pairs from `start` to `end` (checks keep
running and recording); the alert scheduler reads these files every tick
(`survivor.downtime`). Adding or removing one writes one command record per
pair, all with the invocation's `op_id` and the downtime's id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from survivor.actions.operator import Operator, OpError, comment_or_default, record_command
from survivor.clock import utc_iso
from survivor.model.documents import Downtime
from survivor.model.names import is_safe_name


def add(
    op: Operator,
    selection: str,
    pairs: Sequence[tuple[str, str]],
    *,
    start: datetime,
    end: datetime,
    comment: str | None,
    now: datetime,
) -> Downtime:
    """Store a new downtime of `pairs` (what `selection` resolved to) and record it per pair."""
    if end <= start:
        raise OpError(
            f"downtime {selection}: the end {utc_iso(end)} is not after the start {utc_iso(start)}"
        )
    if end <= now:
        raise OpError(f"downtime {selection}: the end {utc_iso(end)} is not in the future")
    if not pairs:
        raise OpError(f"downtime {selection}: selects no pair")
    text = comment_or_default(comment)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    downtime = Downtime(
        id=f"{stamp}-{uuid.uuid4().hex[:6]}",
        user=op.user,
        comment=text,
        at=now,
        selection=selection,
        pairs=tuple(pairs),
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
    )
    with op.state.locks.hold(op.state.layout.downtimes):
        op.state.write_downtime(downtime)
    _record(op, downtime, "downtime", text, now)
    return downtime


def remove(op: Operator, downtime_id: str, *, comment: str | None, now: datetime) -> Downtime:
    """Delete a downtime (ended or not) and record that per pair; alerts resume at once."""
    if not is_safe_name(downtime_id):
        raise OpError(f"{downtime_id!r} is not a downtime id (see `survivor downtime list`)")
    text = comment_or_default(comment)
    with op.state.locks.hold(op.state.layout.downtimes):
        found = find(op, downtime_id)
        op.state.remove_downtime(downtime_id)
    _record(op, found, "downtime-remove", text, now)
    return found


def find(op: Operator, downtime_id: str) -> Downtime:
    downtimes, _ = op.state.read_downtimes()
    for downtime in downtimes:
        if downtime.id == downtime_id:
            return downtime
    raise OpError(f"no downtime with id {downtime_id!r} (see `survivor downtime list`)")


def _record(op: Operator, downtime: Downtime, command: str, text: str, now: datetime) -> None:
    for host, check in downtime.pairs:
        record_command(
            op,
            host,
            check,
            command,
            text,
            now,
            downtime=downtime.id,
            selection=downtime.selection,
            start=utc_iso(downtime.start),
            end=utc_iso(downtime.end),
        )
