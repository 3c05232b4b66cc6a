"""What a reload changes: check@host pairs, checks, hosts and call lists.

The daemon uses the pair sets to keep the schedule of unchanged pairs, start
added ones and prune the state of removed ones; the summary goes to the log
and the daemon history. A pair "changed" when `Config.pair_fingerprint`
differs, i.e. when what runs for it (definition, effective schedule and alert
plan, and for plugins the host's address and vars) is different. Marks (file
and line) never count as a change: moving a definition is not changing it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from survivor.model.config import NO_MARK, CallList, CheckKind, Config

Pair = tuple[str, str]  # (check, host)


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    added: frozenset[Pair] = frozenset()
    changed: frozenset[Pair] = frozenset()
    removed: frozenset[Pair] = frozenset()
    hosts_added: frozenset[str] = frozenset()
    hosts_removed: frozenset[str] = frozenset()
    checks_added: frozenset[str] = frozenset()
    checks_changed: frozenset[str] = frozenset()
    checks_removed: frozenset[str] = frozenset()
    calllists_added: frozenset[str] = frozenset()
    calllists_changed: frozenset[str] = frozenset()
    calllists_removed: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """True when the reload changes nothing the daemon acts on."""
        return not any(getattr(self, f.name) for f in dataclasses.fields(self))

    def summary(self) -> str:
        """`2 checks added, 1 changed, 0 removed; 3 hosts added` (later zero counts omitted)."""
        parts = [
            _counts(
                "check",
                (len(self.checks_added), len(self.checks_changed), len(self.checks_removed)),
                always=True,
            )
        ]
        hosts = _counts("host", (len(self.hosts_added), 0, len(self.hosts_removed)))
        calllists = _counts(
            "call list",
            (len(self.calllists_added), len(self.calllists_changed), len(self.calllists_removed)),
        )
        parts.extend(part for part in (hosts, calllists) if part)
        return "; ".join(parts)


def _counts(noun: str, counts: tuple[int, int, int], *, always: bool = False) -> str:
    """`2 checks added, 1 changed, 0 removed`; without `always`, only the non-zero counts."""
    items = [
        (count, verb)
        for count, verb in zip(counts, ("added", "changed", "removed"), strict=True)
        if count or always
    ]
    if not items:
        return ""
    (first, verb), rest = items[0], items[1:]
    noun_text = noun if first == 1 else f"{noun}s"
    return ", ".join([f"{first} {noun_text} {verb}", *(f"{c} {v}" for c, v in rest)])


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
PairKey = tuple[str, str | None, str | None, str | None]


def _check_parts(config: Config) -> dict[str, str]:
    """Each check's definition as canonical JSON: what its fingerprint is a hash of."""
    return {name: _ENCODER.encode(check.to_dict()) for name, check in config.checks.items()}


def _pair_keys(config: Config, check_parts: dict[str, str]) -> dict[Pair, PairKey]:
    """For every pair, the parts `Config.pair_fingerprint` hashes, as canonical JSON.

    Equal keys <=> equal pair fingerprints (the fingerprint is a hash of the
    JSON of exactly these parts), but each check and host is encoded once, not
    once per pair, and nothing is hashed: a reload of 100,000 pairs must not
    spend seconds here. Keep in step with `Config.pair_fingerprint`;
    tests/config/test_diff.py cross-checks the two.
    """
    keys: dict[Pair, PairKey] = {}
    host_parts: dict[str, str] = {}
    for check in config.checks.values():
        check_part = check_parts[check.name]
        plugin = check.kind is CheckKind.PLUGIN
        for host_name in check.hosts:
            host = config.hosts[host_name]
            hostclass = config.classes[host.hostclass]
            host_part = None
            if plugin:
                host_part = host_parts.get(host_name)
                if host_part is None:
                    host_part = host_parts[host_name] = _ENCODER.encode(host.to_dict())
            keys[(check.name, host_name)] = (
                check_part,
                check.schedule or hostclass.schedule,
                check.alertplan or hostclass.alertplan,
                host_part,
            )
    return keys


def _calllist_key(config: Config, calllist: CallList) -> tuple[object, ...]:
    """What makes a call list behave differently: its definition and its members' addresses."""
    addresses = []
    for member in calllist.members:
        person = config.people.get(member)
        addresses.append(None if person is None else person.address_for(calllist.via))
    return (dataclasses.replace(calllist, mark=NO_MARK), tuple(addresses))


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare two configs; pure."""
    old_checks = _check_parts(old)
    new_checks = _check_parts(new)
    old_pairs = _pair_keys(old, old_checks)
    new_pairs = _pair_keys(new, new_checks)
    added = new_pairs.keys() - old_pairs.keys()
    removed = old_pairs.keys() - new_pairs.keys()
    changed = {
        pair for pair, key in new_pairs.items() if pair in old_pairs and old_pairs[pair] != key
    }

    checks_added = new.checks.keys() - old.checks.keys()
    checks_removed = old.checks.keys() - new.checks.keys()
    touched = {check for check, _ in changed | added | removed}
    checks_changed = {
        name
        for name in new.checks.keys() & old.checks.keys()
        if name in touched or new_checks[name] != old_checks[name]
    }

    common_lists = new.calllists.keys() & old.calllists.keys()
    return ConfigDiff(
        added=frozenset(added),
        changed=frozenset(changed),
        removed=frozenset(removed),
        hosts_added=frozenset(new.hosts.keys() - old.hosts.keys()),
        hosts_removed=frozenset(old.hosts.keys() - new.hosts.keys()),
        checks_added=frozenset(checks_added),
        checks_changed=frozenset(checks_changed),
        checks_removed=frozenset(checks_removed),
        calllists_added=frozenset(new.calllists.keys() - old.calllists.keys()),
        calllists_changed=frozenset(
            name
            for name in common_lists
            if _calllist_key(new, new.calllists[name]) != _calllist_key(old, old.calllists[name])
        ),
        calllists_removed=frozenset(old.calllists.keys() - new.calllists.keys()),
    )
