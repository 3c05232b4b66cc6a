"""`workers:`, `worker_groups:` and `placement:` (DESIGN §7b): built, and every mistake
reported with file:line; a config without them is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from survivor.config import load_config
from survivor.errors import ConfigError, ConfigProblem

BASE = """\
instance: {name: t, state_dir: state, history_dir: history}
hosts: {web1: {}, web2: {}, db1: {}, br1: {}}
classes:
  web: {hosts: [web1, web2], schedule: s}
  db: {hosts: [db1], schedule: s}
  branch: {hosts: [br1], schedule: s}
groups:
  dmz: [web1, db1]
schedules: {s: [{every: 5m}]}
checks:
  disk: {module: disk, hosts: all}
  self: {module: disk, hosts: all, placement: local}
"""

WORKERS = """\
workers:
  broker:
    servers: ["tls://127.0.0.1:4222"]
    ca: pki/ca.pem
    cert: pki/scheduler.pem
    key: pki/scheduler.key
  approved:
    dc1-a: {subject: "CN=dc1-a"}
    dc2-a: {subject: "CN=dc2-a"}
  dispatch_grace: 2s
  breaker: {after: 2, for: 30s}
worker_groups:
  dc1: {workers: [dc1-a]}
  dc2: {workers: [dc2-a]}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pki").mkdir(exist_ok=True)
    for name in ("ca.pem", "scheduler.pem", "scheduler.key"):
        (tmp_path / "pki" / name).write_text("x")
    path = tmp_path / "survivor.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def line_of(path: Path, text: str) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def test_no_workers_section_leaves_everything_local(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.workers is None and not config.placement
    check = config.checks["disk"]
    assert config.targets_for(check, config.hosts["web1"]) == ("local",)
    assert "placement" not in check.to_dict()  # older fingerprints stay as they were


def test_placement_builds_ordered_targets_with_local_implied(tmp_path: Path) -> None:
    text = BASE + WORKERS + "placement:\n  dmz: [dc1, dc2]\n  branch: [dc2, {local: false}]\n"
    config = load_config(write(tmp_path, text))
    assert config.workers is not None
    assert config.workers.broker.subject_prefix == "survivor.t"
    assert config.workers.broker.ca == tmp_path / "pki" / "ca.pem"
    assert config.workers.dispatch_grace == 2.0
    assert (config.workers.breaker_after, config.workers.breaker_for) == (2, 30.0)
    assert config.workers.approved["dc1-a"].subject == "CN=dc1-a"
    disk, own = config.checks["disk"], config.checks["self"]
    hosts = config.hosts
    assert config.targets_for(disk, hosts["web1"]) == ("dc1", "dc2", "local")
    assert config.targets_for(disk, hosts["br1"]) == ("dc2",)
    assert config.targets_for(disk, hosts["web2"]) == ("local",)  # in no entry
    assert config.targets_for(own, hosts["web1"]) == ("local",)  # placement: local
    assert own.to_dict()["placement"] == "local"


def test_local_may_come_earlier_in_the_list(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + WORKERS + "placement:\n  dmz: [local, dc2]\n"))
    assert config.placement["dmz"].targets == ("local", "dc2")


def test_a_host_placed_twice_differently_names_both_entries(tmp_path: Path) -> None:
    text = BASE + WORKERS + "placement:\n  dmz: [dc1]\n  web: [dc2]\n"
    path = write(tmp_path, text)
    [problem] = problems(path)
    assert problem.line == line_of(path, "  web: [dc2]")
    assert "'web1' also placed by 'dmz'" in problem.message
    assert f"line {line_of(path, '  dmz: [dc1]')}" in problem.message


def test_the_same_list_twice_is_no_conflict(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, BASE + WORKERS + "placement:\n  dmz: [dc1]\n  web: [dc1]\n")
    )
    assert config.targets_for(config.checks["disk"], config.hosts["web2"]) == ("dc1", "local")


@pytest.mark.parametrize(
    ("extra", "marker", "message"),
    [
        ("placement:\n  dmz: [dc9]\n", "dmz: [dc9]", "worker group 'dc9' is not defined"),
        ("placement:\n  nowhere: [dc1]\n", "nowhere:", "is not a host group or class"),
        ("placement:\n  dmz: [{local: false}, dc1]\n", "dmz: [{", "must be the last item"),
        ("placement:\n  dmz: [dc1, dc1]\n", "dmz: [dc1, dc1]", "'dc1' is listed twice"),
        ("placement:\n  dmz: []\n", "dmz: []", "non-empty list of worker groups"),
        ("  dc3: {workers: [ghost]}\n", "dc3:", "worker 'ghost' is not in workers: approved"),
        ("  dc4: {workers: []}\n", "dc4:", "lists no approved worker"),
        ("  local: {workers: [dc1-a]}\n", "  local:", "reserved for the scheduler"),
        ("  a.b: {workers: [dc1-a]}\n", "a.b:", "NATS subject token"),
    ],
)
def test_mistakes_are_reported_at_their_line(
    tmp_path: Path, extra: str, marker: str, message: str
) -> None:
    path = write(tmp_path, BASE + WORKERS + extra)
    found = problems(path)
    assert any(p.line == line_of(path, marker) and message in p.message for p in found), found


def test_missing_certificate_files_and_bad_broker_values(tmp_path: Path) -> None:
    text = BASE + WORKERS.replace("pki/ca.pem", "pki/nope.pem").replace(
        '["tls://127.0.0.1:4222"]', '["http://x"]'
    )
    path = write(
        tmp_path, text.replace("  dispatch_grace", "    subject_prefix: a..b\n  dispatch_grace")
    )
    found = problems(path)
    messages = {(p.line, p.message.split(":")[2].strip()) for p in found}
    assert (line_of(path, "nope.pem"), "ca") in messages, found
    assert (line_of(path, "http://x"), "servers") in messages, found
    assert (line_of(path, "a..b"), "subject_prefix") in messages, found


def test_duplicate_subjects_and_sections_without_workers(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + WORKERS.replace("CN=dc2-a", "CN=dc1-a"))
    [problem] = problems(path)
    assert "also the subject of worker 'dc1-a'" in problem.message
    path = write(tmp_path, BASE + "worker_groups:\n  dc1: {workers: [a]}\n")
    [problem] = problems(path)
    assert problem.line == line_of(path, "dc1:") and "needs a workers: section" in problem.message


def test_check_placement_only_takes_local(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("placement: local", "placement: dc1"))
    [problem] = problems(path)
    assert problem.line == line_of(path, "placement: dc1") and "expected 'local'" in problem.message


def test_workers_defined_in_two_files_names_both(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + WORKERS)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "more.yaml").write_text(WORKERS.split("worker_groups:")[0])
    found = problems(path)
    [problem] = found
    assert problem.file == str(tmp_path / "conf.d" / "more.yaml") and problem.line == 1
    assert f"workers: is defined twice: at {path}:{line_of(path, 'workers:')}" in problem.message
