"""Pure converters from YAML scalars to typed values.

Every converter takes what the YAML loader produced (usually a `str`, sometimes
an `int`) and either returns the typed value or raises `ValueError` with a
message that names the bad value and says what would have been accepted. The
builder adds `file:line` and the name of the thing being defined.

Nothing here knows about the config tree; the functions are small enough to be
tested one by one and with hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from survivor.model.codes import is_valid_code
from survivor.model.config import WEEKDAY_NAMES, WeekTime

# --------------------------------------------------------------------------- booleans


def boolean(value: object) -> bool:
    """Only YAML `true`/`false`: `yes`, `on`, `1` are refused, not guessed at."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not a boolean: write true or false")


# --------------------------------------------------------------------------- durations

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(
    r"\A\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*\Z"
)


def duration(value: object) -> timedelta:
    """`45s`, `5m`, `2h`, `1d`, `1w` and combinations in that order (`1h30m`).

    A bare number is refused rather than read as seconds: `timeout: 5` is as
    likely to mean minutes as seconds, and a monitor should not guess.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a duration: write e.g. 45s, 5m, 2h, 1d or 1h30m")
    if isinstance(value, int | float):
        raise ValueError(
            f"duration {value!r} has no unit: write e.g. '{value}s' or '{value}m'"
            " (s, m, h, d, w; combined as in 1h30m)"
        )
    match = _DURATION_RE.match(value)
    if match is None or not any(match.groups()):
        if value.strip().isdigit():
            raise ValueError(
                f"duration {value!r} has no unit: write e.g. '{value.strip()}s' or "
                f"'{value.strip()}m' (s, m, h, d, w; combined as in 1h30m)"
            )
        raise ValueError(
            f"{value!r} is not a duration: write e.g. 45s, 5m, 2h, 1d or 1h30m "
            "(units w, d, h, m, s in that order)"
        )
    seconds = 0
    for amount, unit in zip(match.groups(), "wdhms", strict=True):
        if amount is not None:
            seconds += int(amount) * _UNIT_SECONDS[unit]
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The canonical spelling of a whole-second duration: `1d2h30m`, `45s`, `0s`."""
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds() or seconds < 0:
        raise ValueError(f"{value!r} is not a whole, non-negative number of seconds")
    if seconds == 0:
        return "0s"
    parts = []
    for unit in "wdhms":
        amount, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


# --------------------------------------------------------------------------- sizes

_SIZE_RE = re.compile(r"\A\s*(\d+)\s*(B|KiB|MiB|GiB|TiB|K|M|G|T)?\s*\Z")
# K, M, G and T are powers of 1024, as in systemd's MemoryMax= and `ulimit`.
_SIZE_UNITS = {None: 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_UNITS.update({"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4})


def size(value: object) -> int:
    """A byte count: an integer or `512B`, `64KiB`/`64K`, `1MiB`/`1M`, `2GiB`/`2G`, `1T`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"size {value} is negative")
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is not None:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise ValueError(
        f"{value!r} is not a size: write a number of bytes or e.g. 64K, 512M, 2G"
        " (powers of 1024; KiB, MiB, GiB too)"
    )


# --------------------------------------------------------------------------- days and times

_DAY_NUMBERS: dict[str, int] = {}
for _number, _short in enumerate(WEEKDAY_NAMES):
    _DAY_NUMBERS[_short] = _number
for _number, _long in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
):
    _DAY_NUMBERS[_long] = _number
_DAY_NUMBERS.update({"tues": 1, "thur": 3, "thurs": 3})

_TIME_RE = re.compile(r"\A([01]?\d|2[0-3]):([0-5]\d)\Z")


def weekday(value: str) -> int:
    """`mon`/`monday` (any case) -> 0 ... `sun`/`sunday` -> 6."""
    number = _DAY_NUMBERS.get(value.strip().lower())
    if number is None:
        raise ValueError(f"{value!r} is not a day of the week: write mon, tue, ... or monday ...")
    return number


def time_of_day(value: object) -> int:
    """`08:00` or `8:00` -> minutes after midnight; `24:00` and `8:60` are refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"time of day {value!r} is a number: write it as a quoted 'HH:MM' such as '08:00'"
        )
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time of day: write 'HH:MM' such as '08:00'")
    match = _TIME_RE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time of day: write HH:MM from 00:00 to 23:59")
    return int(match.group(1)) * 60 + int(match.group(2))


def week_time(value: object) -> WeekTime:
    """`18:00` -> WeekTime(1080); `fri 18:00` / `friday 18:00` -> WeekTime(1080, day=4)."""
    if not isinstance(value, str):
        return WeekTime(time_of_day(value))  # raises with the number hint
    words = value.split()
    if len(words) == 1:
        return WeekTime(time_of_day(words[0]))
    if len(words) == 2:
        return WeekTime(time_of_day(words[1]), day=weekday(words[0]))
    raise ValueError(f"{value!r} is not a time: write 'HH:MM' or 'DAY HH:MM' such as 'fri 18:00'")


def day_set(value: object) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `mon-wed,fri`, `fri-mon` (wraps) or a list of those.

    Returns weekday numbers, 0 = Monday ... 6 = Sunday.
    """
    items: Iterable[object]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ValueError(f"{value!r} is not a set of days: write e.g. mon-fri or sat,sun")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{item!r} is not a day or day range: write e.g. mon-fri")
        first, dash, last = item.partition("-")
        start = weekday(first)
        if not dash:
            days.add(start)
            continue
        end = weekday(last)
        day = start
        days.add(day)
        while day != end:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


# --------------------------------------------------------------------------- return codes


def return_code(value: object) -> int:
    """A code an alert plan may name: 0-7 or custom 20-1000."""
    if not is_valid_code(value):
        raise ValueError(f"{value!r} is not a return code: use 0-7 or a custom code 20-1000")
    assert isinstance(value, int)
    return value


def return_codes(value: object) -> frozenset[int]:
    """One return code or a non-empty list of them."""
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("the list of return codes is empty")
        return frozenset(return_code(v) for v in value)
    return frozenset((return_code(value),))


# --------------------------------------------------------------------------- argv templates

_FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_fields(text: str) -> tuple[str, ...]:
    """The placeholders in one argv item: `host`, `address` or `vars.NAME`.

    `{{` and `}}` are literal braces; any other brace, or an unknown placeholder,
    is refused here so that a typo fails at load time instead of at 3 a.m.
    """
    if "{" not in text and "}" not in text:
        return ()
    fields: list[str] = []
    for match in _FIELD_RE.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(
                f"{text!r} has an unmatched {token!r}: write {token * 2!r} for a literal brace"
            )
        if name not in ("host", "address") and not (
            name.startswith("vars.") and len(name) > len("vars.")
        ):
            raise ValueError(
                f"{text!r} has an unknown placeholder {{{name}}}: "
                "use {host}, {address} or {vars.NAME}"
            )
        fields.append(name)
    return tuple(fields)


def template_value(value: object) -> str:
    """How a host variable is written into an argv item (whole value, no shell)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"{value!r} cannot be written into an argv item: use a string or number")


def expand_template(text: str, host: str, address: str, variables: Mapping[str, Any]) -> str:
    """Expand one argv item for one host; the config loader has already checked it."""
    if "{" not in text and "}" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name == "host":
            return host
        if name == "address":
            return address
        if name is not None and name.startswith("vars.") and name[5:] in variables:
            return template_value(variables[name[5:]])
        raise ValueError(f"cannot expand {token!r} in {text!r} for host {host!r}")

    return _FIELD_RE.sub(replace, text)
