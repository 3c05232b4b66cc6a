"""Counted nouns for messages people read: "1 problem", "2 problems", "1 alert was"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun in the right number: counted(1, "file") -> "1 file"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
