"""Reload diffs: which check@host pairs, checks, hosts and call lists were added,
changed or removed — and that "changed" agrees with Config.pair_fingerprint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from survivor.config import ConfigDiff, diff_configs, load_config
from survivor.model.config import Config

BASE = """\
instance: {name: t, state_dir: state, history_dir: history}
schedules:
  fast: [{every: 1m}]
  slow: [{every: 5m}]
hosts:
  web1: {address: 192.0.2.1}
  web2: {address: 192.0.2.2}
classes:
  web: {hosts: [web1, web2], schedule: fast}
  db: {hosts: [db1], schedule: fast}
alerts:
  mail: {format: plain, transmit: mail}
people:
  ann: {mail: ann@example.org}
  ben: {mail: ben@example.org}
calllists:
  ops: {members: [ann], via: mail}
  old: {members: [ben], via: mail}
checks:
  ping: {module: ping, hosts: [web, db]}
  http: {plugin: check_http, argv: ["-H", "{address}"], hosts: [web]}
  disk: {plugin: check_disk, argv: ["-w", "10"], hosts: [db]}
"""


def load(tmp_path: Path, name: str, text: str) -> Config:
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "survivor.yaml"
    path.write_text(text)
    return load_config(path)


def edit(text: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return text


def assert_agrees_with_pair_fingerprints(old: Config, new: Config, diff: ConfigDiff) -> None:
    old_fp = {(c.name, h.name): old.pair_fingerprint(c, h) for c, h in old.pairs()}
    new_fp = {(c.name, h.name): new.pair_fingerprint(c, h) for c, h in new.pairs()}
    assert diff.added == new_fp.keys() - old_fp.keys()
    assert diff.removed == old_fp.keys() - new_fp.keys()
    assert diff.changed == {p for p in new_fp.keys() & old_fp.keys() if new_fp[p] != old_fp[p]}


def test_identical_configs_differ_in_nothing(tmp_path: Path) -> None:
    old = load(tmp_path, "a", BASE)
    new = load(tmp_path, "b", BASE)
    diff = diff_configs(old, new)
    assert diff.empty
    assert diff == ConfigDiff()
    assert diff.summary() == "0 checks added, 0 changed, 0 removed"


def test_moving_definitions_is_not_a_change(tmp_path: Path) -> None:
    old = load(tmp_path, "a", BASE)
    new = load(tmp_path, "b", edit(BASE, ("checks:\n", "# every check one line down\nchecks:\n")))
    assert new.checks["ping"].mark.line == old.checks["ping"].mark.line + 1
    assert diff_configs(old, new).empty


def test_added_changed_removed(tmp_path: Path) -> None:
    old = load(tmp_path, "a", BASE)
    new_text = edit(
        BASE,
        ("  web1: {address: 192.0.2.1}", "  web1: {address: 192.0.2.11}"),
        ("hosts: [web1, web2], schedule", "hosts: [web1, web2, web3], schedule"),
        (
            'argv: ["-w", "10"], hosts: [db]}',
            'argv: ["-w", "10"], hosts: [db]}\n  smtp: {module: smtp, hosts: [web]}',
        ),
        ('  disk: {plugin: check_disk, argv: ["-w", "10"], hosts: [db]}\n', ""),
        ("  ops: {members: [ann], via: mail}", "  ops: {members: [ann, ben], via: mail}"),
        ("  old: {members: [ben], via: mail}", "  new: {members: [ben], via: mail}"),
    )
    new = load(tmp_path, "b", new_text)
    diff = diff_configs(old, new)
    assert diff.added == {
        ("ping", "web3"),
        ("http", "web3"),
        ("smtp", "web1"),
        ("smtp", "web2"),
        ("smtp", "web3"),
    }
    assert diff.removed == {("disk", "db1")}
    assert diff.changed == {("http", "web1")}  # plugin argv sees the address; ping does not
    assert diff.checks_added == {"smtp"} and diff.checks_removed == {"disk"}
    assert diff.checks_changed == {"http", "ping"}
    assert diff.hosts_added == {"web3"} and diff.hosts_removed == frozenset()
    assert diff.calllists_added == {"new"}
    assert diff.calllists_changed == {"ops"}
    assert diff.calllists_removed == {"old"}
    assert diff.summary() == (
        "1 check added, 2 changed, 1 removed; 1 host added; 1 call list added, 1 changed, 1 removed"
    )
    assert_agrees_with_pair_fingerprints(old, new, diff)


@pytest.mark.parametrize(
    "replacement",
    [
        (
            "web: {hosts: [web1, web2], schedule: fast}",
            "web: {hosts: [web1, web2], schedule: slow}",
        ),
        ('argv: ["-H", "{address}"]', 'argv: ["-H", "{host}"]'),
        (
            "ping: {module: ping, hosts: [web, db]}",
            "ping: {module: ping, hosts: [web, db], timeout: 9s}",
        ),
        ("  web2: {address: 192.0.2.2}", "  web2: {address: 192.0.2.2, vars: {x: 1}}"),
        ("ping: {module: ping, hosts: [web, db]}", "ping: {module: ping, hosts: [db]}"),
    ],
)
def test_changed_pairs_are_exactly_those_whose_fingerprint_changed(
    tmp_path: Path, replacement: tuple[str, str]
) -> None:
    old = load(tmp_path, "a", BASE)
    new = load(tmp_path, "b", edit(BASE, replacement))
    diff = diff_configs(old, new)
    assert not diff.empty
    assert_agrees_with_pair_fingerprints(old, new, diff)


def test_a_class_schedule_change_changes_only_its_pairs(tmp_path: Path) -> None:
    old = load(tmp_path, "a", BASE)
    new = load(
        tmp_path,
        "b",
        edit(BASE, ("db: {hosts: [db1], schedule: fast}", "db: {hosts: [db1], schedule: slow}")),
    )
    diff = diff_configs(old, new)
    assert diff.changed == {("ping", "db1"), ("disk", "db1")}
    assert diff.checks_changed == {"ping", "disk"}
    assert diff.summary() == "0 checks added, 2 changed, 0 removed"


def test_diff_is_frozen(tmp_path: Path) -> None:
    diff = ConfigDiff()
    with pytest.raises(dataclasses.FrozenInstanceError):
        diff.added = frozenset()  # type: ignore[misc]
