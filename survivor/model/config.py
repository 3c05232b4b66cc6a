"""The configuration tree: frozen dataclasses built by `config/`, and the check fingerprint.

Nothing here reads the clock, starts a thread or writes a file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum, StrEnum
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any


class FsyncPolicy(StrEnum):
    ALWAYS = "always"  # fsync every state file and history line before going on
    BATCH = "batch"  # a flusher fsyncs what was written, at least once a second
    NEVER = "never"  # leave it to the kernel


class CheckKind(StrEnum):
    MODULE = "module"  # Survivor protocol: one run for all due hosts
    PLUGIN = "plugin"  # Nagios plugin protocol: one run per host
    COMPOSITE = "composite"  # required/optional components run together


class LockScope(StrEnum):
    """What a fix lock covers (Survivor: default service@host)."""

    CHECK_AT_HOST = "check@host"
    HOST = "host"
    CHECK = "check"


# --------------------------------------------------------------------------- config: where


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a definition came from, for error messages and reload diffs."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NO_MARK = Mark("<builtin>", 0)


# --------------------------------------------------------------------------- config: schedules


@dataclass(frozen=True, slots=True)
class WeekTime:
    """A time of day, optionally on one weekday (0 = Monday ... 6 = Sunday)."""

    minute: int  # minutes after local midnight, 0..1439
    day: int | None = None

    def __str__(self) -> str:
        hhmm = f"{self.minute // 60:02d}:{self.minute % 60:02d}"
        if self.day is None:
            return hhmm
        return f"{WEEKDAY_NAMES[self.day]} {hhmm}"


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    """One line of a schedule.

    In effect when `days` (if set) contains today's weekday and `start`/`end`
    (if set) enclose now; `end` is inclusive to second 59 of its minute, and a
    window whose start is after its end wraps (overnight, over the weekend).
    Exactly one of `every`, `at`, `never` says what happens while in effect.
    """

    every: timedelta | None = None
    at: tuple[WeekTime, ...] = ()
    never: bool = False
    days: frozenset[int] | None = None
    start: WeekTime | None = None
    end: WeekTime | None = None
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    lines: tuple[ScheduleLine, ...]
    mark: Mark = NO_MARK


# --------------------------------------------------------------------------- config: hosts


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    address: str  # defaults to the name
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)
    hostclass: str = ""
    mark: Mark = NO_MARK

    def to_dict(self) -> dict[str, Any]:
        """The host as modules see it on stdin."""
        return {"name": self.name, "address": self.address, "vars": dict(self.vars)}


@dataclass(frozen=True, slots=True)
class HostClass:
    name: str
    hosts: tuple[str, ...]
    schedule: str | None = None
    alertplan: str | None = None
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of hosts; lists, classes and aliases are resolved at load."""

    name: str
    hosts: tuple[str, ...]
    mark: Mark = NO_MARK


# --------------------------------------------------------------------------- config: checks

# Metadata of a field added after fingerprints were pinned: hashed only when set, so that
# a config that does not use it keeps its fingerprint across the upgrade.
ADDED = "fingerprint-when-set"

LIMIT_KEYS = ("memory", "cpu", "files")  # a `limits:` mapping's keys, in the order shown
CPU_KILL_AFTER = 1  # seconds of CPU past the `cpu` limit (SIGXCPU) before the kernel's SIGKILL


