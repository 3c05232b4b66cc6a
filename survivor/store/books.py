"""The daemon's in-memory books of pair state, shared by the check and alert sides.

`CheckBook` holds every pair's current CheckState (check.json is its durable
copy, written by the check recorder); `AlertBook` every pair's AlertState and
writes alert.json itself, under the pair lock. Both are thread-safe, so
`checks` and `alerts` share them without importing each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from survivor.errors import StateError
from survivor.model.documents import AlertState, CheckState
from survivor.store.fsio import DiskWriteError
from survivor.store.health import DiskHealth
from survivor.store.state import StateStore

log = logging.getLogger(__name__)


class CheckBook:
    """The daemon's in-memory check states; check.json files are their durable copies."""

    def __init__(self, states: Mapping[tuple[str, str], CheckState] | None = None) -> None:
        self._states: dict[tuple[str, str], CheckState] = dict(states or {})
        self._lock = threading.Lock()

    def get(self, check: str, host: str) -> CheckState | None:
        return self._states.get((check, host))

    def put(self, check: str, host: str, state: CheckState) -> None:
        with self._lock:
            self._states[(check, host)] = state

    def update(
        self, check: str, host: str, change: Callable[[CheckState | None], CheckState]
    ) -> tuple[CheckState | None, CheckState]:
        with self._lock:
            old = self._states.get((check, host))
            new = self._states[(check, host)] = change(old)
            return old, new

    def reschedule(self, check: str, host: str) -> CheckState:
        return self.update(check, host, lambda old: (old or CheckState()).with_reschedule())[1]

    def prune(self, keep: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [k for k in self._states if k not in keep]:
                del self._states[key]

    def items(self) -> list[tuple[tuple[str, str], CheckState]]:
        with self._lock:
            return list(self._states.items())


class AlertBook:
    """In-memory alert states; alert.json is the durable copy, written under the pair lock."""

    def __init__(
        self,
        state: StateStore,
        health: DiskHealth,
        states: Mapping[tuple[str, str], AlertState] | None = None,
    ) -> None:
        self.state = state
        self.health = health
        self._states: dict[tuple[str, str], AlertState] = dict(states or {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, state: StateStore, health: DiskHealth, now: datetime) -> AlertBook:
        states: dict[tuple[str, str], AlertState] = {}
        for (check, host), doc in state.load_pair_docs("alert", now).items():
            try:
                states[(check, host)] = AlertState.from_dict(doc)
            except StateError as err:
                state.move_aside(state.pair_dir(host, check) / "alert.json", str(err), now)
        return cls(state, health, states)

    def get(self, check: str, host: str) -> AlertState | None:
        return self._states.get((check, host))

    def store(self, check: str, host: str, new: AlertState | None) -> None:
        with self._lock:
            old = self._states.get((check, host))
            if new is None:
                self._states.pop((check, host), None)
            else:
                self._states[(check, host)] = new
        if old == new:
            return
        try:
            with self.state.locks.hold(self.state.pair_dir(host, check)):
                if new is None:
                    self.state.remove_pair_doc(host, check, "alert")
                else:
                    self.state.write_pair_doc(host, check, "alert", new.to_dict())
        except DiskWriteError as err:
            self.health.failed(err)

    def pairs(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._states)

    def prune(self, keep: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [k for k in self._states if k not in keep]:
                del self._states[key]
