"""Prometheus text exposition of the daemon's state, for node_exporter's textfile collector.

The daemon calls `export()` once a minute with what it has in memory (the
daemon.json document it would write, the pool's queue snapshot and the check
book); `collect()` builds the same text from the state files, for `survivor
web`'s /metrics and for tests. Both go through `render_metrics()`.

Rules of the format kept here: every family has HELP and TYPE, samples carry
no timestamps (the collector stamps them), label values escape backslash,
double quote and newline, and every name starts with `survivor_`.

Per-pair series (`survivor_check_status`) are capped at `MAX_PAIR_SERIES`
(10,000): a big installation must not blow up Prometheus' memory through one
textfile. The most urgent pairs are kept (problems first), and
`survivor_check_status_dropped` says how many were left out. Everything else
is aggregated by check name or code, so it stays small at any scale.

The duration and start-lag families describe the *latest* run of each host
of a check (quantiles over hosts, labelled `percentile`: 50, 90, 99), not a
cumulative history, so they are gauges: a summary's `_sum` and `_count` would
invite `rate()` over snapshots. Prometheus reserves the `quantile` label for
summaries (`promtool check metrics` refuses it on a gauge).
`survivor_check_last_run_timestamp_seconds` says per pair when it last ran
(under the same cap as `survivor_check_status`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from survivor.clock import parse_time
from survivor.model.codes import ReturnCode, code_name, urgency
from survivor.model.documents import CheckState
from survivor.store.fsio import FileWriter
from survivor.views.snapshot import read_snapshot

PREFIX = "survivor_"
MAX_PAIR_SERIES = 10_000
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class CheckSample:
    """What metrics need of one check@host."""

    host: str
    check: str
    rc: int
    duration_s: float | None  # of the latest run
    lag_s: float | None  # latest run's actual start minus its planned start
    last_run: float | None = None  # latest run's start, epoch seconds

    @classmethod
    def from_state(cls, host: str, check: str, state: CheckState) -> CheckSample:
        start = state.last_start
        lag = None
        if start is not None and state.last_planned is not None:
            lag = max(0.0, (start - state.last_planned).total_seconds())
        duration = state.duration_ms / 1000.0 if start is not None else None
        return cls(host, check, state.rc, duration, lag, start.timestamp() if start else None)


# --------------------------------------------------------------------------- the format


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Families in the order they are declared, each with HELP, TYPE and samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._declared: set[str] = set()

    def family(self, name: str, kind: str, help_text: str) -> None:
        full = PREFIX + name
        if full in self._declared:
            raise ValueError(f"metric family {full} declared twice")
        self._declared.add(full)
        self._lines.append(f"# HELP {full} {escape_help(help_text)}")
        self._lines.append(f"# TYPE {full} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        suffix = f"{{{label_text}}}" if labels else ""
        self._lines.append(f"{PREFIX}{name}{suffix} {format_value(value)}")

    def gauge(self, name: str, help_text: str, value: float, **labels: str) -> None:
        self.family(name, "gauge", help_text)
        self.sample(name, value, **labels)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A sub-object of daemon.json, or an empty one when it is missing or not an object."""
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _number(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[min(index, len(ordered) - 1)]


# --------------------------------------------------------------------------- rendering


def render_metrics(
    daemon: Mapping[str, Any] | None,
    queue_items: Sequence[Mapping[str, Any]],
    checks: Iterable[CheckSample],
    *,
    running: bool = True,
    max_pair_series: int = MAX_PAIR_SERIES,
) -> str:
    """The whole exposition. `daemon` is a daemon.json document (None if there is none)."""
    doc: Mapping[str, Any] = daemon or {}
    out = Exposition()
    samples = sorted(checks, key=lambda s: (urgency(s.rc), s.check, s.host))
    _daemon_families(out, doc, running)
    _check_families(out, samples, max_pair_series)
    _queue_families(out, doc, queue_items)
    return out.text()


def _daemon_families(out: Exposition, doc: Mapping[str, Any], running: bool) -> None:
    out.family("info", "gauge", "Constant 1, labelled with the version and instance name.")
    out.sample(
        "info", 1, version=str(doc.get("survivor", "")), instance=str(doc.get("instance", ""))
    )
    out.gauge("daemon_up", "1 while the daemon holds its pidfile.", 1 if running else 0)
    heartbeat = parse_time(doc.get("updated"))
    out.gauge(
        "daemon_heartbeat_timestamp_seconds",
        "When the daemon last wrote daemon.json (epoch seconds; 0 if never).",
        heartbeat.timestamp() if heartbeat else 0,
    )
    started = parse_time(doc.get("started"))
    out.gauge(
        "daemon_start_timestamp_seconds",
        "When the daemon started (epoch seconds; 0 if unknown).",
        started.timestamp() if started else 0,
    )
    config = _section(doc, "config")
    out.gauge(
        "config_generation",
        "Generation of the running configuration (1 at start, +1 per successful reload).",
        _number(config.get("generation")),
    )
    out.gauge(
        "config_stale",
        "1 when a config file changed on disk after it was loaded (SIGHUP applies it).",
        1 if config.get("stale") else 0,
    )
    last = doc.get("last_reload") if isinstance(doc.get("last_reload"), Mapping) else None
    out.gauge(
        "config_last_reload_success",
        "1 if the last reload succeeded or none was tried, 0 if it failed.",
        0 if last is not None and last.get("ok") is False else 1,
    )
    reload_at = parse_time(last.get("at")) if last is not None else None
    out.gauge(
        "config_last_reload_timestamp_seconds",
        "When the last reload was tried (epoch seconds; 0 if never).",
        reload_at.timestamp() if reload_at else 0,
    )
    health = _section(doc, "health")
    out.gauge(
        "disk_failing",
        "1 while state or history writes fail (disk full or read-only).",
        0 if health.get("disk") in (None, "ok") else 1,
    )
    out.family("disk_write_errors_total", "counter", "State and history writes that failed.")
    out.sample("disk_write_errors_total", _number(health.get("disk_errors")))
    alerts = _section(doc, "alerts")
    for key, help_text in (
        ("sent", "Alerts delivered to a transmit module successfully."),
        ("throttled", "Alerts folded into a digest by alert_throttle."),
        ("failed", "Alerts whose format or transmit module failed."),
        ("held", "Alert decisions about failing pairs held by a scheduled downtime."),
    ):
        out.family(f"alerts_{key}_total", "counter", help_text)
        out.sample(f"alerts_{key}_total", _number(alerts.get(key)))
    broker = doc.get("broker")
    if isinstance(broker, Mapping):  # remote workers (DESIGN §7b)
        out.gauge(
            "broker_connected",
            "1 while the scheduler is connected to the NATS broker of its remote workers.",
            1 if broker.get("connected") is True else 0,
        )
        workers = _section(doc, "workers")
        out.gauge(
            "workers_alive",
            "Approved remote workers with a heartbeat within the last 90 s.",
            _number(workers.get("alive")),
        )
        out.gauge(
            "worker_groups_breaker_open",
            "Worker groups skipped by their breaker after timeouts in a row.",
            _number(workers.get("breakers_open")),
        )
    out.gauge(
        "pairs_in_downtime",
        "check@host pairs in scheduled downtime at the last alert tick (alerts held).",
        _number(alerts.get("in_downtime")),
    )


def _check_families(out: Exposition, samples: Sequence[CheckSample], cap: int) -> None:
    out.family("checks", "gauge", "check@host pairs by current return code.")
    counts: dict[int, int] = {}
    for s in samples:
        counts[s.rc] = counts.get(s.rc, 0) + 1
    for rc in (*ReturnCode, *sorted(c for c in counts if c not in ReturnCode._value2member_map_)):
        out.sample("checks", counts.get(int(rc), 0), code=code_name(int(rc)))

    out.family(
        "check_status",
        "gauge",
        "Current survivor return code of one check@host (0 OK, 1 PROBLEM, 2 WARNING, "
        "3 NOTICE, 4 MISCONFIG, 5 TIMEDOUT, 6 DEPEND, 7 NOTYET; not Nagios' 1 WARNING); "
        f"at most {cap} series, most urgent first.",
    )
    for s in samples[:cap]:
        out.sample("check_status", s.rc, check=s.check, host=s.host)
    out.family(
        "check_last_run_timestamp_seconds",
        "gauge",
        "When the latest run of one check@host started (epoch seconds); pairs that never "
        "ran have no series; the same pairs as survivor_check_status.",
    )
    for s in samples[:cap]:
        if s.last_run is not None:
            out.sample("check_last_run_timestamp_seconds", s.last_run, check=s.check, host=s.host)
    out.gauge(
        "check_status_dropped",
        "check@host pairs left out of survivor_check_status by the series cap.",
        max(0, len(samples) - cap),
    )

    for name, attr, help_text in (
        (
            "check_duration_seconds",
            "duration_s",
            "How long the latest run of each host of a check took (quantiles over hosts; "
            "a snapshot, not cumulative).",
        ),
        (
            "check_start_lag_seconds",
            "lag_s",
            "How late the latest run of each host of a check started after its planned "
            "time (quantiles over hosts; a snapshot, not cumulative).",
        ),
    ):
        by_check: dict[str, list[float]] = {}
        for s in samples:
            value = getattr(s, attr)
            if value is not None:
                by_check.setdefault(s.check, []).append(float(value))
        out.family(name, "gauge", help_text)
        for check in sorted(by_check):
            values = sorted(by_check[check])
            for q in QUANTILES:
                percentile = format_value(q * 100)
                out.sample(name, _quantile(values, q), check=check, percentile=percentile)


def _queue_families(
    out: Exposition, doc: Mapping[str, Any], queue_items: Sequence[Mapping[str, Any]]
) -> None:
    depth: dict[tuple[str, str], int] = {}
    for item in queue_items:
        kind_state = (str(item.get("kind", "?")), str(item.get("state", "queued")))
        depth[kind_state] = depth.get(kind_state, 0) + 1
    out.family("queue_items", "gauge", "Work items queued or running, by kind and state.")
    for kind in ("check", "fix", "alert"):
        for state in ("queued", "running"):
            depth.setdefault((kind, state), 0)
    for (kind, state), n in sorted(depth.items()):
        out.sample("queue_items", n, kind=kind, state=state)

    pools = _section(doc, "pools")
    rows = sorted((str(k), v) for k, v in pools.items() if isinstance(v, Mapping))
    for key, family_type, help_text in (
        ("size", "gauge", "Items a pool may run at once."),
        ("busy", "gauge", "Items a pool is running now."),
        ("completed", "counter", "Items a pool finished since the daemon started."),
        ("failed", "counter", "Items whose handler raised, since the daemon started."),
        ("waiting", "gauge", "Items due but held back because the pool runs its maximum."),
        ("waiting_s", "gauge", "Seconds the oldest held-back item has waited past its time."),
    ):
        name = f"pool_{key}_total" if family_type == "counter" else f"pool_{key}"
        if key == "waiting_s":
            name = "pool_waiting_seconds"
        out.family(name, family_type, help_text)
        for pool, stats in rows:
            out.sample(name, _number(stats.get(key)), pool=pool)


# --------------------------------------------------------------------------- entry points


def export(
    path: Path,
    writer: FileWriter,
    daemon_doc: Mapping[str, Any],
    queue_items: Sequence[Mapping[str, Any]],
    states: Iterable[tuple[tuple[str, str], CheckState]],
    *,
    running: bool = True,
) -> None:
    """The daemon's once-a-minute call: render from memory and replace the .prom file.

    At shutdown the daemon calls it once more with `running=False`, so the
    textfile node_exporter keeps serving says `survivor_daemon_up 0`.

    `states` is `CheckBook.items()`: ((check, host), CheckState) pairs.
    Raises DiskWriteError like every other write.
    """
    samples = [CheckSample.from_state(host, check, st) for (check, host), st in states]
    text = render_metrics(daemon_doc, queue_items, samples, running=running)
    write_textfile(path, text, writer)


def collect(state_dir: Path, now: datetime) -> str:
    """The same exposition built from the state files (for `survivor web` and tests)."""
    snap = read_snapshot(state_dir, now)
    samples = [CheckSample.from_state(r.host, r.check, r.state) for r in snap.rows if r.present]
    items = snap.queue_doc.get("items") if snap.queue_doc else None
    queue = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    return render_metrics(snap.daemon_doc, queue, samples, running=snap.daemon.running)


def write_textfile(path: Path, text: str, writer: FileWriter) -> None:
    """Atomically replace `path`: node_exporter never reads a half-written file.

    fsio's temp file is `.NAME-xxxx.tmp` in the same directory, which the
    textfile collector ignores (it reads only `*.prom`).
    """
    writer.replace(path, text.encode())