@dataclass(frozen=True, slots=True)
class ModuleLimits:
    """What one run of a check's module or plugin may take (`limits:`, issue 23).

    Set in the child before it executes (survivor.proc.limits), so they hold
    from its first instruction and are inherited by what it starts (each
    process gets its own allowance). None: not limited.
    """

    memory: int | None = None  # bytes of address space (RLIMIT_AS): an allocation past it fails
    cpu: int | None = None  # seconds of CPU time (RLIMIT_CPU): SIGXCPU, then SIGKILL
    files: int | None = None  # open descriptors (RLIMIT_NOFILE)

    def to_dict(self) -> dict[str, int]:
        """The limits that are set (what fingerprints and remote requests carry)."""
        return {key: value for key in LIMIT_KEYS if (value := getattr(self, key)) is not None}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ModuleLimits:
        """The inverse of `to_dict`; ValueError names a key or value that is not one."""
        unknown = sorted(set(doc) - set(LIMIT_KEYS))
        if unknown:
            raise ValueError(f"unknown limit {unknown[0]!r} (known: {', '.join(LIMIT_KEYS)})")
        for key, value in doc.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {key} must be a whole number of at least 1")
        return cls(**doc)

    def describe(self) -> str:
        """`memory 512M, cpu 5 s, files 64`: the limits as a comment shows them."""
        parts = []
        if self.memory is not None:
            parts.append(f"memory {size_text(self.memory)}")
        if self.cpu is not None:
            parts.append(f"cpu {self.cpu} s")
        if self.files is not None:
            parts.append(f"files {self.files}")
        return ", ".join(parts)

    def why_killed(self, signal_name: str) -> str:
        """How a result names a run ended by `signal_name` under these limits:
        `SIGXCPU: cpu limit 5 s`, else the signal and every limit in effect (a
        SIGKILL past the cpu limit, a SIGSEGV or SIGABRT after a failed allocation)."""
        if signal_name == "SIGXCPU" and self.cpu is not None:
            return f"{signal_name}: cpu limit {self.cpu} s"
        return f"{signal_name}; limits: {self.describe()}"

    def why_no_result(self, stderr: bytes) -> str:
        """What a result adds when a run under these limits gave none of its own:
        `limits: memory 64M; its stderr ends: MemoryError` (an allocation past the
        memory limit fails, and what the module made of that is on its stderr)."""
        lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
        last = next((line for line in reversed(lines) if line), "")
        why = f"limits: {self.describe()}"
        return f"{why}; its stderr ends: {last[:200]}" if last else why


