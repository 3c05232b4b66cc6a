"""Strict YAML: one file's text as marked values, refusing what PyYAML would guess.

Three things PyYAML does not do by itself:

* **No YAML 1.1 surprises.** Scalars are resolved like YAML 1.2's core schema:
  only `true`/`false` are booleans (`yes`, `on`, `no` stay strings), integers
  are decimal, `0o` or `0x` (`9:00` is not base 60, `0755` is not octal: both
  stay strings, like `08:00`), no timestamps, no `=`.
* **Every value remembers where it was written.** Mappings load as `MMap` and
  sequences as `MList`: ordinary dicts and lists that keep their YAML node, so
  the builder can put `file:line` on a semantic error without a second pass.
* **Refusals.** Duplicate keys (naming both lines), unknown tags, alias
  expansion beyond a budget (the "billion laughs"), recursive aliases.

Parsing and composing run in libyaml when PyYAML has it (`yaml.__with_libyaml__`);
the nodes keep their marks, so nothing is lost by using the C parser, and the
walk that turns nodes into values is one linear pass in Python. The cyclic
garbage collector is paused during that work: a big config creates hundreds of
thousands of containers and, with the collector running, loading is several
times slower for nothing (nothing built here is cyclic).

This module knows YAML, not Survivor: which files are read and how their
sections merge is `config.load`'s job, what the values mean is `config.build`'s.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import BaseResolver

from survivor.config.marked import MList, MMap
from survivor.errors import ConfigProblem

# --------------------------------------------------------------------------- budgets

MAX_ALIAS_USES = 10_000  # aliases of mappings/sequences met while building one file
MAX_ALIAS_NODES = 100_000  # values built again because they were reached through an alias
MAX_ALIAS_CHARS = 10_000_000  # characters of long strings repeated through aliases
MAX_DEPTH = 100  # nesting of mappings and sequences
LONG_SCALAR = 256  # strings at least this long are tracked for the character budget

# --------------------------------------------------------------------------- resolution

STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"

_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:(?:0|[1-9][0-9]*)\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_NUMBER_START = frozenset("0123456789+-.")
_WORD_TAGS = {
    "true": BOOL_TAG,
    "True": BOOL_TAG,
    "TRUE": BOOL_TAG,
    "false": BOOL_TAG,
    "False": BOOL_TAG,
    "FALSE": BOOL_TAG,
    "null": NULL_TAG,
    "Null": NULL_TAG,
    "NULL": NULL_TAG,
    "~": NULL_TAG,
    "<<": MERGE_TAG,
}


def resolve_plain(value: str) -> str:
    """The tag of an untagged, unquoted scalar under the YAML 1.2 core rules."""
    if not value:
        return NULL_TAG
    if value[0] in _NUMBER_START:
        if _INT_RE.fullmatch(value):
            return INT_TAG
        if _FLOAT_RE.fullmatch(value):
            return FLOAT_TAG
        return STR_TAG
    return _WORD_TAGS.get(value, STR_TAG)


class _CoreResolver(BaseResolver):
    """Replaces PyYAML's regex table with `resolve_plain`: same job, one dict lookup."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return STR_TAG
            if value and value[0] not in _NUMBER_START:
                return _WORD_TAGS.get(value, STR_TAG)
            return resolve_plain(value)
        return SEQ_TAG if kind is SequenceNode else MAP_TAG


if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class StrictLoader(CParser, _CoreResolver):
        """libyaml's parser and composer with core-schema resolution; marks kept."""

        def __init__(self, stream: str | bytes) -> None:
            CParser.__init__(self, stream)
            _CoreResolver.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class StrictLoader(Reader, Scanner, Parser, Composer, _CoreResolver):  # type: ignore[no-redef]
        """PyYAML's pure-Python parser and composer with core-schema resolution."""

        def __init__(self, stream: str | bytes) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _CoreResolver.__init__(self)


class LoadFailure(Exception):
    """A file cannot be used at all (unreadable, bad syntax, bomb); carries its problem."""

    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


# --------------------------------------------------------------------------- node -> value


