"""A check's `limits:` and `instance.check_limits` (issue 23): values, defaults, fingerprints.

The problems with file:line are in the broken fixture `bad-limits.yaml`
(test_build.test_broken_fixture_reports_exactly_its_expected_problems).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from survivor.config import load_config
from survivor.errors import ConfigError
from survivor.model.config import Config, ModuleLimits

BODY = (
    "schedules: {s: [{every: 5m}]}\n"
    "classes: {c: {hosts: [h1, h2], schedule: s}}\n"
    "hosts: {h1: {vars: {port: 1}}}\n"
)


def load(tmp_path: Path, checks: str, instance_extra: str = "") -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(
        f"instance: {{state_dir: s, history_dir: h{instance_extra}}}\n{BODY}checks:\n{checks}"
    )
    return load_config(path)


def test_limits_are_read_as_bytes_seconds_and_descriptors(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "  a: {module: m, hosts: [c], limits: {memory: 512M, cpu: 2m, files: 64}}\n"
        "  b: {module: m, hosts: [c], limits: {memory: 2GiB}}\n"
        "  p: {plugin: check_x, hosts: [c], limits: {memory: 1073741824, cpu: 90s}}\n"
        "  n: {module: m, hosts: [c]}\n",
    )
    assert config.checks["a"].limits == ModuleLimits(memory=512 << 20, cpu=120, files=64)
    assert config.checks["b"].limits == ModuleLimits(memory=2 << 30)
    assert config.checks["p"].limits == ModuleLimits(memory=1 << 30, cpu=90)
    assert config.checks["n"].limits is None
    assert config.checks["a"].limits.describe() == "memory 512M, cpu 120 s, files 64"


def test_instance_check_limits_are_every_checks_default_key_by_key(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "  plain: {module: m, hosts: [c]}\n"
        "  more: {module: m, hosts: [c], limits: {memory: 2G}}\n"
        "  free: {module: m, hosts: [c], limits: {memory: unlimited, cpu: unlimited}}\n",
        ", check_limits: {memory: 1G, cpu: 30s}",
    )
    assert config.instance.check_limits == ModuleLimits(memory=1 << 30, cpu=30)
    assert config.checks["plain"].limits == ModuleLimits(memory=1 << 30, cpu=30)
    assert config.checks["more"].limits == ModuleLimits(memory=2 << 30, cpu=30)
    assert config.checks["free"].limits is None  # nothing left limited


def test_a_check_without_limits_keeps_its_fingerprints(tmp_path: Path) -> None:
    # Fingerprints are stored in state and history; a field added to the check
    # definition must not make every existing check a new incarnation.
    check = "  k: {module: m, hosts: [c], timeout: 10s}\n"
    other = "  o: {module: m, hosts: [c]}\n"
    before = load(tmp_path, check + other)
    assert "limits" not in before.checks["k"].to_dict()
    nulled = load(tmp_path, check + other, ", check_limits: {memory: unlimited}")
    assert nulled.fingerprint == before.fingerprint
    limited = load(tmp_path, check.replace("10s}", "10s, limits: {cpu: 5s}}") + other)
    assert limited.fingerprint != before.fingerprint
    for c, h in before.pairs():
        same = c.name == "o"
        assert (
            before.pair_fingerprint(c, h)
            == limited.pair_fingerprint(limited.checks[c.name], limited.hosts[h.name])
        ) is same


def test_a_composite_takes_no_limits_but_its_components_keep_theirs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a composite check runs no module"):
        load(
            tmp_path,
            "  m1: {module: m, hosts: [c], limits: {cpu: 5s}}\n"
            "  all: {required: [m1], hosts: [c], limits: {cpu: 5s}}\n",
        )
    config = load(
        tmp_path,
        "  m1: {module: m, hosts: [c], limits: {cpu: 5s}}\n  all: {required: [m1], hosts: [c]}\n",
        ", check_limits: {memory: 1G}",
    )
    assert config.checks["m1"].limits == ModuleLimits(memory=1 << 30, cpu=5)
    assert config.checks["all"].limits is None


def test_limits_round_trip_as_a_document_and_refuse_bad_ones() -> None:
    limits = ModuleLimits(memory=64 << 20, files=32)
    assert limits.to_dict() == {"memory": 64 << 20, "files": 32}
    assert ModuleLimits.from_dict(limits.to_dict()) == limits
    with pytest.raises(ValueError, match="unknown limit 'stack'"):
        ModuleLimits.from_dict({"stack": 1})
    for bad in (0, -1, True, 1.5, "1G"):
        with pytest.raises(ValueError, match="limit cpu must be a whole number"):
            ModuleLimits.from_dict({"cpu": bad})
