"""`web:` (issue 22): where `survivor web` listens and who may act; every mistake with
file:line; a config without it is unchanged (same fingerprint, page read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from survivor.config import load_config
from survivor.errors import ConfigError

BASE = """\
instance: {name: t, state_dir: state, history_dir: history}
hosts: {web1: {}}
schedules: {s: [{every: 5m}]}
checks:
  disk: {module: disk, hosts: [web1], schedule: s}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "survivor.yaml"
    path.write_text(BASE + text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_a_full_web_section(tmp_path: Path) -> None:
    (tmp_path / "web.crt").write_text("x")
    (tmp_path / "web.key").write_text("x")
    config = load_config(
        write(
            tmp_path,
            "web:\n  bind: 0.0.0.0:8443\n  users: etc/web-users\n"
            "  tls_cert: web.crt\n  tls_key: web.key\n",
        )
    )
    web = config.web
    assert web is not None and web.can_act
    assert web.bind == ("0.0.0.0", 8443)
    assert web.users == tmp_path / "etc" / "web-users"  # need not exist yet
    assert web.tls_cert == tmp_path / "web.crt" and web.trust_header is None
    assert str(web.mark) == f"{tmp_path / 'survivor.yaml'}:6"


def test_no_web_section_keeps_the_fingerprint_and_is_read_only(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path, ""))
    assert plain.web is None
    with_web = load_config(write(tmp_path, "web: {users: u}\n"))
    assert with_web.fingerprint == plain.fingerprint  # the daemon never reads it


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("web:\n  bind: 8080\n", 7, "web: bind: expected a string"),
        ("web:\n  bind: nowhere\n", 7, "web: bind: 'nowhere' is not HOST:PORT"),
        ("web:\n  user: u\n", 7, "unknown key 'user' in web; did you mean 'users'?"),
        ("web:\n  trust_header: 'X User'\n", 7, "is not an HTTP header name"),
        (
            "web:\n  users: u\n  trust_header: X-Remote-User\n",
            8,
            "users: and trust_header: do not go together",
        ),
        (
            "web:\n  bind: 0.0.0.0:8080\n  trust_header: X-Remote-User\n",
            8,
            "needs a loopback bind",
        ),
        ("web:\n  users: u\n  tls_cert: nothere.crt\n", 8, "nothere.crt: no such file"),
        ("web: [users]\n", 6, "web: must be a mapping"),
    ],
)
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(
        p.startswith(f"{tmp_path / 'survivor.yaml'}:{line}:") and message in p for p in found
    ), found


def test_tls_needs_both_files(tmp_path: Path) -> None:
    (tmp_path / "web.crt").write_text("x")
    found = problems(write(tmp_path, "web:\n  users: u\n  tls_cert: web.crt\n"))
    assert any("tls_cert: and tls_key: go together" in p for p in found), found


def test_web_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "web.yaml").write_text("web: {users: v}\n")
    found = problems(write(tmp_path, "web: {users: u}\n"))
    assert any("web: is defined twice" in p and "web.yaml:1" in p for p in found), found
