"""Selections: which check@host pairs an operator means by `HOST`, `HOST/CHECK`, `*/CHECK`
or `--group G`, resolved against the configuration.

Pure: the config is an argument and nothing is read or written, so the CLI,
the config loader (a `downtimes:` window's selection), the alert scheduler and
the tests resolve the same way; a core module for that reason, below `config`. Every selector must
match at least one configured pair; one that does not is an error naming it,
with a "did you mean" when the name looks like a typo.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from survivor.errors import SurvivorError
from survivor.model.config import Config
from survivor.model.names import is_safe_name

ANY = "*"

SELECTION_HELP = (
    "SELECTION is HOST (all its checks), HOST/CHECK (also CHECK@HOST, Survivor's spelling), "
    "'*/CHECK' (that check on every host), or --group G (a group or a class); "
    "several may be given."
)


class SelectionError(SurvivorError, ValueError):
    """A selector is malformed or matches nothing configured; the message names it."""


@dataclass(frozen=True, slots=True)
class Selector:
    """One selector as typed: a host (or None for `*`), a check (or None for all), or a group."""

    text: str
    host: str | None = None
    check: str | None = None
    group: str | None = None

    def to_text(self) -> str:
        if self.group is not None:
            return f"--group {self.group}"
        return self.text


def parse_selector(text: str) -> Selector:
    """`HOST`, `HOST/CHECK`, `CHECK@HOST`, `*/CHECK` or `HOST/*` -> a Selector (names checked)."""
    spec = text.strip()
    if "/" in spec:
        host, _, check = spec.partition("/")
    elif "@" in spec:
        check, _, host = spec.partition("@")
    else:
        host, check = spec, ANY
    if host == ANY and check == ANY:
        raise SelectionError(f"{text!r} selects everything; name a host, a check or a group")
    if host != ANY and not is_safe_name(host):
        raise SelectionError(f"{text!r}: {host!r} is not a valid host name")
    if check != ANY and not is_safe_name(check):
        raise SelectionError(f"{text!r}: {check!r} is not a valid check name")
    return Selector(
        text=spec,
        host=None if host == ANY else host,
        check=None if check == ANY else check,
    )


def group_selector(name: str) -> Selector:
    if not is_safe_name(name):
        raise SelectionError(f"--group {name!r} is not a valid group name")
    return Selector(text=f"--group {name}", group=name)


def parse_selection(texts: Iterable[str], groups: Iterable[str] = ()) -> list[Selector]:
    """Every positional selector and every --group, in the order given."""
    return [*(parse_selector(t) for t in texts), *(group_selector(g) for g in groups)]


def resolve(config: Config, selectors: Iterable[Selector]) -> list[tuple[str, str]]:
    """The (host, check) pairs selected, in config order, each once.

    Raises SelectionError naming every selector that matches nothing.
    """
    wanted: set[tuple[str, str]] = set()
    problems: list[str] = []
    for sel in selectors:
        try:
            found = set(_matches(config, sel))
        except SelectionError as err:
            problems.append(str(err))
            continue
        wanted |= found
    if problems:
        raise SelectionError("; ".join(problems))
    return [(h.name, c.name) for c, h in config.pairs() if (h.name, c.name) in wanted]


def _matches(config: Config, sel: Selector) -> Iterator[tuple[str, str]]:
    nothing = f"nothing configured matches {sel.to_text()!r}"
    if sel.group is not None:
        hosts = _group_hosts(config, sel.group, nothing)
        found = [(h, c.name) for c in config.checks.values() for h in c.hosts if h in hosts]
        if not found:
            raise SelectionError(f"{nothing}: no check runs on its hosts")
        yield from found
        return
    if sel.host is not None and sel.host not in config.hosts:
        raise SelectionError(
            f"{nothing}: no host named {sel.host!r} in {config.path}"
            f"{did_you_mean(sel.host, config.hosts)}"
        )
    if sel.check is not None and sel.check not in config.checks:
        raise SelectionError(
            f"{nothing}: no check named {sel.check!r} in {config.path}"
            f"{did_you_mean(sel.check, config.checks)}"
        )
    if sel.check is None:
        assert sel.host is not None
        found = [(sel.host, c.name) for c in config.checks.values() if sel.host in c.host_set]
        if not found:
            raise SelectionError(f"{nothing}: no check runs on host {sel.host}")
        yield from found
        return
    checkdef = config.checks[sel.check]
    if sel.host is None:
        if not checkdef.hosts:
            raise SelectionError(f"{nothing}: check {sel.check} runs on no host")
        yield from ((h, sel.check) for h in checkdef.hosts)
        return
    if sel.host not in checkdef.host_set:
        shown = ", ".join(checkdef.hosts[:8]) + (", ..." if len(checkdef.hosts) > 8 else "")
        raise SelectionError(
            f"{nothing}: check {sel.check} does not run on host {sel.host} "
            f"(it runs on: {shown or 'none'})"
        )
    yield sel.host, sel.check


def _group_hosts(config: Config, name: str, nothing: str) -> set[str]:
    if name in config.groups:
        return set(config.groups[name].hosts)
    if name in config.classes:
        return set(config.classes[name].hosts)
    raise SelectionError(
        f"{nothing}: no group or class named {name!r} in {config.path}"
        f"{did_you_mean(name, [*config.groups, *config.classes])}"
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(selectors: Iterable[Selector]) -> str:
    """The selection as the operator would type it again."""
    return " ".join(s.to_text() for s in selectors)
