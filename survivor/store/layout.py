"""Where every file lives under `state_dir` and `history_dir` (DESIGN §5), spelled once.

    state/daemon.json  queue.json  survivor.pid  running-config.json
    state/host/<host>/<check>/check.json  alert.json  ack.json  inhibit.json  escalate.json
    state/calllist/<name>.json            state/fixlocks/<name>.json
    state/requests/<id>.json
    state/overview.json  state/changed/<host>@<check>.<id>.json (the views' summary, below)
    history/host/<host>/<check>/<kind>-YYYY-MM.jsonl
    history/calllist/<name>-YYYY-MM.jsonl
    history/daemon/events-YYYY-MM.jsonl  history/survivor.pid (the lock of history_dir)

The stores write through these, and the views and commands read through the
same ones, so a change of layout is a change here. Every name that becomes a
path component is checked (`check_name`) on the way.
"""

from __future__ import annotations

from pathlib import Path

from survivor.model.names import check_name


def safe_path(base: Path, *names: str) -> Path:
    """`base/name/...`, each name checked to be one safe path component."""
    path = base
    for name in names:
        path = path / check_name(name)
    return path


class PairPaths:
    """`base/HOST/CHECK` for the hot path: each name is checked once, paths are not kept.

    (Keeping a Path per pair cost ~12 MB per 20,000 pairs; checking names again
    each time cost a regex match per write.)
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._prefix = str(base)
        self._checked: set[str] = set()

    def __call__(self, host: str, check: str) -> Path:
        return Path(self.text(host, check))

    def text(self, host: str, check: str) -> str:
        """The same path as a string, for the writes of every result (no pathlib parsing)."""
        checked = self._checked
        if host not in checked or check not in checked:
            check_name(host, "host")
            check_name(check, "check")
            if len(checked) < 200_000:
                checked.update((host, check))
        return f"{self._prefix}/{host}/{check}"


def pair_file_name(kind: str, month: str) -> str:
    """`check-2026-11.jsonl`: a pair's history of one kind and UTC month."""
    return f"{kind}-{month}.jsonl"


class StateLayout:
    """The paths under `state_dir`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemon = root / "daemon.json"
        self.queue = root / "queue.json"
        self.overview = root / "overview.json"  # the daemon's summary of every pair
        self.changed = root / "changed"  # pairs whose ack/inhibit changed since
        self.workers = root / "workers.json"  # remote workers seen (DESIGN §7b)
        self.running_config = root / "running-config.json"
        self.pidfile = root / "survivor.pid"
        self.requests = root / "requests"
        self.hosts = root / "host"
        self.calllists = root / "calllist"  # also the one lock of all call lists
        self.fixlocks = root / "fixlocks"
        self.downtimes = root / "downtime"  # also the one lock of all downtimes
        self.pair_dir = PairPaths(self.hosts)

    def pair_doc(self, host: str, check: str, name: str) -> Path:
        """check.json, alert.json, ack.json, inhibit.json or escalate.json of one pair."""
        return self.pair_dir(host, check) / f"{name}.json"

    def changed_mark(self, host: str, check: str, mark_id: str) -> Path:
        """A mark that the ack or inhibit document of host/check changed (state.py)."""
        return safe_path(self.changed, host).with_name(
            f"{host}@{check_name(check)}.{check_name(mark_id)}.json"
        )

    def calllist(self, name: str) -> Path:
        return safe_path(self.calllists, name).with_suffix(".json")

    def fixlock(self, name: str) -> Path:
        """`name` is a lock name such as CHECK@HOST, _@HOST or CHECK@_ (alerts.fixes)."""
        return self.fixlocks / f"{name}.json"

    def request(self, request_id: str) -> Path:
        return safe_path(self.requests, request_id).with_suffix(".json")

    def downtime(self, downtime_id: str) -> Path:
        return safe_path(self.downtimes, downtime_id).with_suffix(".json")


class HistoryLayout:
    """The paths under `history_dir`: one file per stream and UTC month."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hosts = root / "host"
        self.calllists = root / "calllist"
        self.daemon = root / "daemon"
        self.pair_dir = PairPaths(self.hosts)

    def pair_file(self, host: str, check: str, kind: str, month: str) -> Path:
        return self.pair_dir(host, check) / pair_file_name(kind, month)

    def calllist_file(self, name: str, month: str) -> Path:
        return safe_path(self.calllists, name).with_name(f"{name}-{month}.jsonl")

    def events_file(self, month: str) -> Path:
        return self.daemon / f"events-{month}.jsonl"
