"""The web page's password file: `USER:ARGON2-HASH` lines, mode 0600 (`web.users`).

`survivor web passwd USER` adds or changes a user; `survivor web` reads the
file at every login, so a changed password counts at once. Hashes are
argon2id (argon2-cffi, the reference implementation's binding, with its
default parameters: 64 MiB, 3 passes), never stored or compared in clear.
A login for an unknown user is checked against a dummy hash, so the answer
takes as long as for a known one and does not tell which names exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from survivor.errors import SurvivorError
from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter

USER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
_USER = re.compile(USER_PATTERN)
FILE_MODE = 0o600
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("survivor: no such user")


class PasswordFileError(SurvivorError):
    """The password file cannot be read or has a bad line; the message names file:line."""


def is_user_name(name: str) -> bool:
    return _USER.fullmatch(name) is not None


def read_users(path: Path) -> dict[str, str]:
    """user -> hash. PasswordFileError naming the file (and line) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PasswordFileError(
            f"{path}: no such file; create it with `survivor web passwd USER`"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise PasswordFileError(f"{path}: cannot read: {getattr(err, 'strerror', err)}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not is_user_name(user) or not hashed.startswith("$argon2"):
            raise PasswordFileError(
                f"{path}:{number}: expected USER:$argon2id$... (write it with "
                "`survivor web passwd USER`)"
            )
        if user in users:
            raise PasswordFileError(f"{path}:{number}: user {user!r} is listed twice")
        users[user] = hashed
    return users


def verify(users: Mapping[str, str], user: str, password: str) -> bool:
    """Whether `password` is `user`'s; as slow for an unknown user as for a known one."""
    hashed = users.get(user)
    try:
        _hasher.verify(_DUMMY if hashed is None else hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return hashed is not None


def set_password(path: Path, user: str, password: str) -> bool:
    """Add `user` or change their password; the file is replaced atomically, mode 0600.

    Returns True when the user was new. Other users' lines (and comments) are kept.
    """
    if not is_user_name(user):
        raise PasswordFileError(f"{user!r} is not a user name (it must match {USER_PATTERN})")
    if len(password) < MIN_PASSWORD:
        raise PasswordFileError(f"the password is shorter than {MIN_PASSWORD} characters")
    lines: list[str] = []
    if path.exists():
        read_users(path)  # refuse to rewrite a file we do not understand
        lines = path.read_text(encoding="utf-8").splitlines()
    entry = f"{user}:{_hasher.hash(password)}"
    new = True
    for index, line in enumerate(lines):
        if line.partition(":")[0] == user and not line.startswith("#"):
            lines[index] = entry
            new = False
    if new:
        lines.append(entry)
    FileWriter(FsyncPolicy.ALWAYS).replace(path, ("\n".join(lines) + "\n").encode(), mode=FILE_MODE)
    return new
