"""Marked values: YAML mappings and sequences that remember where each item was written.

`config.yaml` loads every mapping as an `MMap` and every sequence as an
`MList`: ordinary dicts and lists that keep their YAML node, so that the
builders can put `file:line` on a semantic error without a second pass.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node


class MMap(dict[str, Any]):
    """A YAML mapping (string keys) that can say on which line each key and value is."""

    __slots__ = ("_lines", "file", "merged", "node")

    file: str
    node: Node
    merged: tuple[MMap, ...]  # mappings pulled in with `<<`, for their keys' lines
    _lines: dict[str, tuple[int, int]] | None

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def key_line(self, key: str) -> int:
        """The line of `key` (the mapping's own line when the key is absent)."""
        found = self._line_pair(key)
        return self.line if found is None else found[0]

    def value_line(self, key: str) -> int:
        """The line where the value of `key` starts."""
        found = self._line_pair(key)
        return self.line if found is None else found[1]

    def _line_pair(self, key: str) -> tuple[int, int] | None:
        if self._lines is None:
            lines: dict[str, tuple[int, int]] = {}
            for key_node, value_node in self.node.value:
                if isinstance(key_node.value, str) and key_node.value not in lines:
                    lines[key_node.value] = (
                        key_node.start_mark.line + 1,
                        value_node.start_mark.line + 1,
                    )
            self._lines = lines
        found = self._lines.get(key)
        if found is None:
            for source in self.merged:
                if key in source:
                    return (source.key_line(key), source.value_line(key))
        return found


class MList(list[Any]):
    """A YAML sequence that can say on which line each item is."""

    __slots__ = ("file", "node")

    file: str
    node: Node

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def item_line(self, index: int) -> int:
        return int(self.node.value[index].start_mark.line) + 1