def _parse_int(text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _parse_float(text: str) -> float:
    if not _FLOAT_RE.fullmatch(text) and not _INT_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    return float(text)


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{text!r} is not a boolean: write true or false")
    return text.lower() == "true"


def _parse_null(text: str) -> None:
    if _WORD_TAGS.get(text, NULL_TAG if text == "" else None) != NULL_TAG:
        raise ValueError(f"{text!r} is not null")


_SCALAR_PARSERS = {
    INT_TAG: _parse_int,
    FLOAT_TAG: _parse_float,
    BOOL_TAG: _parse_bool,
    NULL_TAG: _parse_null,
}


class _Builder:
    """Turns one document's node graph into MMap/MList/scalars, once, linearly.

    An alias makes the graph a DAG; values reached through an alias are built
    again (modules get plain data), so the work they cause is counted and
    capped. Recursion through aliases is refused outright.
    """

    __slots__ = (
        "active",
        "alias_chars",
        "alias_nodes",
        "alias_uses",
        "file",
        "long_scalars",
        "problems",
        "seen",
    )

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.long_scalars: set[int] = set()
        self.alias_uses = 0
        self.alias_nodes = 0
        self.alias_chars = 0

    def fail(self, node: Node, message: str) -> LoadFailure:
        return LoadFailure(ConfigProblem(self.file, node.start_mark.line + 1, message))

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, node.start_mark.line + 1, message))

    def scalar(self, node: Node) -> Any:
        parse = _SCALAR_PARSERS.get(node.tag)
        if parse is None:
            if node.tag != STR_TAG:
                self.problem(node, f"unsupported YAML tag {node.tag!r}")
                return None
            return node.value
        try:
            return parse(node.value)
        except ValueError as exc:
            self.problem(node, f"{exc} (tagged {node.tag!r})")
            return None

    def long_scalar(self, node: Node, aliased: bool) -> None:
        """Count a long string met again through an alias (a quadratic blow-up otherwise)."""
        if aliased or id(node) in self.long_scalars:
            self.alias_chars += len(node.value)
            if self.alias_chars > MAX_ALIAS_CHARS:
                raise self.fail(
                    node,
                    f"YAML aliases repeat more than {MAX_ALIAS_CHARS} characters; refusing the "
                    "file (this looks like an alias bomb)",
                )
        else:
            self.long_scalars.add(id(node))

    def value(self, node: Node, aliased: bool, depth: int) -> Any:
        cls = node.__class__
        if cls is ScalarNode:
            if len(node.value) >= LONG_SCALAR:
                self.long_scalar(node, aliased)
            return node.value if node.tag == STR_TAG else self.scalar(node)
        node_id = id(node)
        if node_id in self.seen:
            if node_id in self.active:
                raise self.fail(node, "recursive alias: a YAML anchor refers to itself")
            aliased = True
            self.alias_uses += 1
            if self.alias_uses > MAX_ALIAS_USES:
                raise self.fail(
                    node,
                    f"more than {MAX_ALIAS_USES} uses of YAML aliases; refusing the file "
                    "(this looks like an alias bomb)",
                )
        else:
            self.seen.add(node_id)
        if aliased:
            self.alias_nodes += len(node.value) + 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise self.fail(
                    node,
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES} values; refusing the "
                    "file (this looks like an alias bomb)",
                )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels")
        self.active.add(node_id)
        try:
            if cls is MappingNode:
                if node.tag != MAP_TAG:
                    self.problem(node, f"unsupported YAML tag {node.tag!r} on a mapping")
                return self.mapping(node, aliased, depth)
            if node.tag != SEQ_TAG:
                self.problem(node, f"unsupported YAML tag {node.tag!r} on a sequence")
            result = MList(
                [
                    item.value
                    if item.__class__ is ScalarNode
                    and item.tag == STR_TAG
                    and len(item.value) < LONG_SCALAR
                    else self.value(item, aliased, depth + 1)
                    for item in node.value
                ]
            )
            result.file = self.file
            result.node = node
            return result
        finally:
            self.active.discard(node_id)

    def mapping(self, node: Node, aliased: bool, depth: int) -> MMap:
        result = MMap()
        result.file = self.file
        result.node = node
        result.merged = ()
        result._lines = None
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                self.problem(key_node, "a mapping key must be a plain string, not a collection")
                continue
            tag = key_node.tag
            if tag == STR_TAG:
                key = key_node.value
            elif tag == MERGE_TAG:
                merges.append(value_node)
                continue
            else:
                key = self.scalar(key_node)
                if not isinstance(key, str):
                    self.problem(
                        key_node,
                        f"mapping key {key_node.value!r} is not a string: quote it "
                        f"('{key_node.value}')",
                    )
                    continue
            if key in result:
                first = next(k for k, _ in node.value if k.value == key)
                self.problem(
                    key_node,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                )
                continue
            if (
                value_node.__class__ is ScalarNode
                and value_node.tag == STR_TAG
                and len(value_node.value) < LONG_SCALAR
            ):
                result[key] = value_node.value
            else:
                result[key] = self.value(value_node, aliased, depth + 1)
        if merges:
            self.merge(result, merges, aliased, depth)
        return result

    def merge(self, result: MMap, merges: list[Node], aliased: bool, depth: int) -> None:
        """`<<: *defaults` (or a list of them): keys written here win, earlier sources next."""
        sources: list[MMap] = []
        for merge_node in merges:
            nodes = merge_node.value if merge_node.__class__ is SequenceNode else [merge_node]
            for source_node in nodes:
                if source_node.__class__ is not MappingNode:
                    self.problem(source_node, "'<<' merges only mappings (e.g. <<: *defaults)")
                    continue
                sources.append(self.value(source_node, aliased, depth + 1))
        for source in sources:
            for key, value in source.items():
                if key not in result:
                    result[key] = value
        result.merged = tuple(sources)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic GC (see the module docstring); restore its previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_yaml(text: str | bytes, file: str, problems: list[ConfigProblem]) -> Any:
    """One YAML document as marked values; None for an empty document.

    Problems that spoil one value (duplicate key, odd tag) are appended to
    `problems` and loading goes on; problems that spoil the file raise LoadFailure.
    """
    with collector_paused():
        loader = StrictLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = 0 if mark is None else mark.line + 1
            column = "" if mark is None else f" (column {mark.column + 1})"
            what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
            raise LoadFailure(
                ConfigProblem(file, line, f"YAML syntax error: {what}{column}")
            ) from None
        except ReaderError as exc:
            newline: Any = b"\n" if isinstance(text, bytes) else "\n"
            line = text[: exc.position].count(newline) + 1
            raise LoadFailure(
                ConfigProblem(file, line, f"cannot decode: {exc.reason} (byte {exc.position})")
            ) from None
        except yaml.YAMLError as exc:
            raise LoadFailure(ConfigProblem(file, 0, f"YAML error: {exc}")) from None
        except RecursionError:
            raise LoadFailure(ConfigProblem(file, 0, "YAML nested too deeply")) from None
        finally:
            loader.dispose()
        if node is None:
            return None
        return _Builder(file, problems).value(node, False, 0)
