"""Names that become paths: hosts, checks, call lists, people (DESIGN §5).

Checked in `config/build`, in the CLI and again where a path is made (`store`).
"""

from __future__ import annotations

import re

from survivor.errors import UnsafeNameError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NAME_RE = re.compile(rf"\A{NAME_PATTERN}\Z")


def is_safe_name(name: object) -> bool:
    """True when `name` can become one path component: no `/`, no `..`, no leading dot."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and ".." not in name


def check_name(name: object, what: str = "name") -> str:
    """Return `name` if it is safe as a path component, else raise UnsafeNameError."""
    if not is_safe_name(name):
        raise UnsafeNameError(
            f"{what} {name!r} is not allowed: names must match {NAME_PATTERN} and contain no '..'"
        )
    assert isinstance(name, str)
    return name