def size_text(size: int) -> str:
    """A byte count as the config would write it: `512M`, `2G`, `64K`, `1000 bytes`."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"


@dataclass(frozen=True, slots=True)
class CheckDef:
    """A check as configured, with defaults applied and its host list resolved."""

    name: str
    kind: CheckKind
    hosts: tuple[str, ...]  # resolved: only hosts that are in exactly one class
    module: str | None = None  # CheckKind.MODULE
    plugin: str | None = None  # CheckKind.PLUGIN
    argv: tuple[str, ...] = ()  # CheckKind.PLUGIN, templates with {host} {address} {vars.X}
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    required: tuple[str, ...] = ()  # CheckKind.COMPOSITE
    optional: tuple[str, ...] = ()
    schedule: str | None = None  # override of the class schedule
    alertplan: str | None = None  # override of the class alert plan
    timeout: float = 45.0  # seconds
    retry: timedelta | None = None  # re-check interval while not OK
    fix: str | None = None
    placement_local: bool = False  # `placement: local`: only ever on the scheduler (§7b)
    # `limits:` (with instance.check_limits filled in); None: none, and not fingerprinted
    limits: ModuleLimits | None = field(default=None, metadata={ADDED: True})
    mark: Mark = NO_MARK
    # `hosts` as a set, for "does it run on this host" at every run (a tuple is a scan).
    host_set: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "host_set", frozenset(self.hosts))

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data: what the fingerprint is taken over."""
        plain = {
            "name": self.name,
            "kind": self.kind.value,
            "module": self.module,
            "plugin": self.plugin,
            "argv": list(self.argv),
            "args": _plain(self.args),
            "required": list(self.required),
            "optional": list(self.optional),
            "schedule": self.schedule,
            "alertplan": self.alertplan,
            "timeout": self.timeout,
            "retry": None if self.retry is None else self.retry.total_seconds(),
            "fix": self.fix,
        }
        if self.placement_local:  # only when set, so that older fingerprints stay as they were
            plain["placement"] = "local"
        if self.limits is not None:  # likewise
            plain["limits"] = self.limits.to_dict()
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of plain data (dicts are hashed with sorted keys)."""
    blob = json.dumps([_plain(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return _short_hash(blob)


def _short_hash(blob: str) -> str:
    # imported here: hashlib starts OpenSSL (~3 ms), which `survivor validate` never needs
    import hashlib

    return hashlib.sha256(blob.encode()).hexdigest()[:12]


_FIELD_GETTERS: dict[type, attrgetter[Any]] = {}


_ADDED_FIELDS: dict[type, tuple[str, ...]] = {}


def _with_added(value: Any, known: tuple[Any, ...]) -> tuple[Any, ...]:
    names = _ADDED_FIELDS.get(type(value))
    if names is None:
        fields = value.__dataclass_fields__.items()
        names = _ADDED_FIELDS[type(value)] = tuple(n for n, f in fields if f.metadata.get(ADDED))
    if not names:
        return known
    added = [(n, getattr(value, n)) for n in names if getattr(value, n) is not None]
    return (*known, *added) if added else known


# Fields left out of Config.fingerprint: where a definition was written, and the check's
# `placement: local`, which Config.fingerprint adds only when set (older hashes stay).
_NOT_CANONICAL = frozenset(("mark", "placement_local"))


def _canonical(value: Any) -> Any:
    """JSON encoder hook for Config.fingerprint: dataclasses as field lists without marks."""
    getter = _FIELD_GETTERS.get(type(value))
    if getter is not None:
        return _with_added(value, getter(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = value.__dataclass_fields__
        names = [
            n for n, f in fields.items() if n not in _NOT_CANONICAL and not f.metadata.get(ADDED)
        ]
        # two getters so that even a one-field dataclass gives a tuple
        _FIELD_GETTERS[type(value)] = attrgetter(names[0], *names)
        return _with_added(value, _FIELD_GETTERS[type(value)](value))
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


# --------------------------------------------------------------------------- config: alerting


@dataclass(frozen=True, slots=True)
class AlertMethod:
    """A named pair of a format module and a transmit module."""

    name: str
    format: str
    transmit: str
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    addresses: Mapping[str, str] = field(default_factory=dict, hash=False)  # method -> address
    otherwise: str | None = None  # address for any method not listed
    mark: Mark = NO_MARK

    def address_for(self, method: str) -> str | None:
        return self.addresses.get(method, self.otherwise)


@dataclass(frozen=True, slots=True)
class CallList:
    name: str
    members: tuple[str, ...]
    via: str  # alert method
    broadcast: bool = False
    rotate: str | None = None  # schedule whose `at` times rotate the on-call person
    alias_of: str | None = None  # same members and state as another list
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class AlertTry:
    """One rung of an escalation ladder; `times=None` is the catch-all."""

    times: int | None = None
    alert: tuple[str, ...] = ()  # call lists
    fix: bool = False
    tell: tuple[str, ...] = ()  # call lists told the fix result
    escalated: bool = False
    allow_failed_hosts: int = 0
    during: str | None = None  # schedule in which degraded mode applies
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class AlertUsing:
    schedule: str
    tries: tuple[AlertTry, ...]
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class AlertRule:
    """`on` codes (None for `default`), consecutive threshold, and pacing."""

    on: frozenset[int] | None
    on_label: str  # as written: "problem", "[1, 5]", "default"
    after: int
    using: tuple[AlertUsing, ...]
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class AlertPlan:
    name: str
    rules: tuple[AlertRule, ...]
    notify_on_clear: bool = False
    clear_schedule: str | None = None
    recovery_after: int = 1
    keep_state_on: frozenset[int] = frozenset()
    clear_honors_returngroups: tuple[str, ...] = ()
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class FixDef:
    name: str
    module: str
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    lock: LockScope = LockScope.CHECK_AT_HOST
    lock_expire: float = 120.0
    timeout: float = 45.0
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class Dependency:
    """Type I (status) or, with `run_first`, Type II (run the dependency first)."""

    checks: frozenset[str]  # resolved depending checks
    hosts: frozenset[str]  # resolved depending hosts
    on_check: str
    on_host: str | None = None  # None: the same host as the depending pair
    run_first: bool = False
    mark: Mark = NO_MARK

    def covers(self, check: str, host: str) -> bool:
        """Whether `check` on `host` depends on this (either type)."""
        return check in self.checks and host in self.hosts


@dataclass(frozen=True, slots=True)
class DowntimeDef:
    """A recurring maintenance window (`downtimes:`): while one of `windows` is in effect
    (their `days`/`from`/`until` read like a schedule line's), alerts of the selected
    pairs are held. `select` are selectors as typed (HOST, HOST/CHECK, */CHECK),
    `groups` group or class names; `survivor.selection` resolves them."""

    name: str
    select: tuple[str, ...]
    groups: tuple[str, ...]
    windows: tuple[ScheduleLine, ...]
    comment: str = ""
    mark: Mark = NO_MARK


# --------------------------------------------------------------------------- config: remote workers

LOCAL_TARGET = "local"  # the scheduler itself, as a target of a placement list


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """How to reach the NATS broker (DESIGN §7b), paths already resolved."""

    servers: tuple[str, ...]
    ca: Path
    cert: Path
    key: Path
    subject_prefix: str
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class ApprovedWorker:
    """A worker allowed to serve: its name and its certificate's subject (`CN=dc1-a`)."""

    name: str
    subject: str
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class WorkersConfig:
    """The `workers:` section: the broker, the allow-list, and dispatch tuning."""

    broker: BrokerConfig
    approved: Mapping[str, ApprovedWorker] = field(default_factory=dict, hash=False)
    dispatch_grace: float = 5.0  # seconds added to a check's timeout before the next group
    breaker_after: int = 3  # timeouts in a row that open a group's breaker
    breaker_for: float = 60.0  # seconds a breaker stays open
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The `web:` section: how `survivor web` listens and who may act on the page.

    Read only by `survivor web`, never by the daemon, so it is not in the
    fingerprint. With neither `users` nor `trust_header` the page is read-only.
    """

    bind: tuple[str, int] | None = None  # (host, port); None: the CLI's default
    users: Path | None = None  # the password file `survivor web passwd` writes
    trust_header: str | None = None  # a header an authenticating proxy sets
    tls_cert: Path | None = None
    tls_key: Path | None = None
    mark: Mark = NO_MARK

    @property
    def can_act(self) -> bool:
        return self.users is not None or self.trust_header is not None


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    name: str
    workers: tuple[str, ...]  # approved worker names
    mark: Mark = NO_MARK


@dataclass(frozen=True, slots=True)
class Placement:
    """One `placement:` entry: the hosts of a group or class and where their checks run.

    `targets` is the ordered failover list of worker group names and
    LOCAL_TARGET; `local` is implied last unless the list says `{local: false}`
    (then it is absent) or names `local` itself.
    """

    selector: str  # the host group or class named
    targets: tuple[str, ...]
    hosts: tuple[str, ...]
    mark: Mark = NO_MARK

    @property
    def local_allowed(self) -> bool:
        return LOCAL_TARGET in self.targets


# --------------------------------------------------------------------------- config: instance


@dataclass(frozen=True, slots=True)
class LogConfig:
    target: str = "stderr"  # stderr | syslog | a file path
    level: str = "info"


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    name: str
    state_dir: Path
    history_dir: Path
    module_dirs: tuple[Path, ...]
    plugin_dirs: tuple[Path, ...]
    # Checks running at once: None = as many as are due, within the machine's limits
    # (survivor.proc.limits); either setting caps it, the smaller wins.
    max_running_checks: int | None = field(default=None, metadata={ADDED: True})
    check_workers: int | None = None
    alert_workers: int = 5
    default_timeout: float = 45.0
    alert_throttle: int = 10
    alert_shift: timedelta = timedelta(seconds=60)
    fsync: FsyncPolicy = FsyncPolicy.BATCH
    log: LogConfig = LogConfig()
    prometheus_textfile: Path | None = None
    results_log: Path | None = None
    timezone: str | None = None  # schedules are local time; None = the system's zone
    output_cap: int = 65536  # bytes of stdout kept per module run (per host for batched runs)
    # `check_limits:` the limits of every check that does not set its own (ModuleLimits)
    check_limits: ModuleLimits | None = field(default=None, metadata={ADDED: True})
    mark: Mark = NO_MARK


# The Config fields that make its fingerprint: all but where the files are.
_FINGERPRINTED = (
    "instance",
    "hosts",
    "classes",
    "groups",
    "schedules",
    "checks",
    "returngroups",
    "alerts",
    "people",
    "calllists",
    "alertplans",
    "fixes",
    "dependencies",
)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration. Built once per load; never mutated."""

    path: Path  # the instance file
    files: tuple[Path, ...]  # every file read (instance + includes)
    instance: InstanceConfig
    hosts: Mapping[str, Host] = field(hash=False)
    classes: Mapping[str, HostClass] = field(hash=False)
    groups: Mapping[str, Group] = field(hash=False)
    schedules: Mapping[str, Schedule] = field(hash=False)
    checks: Mapping[str, CheckDef] = field(hash=False)
    returngroups: Mapping[str, frozenset[int]] = field(default_factory=dict, hash=False)
    alerts: Mapping[str, AlertMethod] = field(default_factory=dict, hash=False)
    people: Mapping[str, Person] = field(default_factory=dict, hash=False)
    calllists: Mapping[str, CallList] = field(default_factory=dict, hash=False)
    alertplans: Mapping[str, AlertPlan] = field(default_factory=dict, hash=False)
    fixes: Mapping[str, FixDef] = field(default_factory=dict, hash=False)
    dependencies: tuple[Dependency, ...] = ()
    downtimes: Mapping[str, DowntimeDef] = field(default_factory=dict, hash=False)
    # Each file's bytes as they were read (for state/running-config.json): not compared.
    sources: tuple[tuple[Path, bytes], ...] = field(default=(), compare=False, repr=False)
    workers: WorkersConfig | None = None  # None: no remote workers, nats-py never imported
    worker_groups: Mapping[str, WorkerGroup] = field(default_factory=dict, hash=False)
    placement: Mapping[str, Placement] = field(default_factory=dict, hash=False)  # by selector
    host_placement: Mapping[str, Placement] = field(default_factory=dict, hash=False)  # by host
    web: WebConfig | None = None  # `survivor web` only: not fingerprinted
    _memo: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that affects behaviour (marks and file names excluded).

        Worked out on first use rather than at load: it is a JSON dump of the
        whole tree (about 12 ms at 20,000 services), which `survivor validate`
        never needs.
        """
        known = self._memo.get("fingerprint")
        if known is None:
            sections = {name: getattr(self, name) for name in _FINGERPRINTED}
            if self.downtimes:  # only when set, so that older configs keep their fingerprint
                sections["downtimes"] = self.downtimes
            if self.workers is not None:  # absent otherwise: configs without it keep their hash
                sections.update(
                    workers=self.workers,
                    worker_groups=self.worker_groups,
                    placement=self.placement,
                )
            local_only = [c.name for c in self.checks.values() if c.placement_local]
            if local_only:
                sections["placement_local"] = local_only
            blob = json.dumps(sections, default=_canonical, sort_keys=True, separators=(",", ":"))
            known = self._memo["fingerprint"] = _short_hash(blob)
        return known

    def pairs(self) -> Iterator[tuple[CheckDef, Host]]:
        """Every monitored check@host, in config order."""
        for check in self.checks.values():
            for host_name in check.hosts:
                yield check, self.hosts[host_name]

    def pair_count(self) -> int:
        """How many check@host pairs `pairs()` yields, without walking them."""
        return sum(len(check.hosts) for check in self.checks.values())

    def targets_for(self, check: CheckDef, host: Host) -> tuple[str, ...]:
        """Where check@host runs, in order of preference (DESIGN §7b); `("local",)` if unplaced."""
        placed = self.host_placement.get(host.name)
        if placed is None or check.placement_local:
            return (LOCAL_TARGET,)
        return placed.targets

    def schedule_for(self, check: CheckDef, host: Host) -> Schedule | None:
        """The check's own schedule, else the host's class schedule."""
        name = check.schedule or self.classes[host.hostclass].schedule
        return None if name is None else self.schedules[name]

    def alertplan_for(self, check: CheckDef, host: Host) -> AlertPlan | None:
        name = check.alertplan or self.classes[host.hostclass].alertplan
        return None if name is None else self.alertplans.get(name)

    def pair_fingerprint(self, check: CheckDef, host: Host) -> str:
        """Fingerprint of what runs for check@host: the check, and what the host adds to it."""
        schedule = check.schedule or self.classes[host.hostclass].schedule
        plan = check.alertplan or self.classes[host.hostclass].alertplan
        host_part: Any = None
        if check.kind is CheckKind.PLUGIN:
            host_part = host.to_dict()
        return fingerprint(check.to_dict(), schedule, plan, host_part)
