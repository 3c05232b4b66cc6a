"""Build `workers:`, `worker_groups:` and `placement:` (DESIGN §7b), collecting every problem.

Worker and group names become NATS subject tokens (`<prefix>.check.<group>`,
`<prefix>.hb.<worker>`), so they are safe names without dots. A placement maps
a host group or class to an ordered list of worker groups; `local` (the
scheduler) is implied last unless the list names it or ends in `{local:
false}`. A host placed by two entries with different lists is an error naming
both. The certificate files must exist at load; `survivor validate` also reads
the scheduler's certificate subject (remote.certs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from survivor.config.build_hosts import Hosting, name_list, selection
from survivor.config.fields import Context, Fields, describe, place
from survivor.config.load import Entry
from survivor.config.marked import MList, MMap
from survivor.model.config import (
    LOCAL_TARGET,
    ApprovedWorker,
    BrokerConfig,
    Mark,
    Placement,
    WorkerGroup,
    WorkersConfig,
)

WORKERS_KEYS = frozenset(("broker", "approved", "dispatch_grace", "breaker"))
BROKER_KEYS = frozenset(("servers", "ca", "cert", "key", "subject_prefix"))
APPROVED_KEYS = frozenset(("subject",))
BREAKER_KEYS = frozenset(("after", "for"))
GROUP_KEYS = frozenset(("workers",))
LOCAL_KEYS = frozenset(("local",))

TOKEN_PATTERN = "[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
_TOKEN = re.compile(TOKEN_PATTERN)
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SERVER = re.compile(r"(tls|nats)://[A-Za-z0-9.:\[\]_-]+")
_SUBJECT_BAD = re.compile(r'["\\\n\r\t]')


@dataclass(slots=True)
class Remote:
    """The built remote-worker sections (all empty when there is no `workers:`)."""

    workers: WorkersConfig | None = None
    groups: dict[str, WorkerGroup] = field(default_factory=dict)
    placement: dict[str, Placement] = field(default_factory=dict)
    host_placement: dict[str, Placement] = field(default_factory=dict)


def is_subject_token(name: object) -> bool:
    """A worker or group name: a safe name that is also one NATS subject token."""
    return isinstance(name, str) and _TOKEN.fullmatch(name) is not None


def build_remote(ctx: Context, instance_name: str, hosting: Hosting) -> Remote:
    out = Remote()
    entry = ctx.raw.workers
    if entry is not None:
        out.workers = _workers(ctx, entry, instance_name)
    groups = ctx.raw.sections["worker_groups"]
    placement = ctx.raw.sections["placement"]
    if out.workers is None and entry is None:
        for section, entries in (("worker_groups", groups), ("placement", placement)):
            for first in entries.values():
                ctx.error(first.file, first.line, f"{section}: needs a workers: section (§7b)")
                break
        return out
    if out.workers is None:
        return out  # its problems are reported; groups checked against it would only echo them
    approved = out.workers.approved
    for name, group_entry in groups.items():
        built = _group(ctx, name, group_entry, approved)
        if built is not None:
            out.groups[name] = built
    for name, placement_entry in placement.items():
        _placement(ctx, out, hosting, name, placement_entry)
    return out


def _token(ctx: Context, name: object, kind: str, file: str, line: int) -> bool:
    if is_subject_token(name):
        return True
    ctx.error(
        file,
        line,
        f"{kind} name {name!r} is not allowed: it becomes a NATS subject token, so it must "
        f"match {TOKEN_PATTERN} (no dots)",
    )
    return False


def _file(f: Fields, key: str, base: Path) -> Path:
    path = f.path(key, base, required=True)
    if path is None:
        return base / f"<no {key}>"
    if not path.is_file():
        f.bad(key, f"{path}: no such file (make it with openssl: docs/scaleout.md)")
    return path


def _workers(ctx: Context, entry: Entry, instance_name: str) -> WorkersConfig | None:
    f = ctx.fields(entry.value, "workers", WORKERS_KEYS, entry.file, entry.line)
    if f is None:
        return None
    ok = len(ctx.problems)
    broker = _broker(ctx, f, instance_name)
    approved: dict[str, ApprovedWorker] = {}
    subjects: dict[str, str] = {}
    value = f.get("approved")
    if not isinstance(value, MMap) or not value:
        f.bad(
            "approved",
            f"expected a mapping of worker names to {{subject: ...}}, got {describe(value)}",
        )
    else:
        for name, item in value.items():
            line = value.key_line(name)
            if not _token(ctx, name, "worker", value.file, line):
                continue
            w = ctx.fields(item, f"workers: approved: {name}", APPROVED_KEYS, value.file, line)
            subject = None if w is None else w.text("subject", required=True)
            if w is None or subject is None:
                continue
            if _SUBJECT_BAD.search(subject):
                w.bad("subject", f"{subject!r} must not hold quotes, backslashes or line breaks")
            elif subject in subjects:
                w.bad("subject", f"{subject!r} is also the subject of worker {subjects[subject]!r}")
            subjects[subject] = name
            approved[name] = ApprovedWorker(name, subject, Mark(value.file, line))
    grace = f.seconds("dispatch_grace", 5.0, minimum=timedelta(0))
    after, for_s = 3, 60.0
    if "breaker" in f:
        b = ctx.fields(
            f.get("breaker"), "workers: breaker", BREAKER_KEYS, f.file, f.line("breaker")
        )
        if b is not None:
            after = b.integer("after", 3, 1)
            for_s = b.seconds("for", 60.0)
    if broker is None or len(ctx.problems) != ok:
        return None
    return WorkersConfig(
        broker=broker,
        approved=MappingProxyType(approved),
        dispatch_grace=grace,
        breaker_after=after,
        breaker_for=for_s,
        mark=Mark(entry.file, entry.line),
    )


def _broker(ctx: Context, f: Fields, instance_name: str) -> BrokerConfig | None:
    if "broker" not in f:
        f.missing("broker", " (servers, ca, cert, key)")
        return None
    b = ctx.fields(f.get("broker"), "workers: broker", BROKER_KEYS, f.file, f.line("broker"))
    if b is None:
        return None
    return broker_config(b, ctx.raw.base_dir, f"survivor.{instance_name}")


def broker_config(b: Fields, base: Path, default_prefix: str) -> BrokerConfig:
    """A `broker:` mapping (the scheduler's and a worker's have the same keys)."""
    servers: list[str] = []
    value = b.get("servers")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        b.bad("servers", f"expected a list of URLs such as tls://nats1:4222, got {describe(value)}")
    else:
        for item in items:
            if isinstance(item, str) and _SERVER.fullmatch(item):
                servers.append(item)
            else:
                b.bad("servers", f"{item!r} is not a URL such as tls://nats1.example.org:4222")
    prefix = b.text("subject_prefix") or default_prefix
    if _PREFIX.fullmatch(prefix) is None:
        b.bad("subject_prefix", f"{prefix!r} is not a NATS subject (tokens of A-Z a-z 0-9 _ -)")
    return BrokerConfig(
        servers=tuple(servers),
        ca=_file(b, "ca", base),
        cert=_file(b, "cert", base),
        key=_file(b, "key", base),
        subject_prefix=prefix,
        mark=b.mark(),
    )


def _group(
    ctx: Context, name: str, entry: Entry, approved: Mapping[str, ApprovedWorker]
) -> WorkerGroup | None:
    if not _token(ctx, name, "worker group", entry.file, entry.line):
        return None
    if name == LOCAL_TARGET:
        ctx.error(entry.file, entry.line, "worker group 'local' is reserved for the scheduler")
        return None
    f = ctx.fields(entry.value, f"worker group {name!r}", GROUP_KEYS, entry.file, entry.line)
    if f is None:
        return None
    members: list[str] = []
    for worker, line in f.names("workers", "worker", required=True):
        if worker not in approved:
            ctx.error(
                f.file,
                line,
                f"{f.what}: worker {worker!r} is not in workers: approved"
                f"{ctx.suggest(worker, approved)}",
            )
        elif worker not in members:
            members.append(worker)
    if not members:
        if "workers" in f:
            f.bad("workers", "lists no approved worker, so nothing could serve this group")
        return None
    return WorkerGroup(name, tuple(members), Mark(entry.file, entry.line))


def _targets(ctx: Context, out: Remote, what: str, value: object, entry: Entry) -> tuple[str, ...]:
    if not isinstance(value, MList) or not value:
        ctx.error(entry.file, entry.line, f"{what}: must be a non-empty list of worker groups")
        return ()
    targets: list[str] = []
    never_local = False
    for index, item in enumerate(value):
        line = value.item_line(index)
        if isinstance(item, MMap):
            t = ctx.fields(item, f"{what}: item {index + 1}", LOCAL_KEYS, value.file, line)
            if t is not None and t.get("local") is not False:
                t.bad("local", "only {local: false} (never run these on the scheduler) is allowed")
            elif index != len(value) - 1:
                ctx.error(value.file, line, f"{what}: {{local: false}} must be the last item")
            never_local = True
        elif not isinstance(item, str):
            ctx.error(value.file, line, f"{what}: expected a worker group, got {describe(item)}")
        elif item in targets:
            ctx.error(value.file, line, f"{what}: {item!r} is listed twice")
        elif item != LOCAL_TARGET and item not in ctx.raw.sections["worker_groups"]:
            suggestion = ctx.suggest(item, ctx.raw.sections["worker_groups"])
            ctx.error(value.file, line, f"{what}: worker group {item!r} is not defined{suggestion}")
        else:
            targets.append(item)
    if never_local and LOCAL_TARGET in targets:
        ctx.error(entry.file, entry.line, f"{what}: lists local and {{local: false}}")
    elif not never_local and LOCAL_TARGET not in targets:
        targets.append(LOCAL_TARGET)
    return tuple(targets)


def _placement(ctx: Context, out: Remote, hosting: Hosting, name: str, entry: Entry) -> None:
    what = f"placement of {name!r}"
    if name not in hosting.groups and name not in hosting.classes:
        ctx.error(
            entry.file,
            entry.line,
            f"{what}: {name!r} is not a host group or class"
            f"{ctx.suggest(name, [*hosting.groups, *hosting.classes])}",
        )
        return
    targets = _targets(ctx, out, what, entry.value, entry)
    if not targets:
        return
    hosts = selection(hosting, name) or ()
    built = Placement(name, targets, hosts, Mark(entry.file, entry.line))
    out.placement[name] = built
    clashes: dict[str, list[str]] = {}
    for host in hosts:
        first = out.host_placement.get(host)
        if first is None:
            out.host_placement[host] = built
        elif first.targets != targets:
            clashes.setdefault(first.selector, []).append(host)
    for other, clashing in clashes.items():
        first = out.placement[other]
        noun = "host" if len(clashing) == 1 else "hosts"
        ctx.error(
            entry.file,
            entry.line,
            f"{what}: {noun} {name_list(clashing)} also placed by {other!r} "
            f"({place(first.mark.file, first.mark.line, entry.file)}) with a different list",
        )
