"""Operator requests the daemon applies within seconds: reschedule and cancel (DESIGN §5).

The CLI drops a request file into `state/requests/`; the main loop takes
them every half second, oldest first, and applies each on its own: one bad
request is logged and the others go on.
"""

from __future__ import annotations

import logging

from survivor.daemon.wiring import Parts
from survivor.model.documents import Request
from survivor.work.queue import WorkContext

log = logging.getLogger(__name__)


def apply_requests(parts: Parts) -> None:
    for request in parts.stores.state.take_requests(parts.clock.now()):
        try:
            apply_request(parts, request)
        except Exception:
            log.exception("request %s (%s) failed", request.id, request.action)


def apply_request(parts: Parts, request: Request) -> None:
    config, _ = parts.running.get()
    if request.action == "reschedule" and request.check and request.host:
        check = config.checks.get(request.check)
        if check is None or request.host not in check.host_set:
            log.warning(
                "request %s: %s@%s is not configured", request.id, request.check, request.host
            )
            return
        if parts.run_now(check, request.host):
            how = "runs now"
        else:  # a run and its follow-up already wait: the flag makes the next tick run it
            state = parts.book.reschedule(request.check, request.host)
            parts.stores.state.write_check(request.host, request.check, state)
            how = "runs at the next tick: a run is already waiting"
        log.info(
            "check %s@%s: rescheduled by %s (%s)", request.check, request.host, request.user, how
        )
    elif request.action == "cancel" and request.target:
        found = parts.check_pool.cancel(request.target) or parts.alert_pool.cancel(request.target)
        if isinstance(found, WorkContext) and found.pid:
            found.cancelled.set()
            parts.runner.kill_group(found.pid)
        log.info(
            "queue: %s cancelled by %s (%s)",
            request.target,
            request.user,
            "not found" if found is None else "ok",
        )
    else:
        log.warning("request %s: unknown action %r", request.id, request.action)
