"""`survivor web passwd USER` and what `survivor web` refuses before it serves."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from survivor.cli import main
from survivor.store.passwords import read_users, verify
from tests.cli.conftest import ENTRY, Cli
from tests.viewstate import CONFIG, Tree, write_config


@pytest.fixture
def web_cli(tree: Tree) -> Cli:
    write_config(tree.root, CONFIG + "web:\n  users: web-users\n")
    return Cli(tree)


def users_path(cli: Cli) -> Path:
    return cli.tree.config.parent / "web-users"


def passwd(cli: Cli, user: str, password: str) -> tuple[int, str]:
    result = cli.runner.invoke(
        main,
        ["--config", str(cli.tree.config), "web", "passwd", user, "--password-stdin"],
        input=password + "\n",
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_passwd_creates_a_private_file_adds_and_changes_users(web_cli: Cli) -> None:
    code, out = passwd(web_cli, "alice", "correct horse")
    assert code == 0 and f"added alice in {users_path(web_cli)} (mode 0600)" in out
    path = users_path(web_cli)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert passwd(web_cli, "bob", "battery staple")[0] == 0
    first = read_users(path)
    assert first["alice"].startswith("$argon2id$") and "correct horse" not in path.read_text()
    code, out = passwd(web_cli, "alice", "new password!")
    assert code == 0 and "changed the password of alice" in out
    users = read_users(path)
    assert users["bob"] == first["bob"] and users["alice"] != first["alice"]
    assert verify(users, "alice", "new password!") and not verify(users, "alice", "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_passwd_refuses_bad_input_and_changes_nothing(web_cli: Cli) -> None:
    assert passwd(web_cli, "alice", "correct horse")[0] == 0
    before = users_path(web_cli).read_bytes()
    code, out = passwd(web_cli, "alice", "short")
    assert code == 1 and "shorter than 8 characters" in out
    code, out = passwd(web_cli, "al ice", "correct horse")
    assert code == 1 and "'al ice' is not a user name" in out
    assert users_path(web_cli).read_bytes() == before


def test_passwd_without_a_terminal_or_flag_says_what_to_do(web_cli: Cli) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, "--config", str(web_cli.tree.config), "web", "passwd", "a"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "stdin is not a terminal: give --password-stdin" in proc.stderr
    assert not users_path(web_cli).exists()


def test_passwd_needs_a_users_file_in_the_config(cli: Cli) -> None:
    result = cli("web", "passwd", "alice", "--password-stdin")
    assert result.exit_code == 1
    assert "names no users file; add to it" in result.output and "users: web-users" in result.output


def test_a_damaged_users_file_is_named_with_its_line(web_cli: Cli) -> None:
    users_path(web_cli).write_text("alice:$argon2id$v=19$x\nbob plain-text-password\n")
    code, out = passwd(web_cli, "carol", "correct horse")
    assert code == 1 and f"{users_path(web_cli)}:2: expected USER:$argon2id$" in out
    result = web_cli("web", "--bind", "127.0.0.1:0")  # refused before it listens
    assert result.exit_code == 1 and f"{users_path(web_cli)}:2:" in result.output


def test_web_refuses_a_missing_users_file(web_cli: Cli) -> None:
    result = web_cli("web", "--bind", "127.0.0.1:0")
    assert result.exit_code == 1
    assert "no such file; create it with `survivor web passwd USER`" in result.output


def test_web_refuses_a_trusted_header_off_loopback(tree: Tree) -> None:
    write_config(tree.root, CONFIG + "web:\n  trust_header: X-Remote-User\n")
    result = Cli(tree)("web", "--bind", "0.0.0.0:0")
    assert result.exit_code == 2
    assert "web.trust_header" in result.output and "needs a loopback bind" in result.output


def test_a_bad_bind_in_the_config_is_its_file_and_line(tree: Tree) -> None:
    write_config(tree.root, CONFIG + "web:\n  bind: nowhere\n")
    result = Cli(tree)("web")
    assert result.exit_code == 1
    assert f"{tree.config}:" in result.output and "'nowhere' is not HOST:PORT" in result.output
