"""Numbers in text people read: counted nouns ("1 problem", "2 problems") and scalars."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun in the right number: counted(1, "file") -> "1 file"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def scalar_text(value: float) -> str:
    """A check's scalar for people: 25330500000, 0.4, 1234567.5, never 2.53305e+10.

    Whole numbers (bytes, counts) keep every digit; fractions keep six
    significant digits (or all their whole digits); only the very small or very
    large use an exponent.
    """
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e18:
        return str(int(value))
    if abs(value) < 1:
        return f"{value:.6g}"  # an exponent only below 0.0001
    if abs(value) < 1e15:
        digits = max(0, 6 - len(str(int(abs(value)))))
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return f"{value:g}"
