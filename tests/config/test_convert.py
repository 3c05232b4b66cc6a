"""Converters: each good spelling gives the right value, each bad one a message naming it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survivor.config import convert
from survivor.model.config import WeekTime


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        (" 1h 30m ", 5400),
        ("0s", 0),
    ],
)
def test_duration_accepts_units_and_combinations(text: str, seconds: int) -> None:
    assert convert.duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (45, "duration 45 has no unit"),
        ("45", "duration '45' has no unit"),
        (1.5, "duration 1.5 has no unit"),
        ("5x", "'5x' is not a duration"),
        ("30m1h", "'30m1h' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("", "'' is not a duration"),
        (True, "True is not a duration"),
        (None, "None is not a duration"),
    ],
)
def test_duration_refuses_bare_numbers_and_garbage(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        convert.duration(value)


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_duration_round_trips_through_its_canonical_spelling(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = convert.format_duration(value)
    assert convert.duration(text) == value


@given(
    st.lists(st.integers(min_value=0, max_value=500), min_size=5, max_size=5),
)
def test_duration_sums_written_parts(parts: list[int]) -> None:
    weeks, days, hours, minutes, seconds = parts
    text = f"{weeks}w{days}d{hours}h{minutes}m{seconds}s"
    expected = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert convert.duration(text) == expected


def test_format_duration_refuses_fractions() -> None:
    with pytest.raises(ValueError, match="whole"):
        convert.format_duration(timedelta(seconds=1.5))


@pytest.mark.parametrize(
    ("text", "minute"), [("08:00", 480), ("8:00", 480), ("00:00", 0), ("23:59", 1439)]
)
def test_time_of_day(text: str, minute: int) -> None:
    assert convert.time_of_day(text) == minute


@pytest.mark.parametrize("text", ["24:00", "8:60", "800", "8:0", "08:00:00", "noon"])
def test_time_of_day_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        convert.time_of_day(text)


def test_time_of_day_explains_a_number() -> None:
    with pytest.raises(ValueError, match="is a number: write it as a quoted 'HH:MM'"):
        convert.time_of_day(540)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fri 18:00", WeekTime(minute=1080, day=4)),
        ("friday 18:00", WeekTime(minute=1080, day=4)),
        ("Mon 7:59", WeekTime(minute=479, day=0)),
        ("18:00", WeekTime(minute=1080)),
    ],
)
def test_week_time(text: str, expected: WeekTime) -> None:
    assert convert.week_time(text) == expected


@pytest.mark.parametrize("text", ["funday 18:00", "fri 18:00 utc", "fri", "fri 25:00"])
def test_week_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        convert.week_time(text)


@pytest.mark.parametrize(
    ("value", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon-wed,fri", {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("sun-sun", {6}),
        ("Monday - Tuesday", {0, 1}),
        (["tue", "thu-fri"], {1, 3, 4}),
    ],
)
def test_day_set(value: object, days: set[int]) -> None:
    assert convert.day_set(value) == frozenset(days)


@pytest.mark.parametrize("value", ["mon-funday", "", "mon,,tue", 5, ["mon", 3]])
def test_day_set_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        convert.day_set(value)


def test_return_codes() -> None:
    assert convert.return_codes(1) == frozenset({1})
    assert convert.return_codes([1, 5, 20]) == frozenset({1, 5, 20})
    for bad in ([], [8], 1001, True, "1", [1, None]):
        with pytest.raises(ValueError):
            convert.return_codes(bad)


def test_boolean_is_strict() -> None:
    assert convert.boolean(True) is True
    assert convert.boolean(False) is False
    for bad in ("yes", "on", "true", 1, None):
        with pytest.raises(ValueError, match="write true or false"):
            convert.boolean(bad)


def test_size() -> None:
    assert convert.size(4096) == 4096
    assert convert.size("64KiB") == 65536
    assert convert.size("1MiB") == 1048576
    assert convert.size("512B") == 512
    # K, M, G, T as in systemd's MemoryMax= (powers of 1024), for a check's limits: memory
    assert convert.size("512M") == 512 << 20
    assert convert.size("2G") == 2 << 30
    assert convert.size("64K") == 64 << 10
    assert convert.size("1T") == 1 << 40
    for bad in ("1MB", -1, "KiB", 1.5, True, "2g", "M"):
        with pytest.raises(ValueError):
            convert.size(bad)


def test_template_fields_and_expansion() -> None:
    assert convert.template_fields("-H") == ()
    assert convert.template_fields("{host}:{vars.port}") == ("host", "vars.port")
    assert convert.template_fields("{{literal}}") == ()
    text = "--url=http://{address}:{vars.port}/{{x}}"
    assert (
        convert.expand_template(text, "web1", "192.0.2.1", {"port": 80})
        == "--url=http://192.0.2.1:80/{x}"
    )
    assert convert.expand_template("{host}", "web1", "a", {}) == "web1"
    assert convert.expand_template("{vars.on}", "web1", "a", {"on": True}) == "true"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{hots}", "unknown placeholder {hots}"),
        ("{vars.}", "unknown placeholder {vars.}"),
        ("{host", "unmatched '{'"),
        ("a}", "unmatched '}'"),
    ],
)
def test_template_fields_refuse_typos(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        convert.template_fields(text)
