"""The two check protocols of DESIGN.md §4, as pure functions over bytes.

Building the stdin documents and reading what modules and plugins print is
kept apart from running them (`runner`), so every odd output a module can
produce is tested here without a process: torn lines, binary junk, unknown
hosts, perfdata in all the shapes the monitoring-plugins guidelines allow.

Nothing here raises on bad module output: bad output becomes a MISCONFIG
result whose comment says what the module printed. Only bad *configuration*
(an argv template naming a var the host lacks) raises `ValueError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from survivor.config.convert import expand_template, template_fields
from survivor.model.codes import ReturnCode, is_valid_code
from survivor.model.config import Host
from survivor.model.work import CheckResult, PerfDatum

PROTOCOL_VERSION = 1
COMMENT_MAX = 1000  # characters of a comment kept in state and history
QUOTE_MAX = 200  # characters of a bad output line quoted in a MISCONFIG comment

__all__ = [
    "COMMENT_MAX",
    "PROTOCOL_VERSION",
    "QUOTE_MAX",
    "argv_placeholders",
    "check_request",
    "expand_argv",
    "fix_request",
    "parse_check_output",
    "parse_fix_output",
    "parse_perfdata",
    "parse_plugin_output",
]

# --------------------------------------------------------------------------- requests


def check_request(
    check: str, args: Mapping[str, Any], hosts: Sequence[Host], timeout: float
) -> bytes:
    """The stdin document of a Survivor-protocol check module, one JSON line."""
    return _document(
        {
            "version": PROTOCOL_VERSION,
            "kind": "check",
            "check": check,
            "timeout": _seconds_value(timeout),
            "args": args,
            "hosts": [host.to_dict() for host in hosts],
        }
    )


def fix_request(fix: str, host: Host, args: Mapping[str, Any], timeout: float, check: str) -> bytes:
    """The stdin document of a fix module: `host` is the same object a check module gets."""
    return _document(
        {
            "version": PROTOCOL_VERSION,
            "kind": "fix",
            "fix": fix,
            "check": check,
            "timeout": _seconds_value(timeout),
            "args": args,
            "host": host.to_dict(),
        }
    )


def _document(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=_jsonable).encode() + b"\n"


def _jsonable(value: object) -> Any:
    # Config values are frozen (mapping proxies, tuples, frozensets); modules get plain JSON.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"module argument {value!r} ({type(value).__name__}) cannot be sent as JSON")


def _seconds_value(timeout: float) -> float | int:
    """`30` rather than `30.0` on the wire when the timeout is whole."""
    return int(timeout) if float(timeout).is_integer() else float(timeout)


def _seconds_text(timeout: float) -> str:
    return f"{timeout:g}"


# --------------------------------------------------------------------------- module output


def parse_check_output(
    stdout: bytes,
    hosts: Sequence[str],
    *,
    killed: bool,
    truncated: bool,
    default_duration_ms: int = 0,
) -> dict[str, CheckResult]:
    """One result per host in `hosts` (in that order) from a check module's stdout.

    Each line should be a JSON object `{"host", "rc", "scalar", "comment",
    "duration_ms", "perfdata"}`. The first valid line for a host wins; lines
    for hosts not asked about are ignored. A host without a valid line gets
    TIMEDOUT if the module was `killed`, else MISCONFIG, quoting the first
    unusable line so the operator sees a traceback or usage message at once.
    `default_duration_ms` fills in results that do not report a duration.
    """
    wanted = set(hosts)
    found: dict[str, CheckResult] = {}
    first_bad: str | None = None
    for line in _lines(stdout):
        result = _result_from_line(line, default_duration_ms)
        if result is None or result.host not in wanted:
            if first_bad is None:
                first_bad = line
            continue
        if result.host not in found:
            found[result.host] = result
            if len(found) == len(wanted):
                break
    if len(found) < len(wanted):
        missing = _missing_result(killed, truncated, first_bad)
        for host in hosts:
            if host not in found:
                found[host] = CheckResult(
                    host=host,
                    rc=missing[0],
                    comment=missing[1],
                    duration_ms=default_duration_ms,
                )
    return {host: found[host] for host in hosts}


def parse_fix_output(stdout: bytes, *, killed: bool) -> tuple[int, str]:
    """`(rc, comment)` from the first valid `{"rc", "comment"}` line a fix module printed."""
    first_bad: str | None = None
    for line in _lines(stdout):
        obj = _json_object(line)
        if obj is not None and is_valid_code(obj.get("rc")):
            return int(obj["rc"]), _comment(obj.get("comment"))
        if first_bad is None:
            first_bad = line
    if killed:
        return int(ReturnCode.TIMEDOUT), "timed out after fix module was killed"
    return int(ReturnCode.MISCONFIG), _no_result("no result from fix module", first_bad)


def _lines(stdout: bytes) -> Iterator[str]:
    """Non-blank lines, the torn last one included; bytes that are not UTF-8 become U+FFFD."""
    # split("\n"), not splitlines(): JSON strings may hold U+2028, which splitlines cuts at.
    for raw in stdout.decode("utf-8", errors="replace").split("\n"):
        line = raw.strip()
        if line:
            yield line


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _result_from_line(line: str, default_duration_ms: int) -> CheckResult | None:
    obj = _json_object(line)
    if obj is None:
        return None
    host = obj.get("host")
    rc = obj.get("rc")
    if not isinstance(host, str) or not isinstance(rc, int) or not is_valid_code(rc):
        return None
    scalar_in = obj.get("scalar")
    scalar = _finite(scalar_in)
    if scalar_in is not None and scalar is None:
        return None
    duration = _finite(obj.get("duration_ms"))
    return CheckResult(
        host=host,
        rc=int(rc),
        comment=_comment(obj.get("comment")),
        scalar=scalar,
        duration_ms=int(duration)
        if duration is not None and duration >= 0
        else default_duration_ms,
        perfdata=_perfdata_from_json(obj.get("perfdata")),
    )


def _finite(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _comment(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text[:COMMENT_MAX]


def _perfdata_from_json(value: object) -> tuple[PerfDatum, ...]:
    if isinstance(value, str):
        return parse_perfdata(value)
    if not isinstance(value, list):
        return ()
    items: list[PerfDatum] = []
    for item in value:
        datum = _perfdatum_from_json(item)
        if datum is not None:
            items.append(datum)
    return tuple(items)


def _perfdatum_from_json(item: object) -> PerfDatum | None:
    if not isinstance(item, dict):
        return None
    label = item.get("label")
    raw_value = item.get("value")
    value = _finite(raw_value)
    if not isinstance(label, str) or not label or (raw_value is not None and value is None):
        return None
    uom = item.get("uom", "")
    return PerfDatum(
        label=label,
        value=value,
        uom=uom if isinstance(uom, str) else "",
        warn=_range_text(item.get("warn")),
        crit=_range_text(item.get("crit")),
        min=_finite(item.get("min")),
        max=_finite(item.get("max")),
    )


def _range_text(value: object) -> str | None:
    if isinstance(value, str):
        return value or None
    number = _finite(value)
    return None if number is None else f"{number:g}"


def _missing_result(killed: bool, truncated: bool, first_bad: str | None) -> tuple[int, str]:
    if killed:
        return int(ReturnCode.TIMEDOUT), "timed out after module was killed"
    what = "no result from module"
    if truncated:
        what += " (its output was cut at the output cap)"
    return int(ReturnCode.MISCONFIG), _no_result(what, first_bad)


def _no_result(what: str, first_bad: str | None) -> str:
    if first_bad is None:
        return what
    return f'{what}; it printed: "{_quote(first_bad)}"'


def _quote(line: str) -> str:
    """At most QUOTE_MAX printable characters of an output line."""
    if len(line) > QUOTE_MAX:
        line = line[: QUOTE_MAX - 3] + "..."
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else "?" for c in line)


# --------------------------------------------------------------------------- argv templates


# `{{` and `}}` are literal braces, `{name}` a placeholder, and a lone brace an error,
# exactly as in str.format, which operators already know.
def argv_placeholders(templates: Sequence[str]) -> set[str]:
    """Every placeholder the templates use ({host}, {address}, {vars.NAME}); ValueError on a
    malformed one. The grammar is the config loader's (config.convert), so what loads expands."""
    return {name for template in templates for name in template_fields(template)}


def expand_argv(templates: Sequence[str], host: Host) -> list[str]:
    """The argv for one host: each placeholder replaced by a whole value, never re-split.

    Raises ValueError naming the host and var when the host lacks a var the
    template needs.
    """
    argv: list[str] = []
    for template in templates:
        for name in template_fields(template):
            var = name.removeprefix("vars.")
            if name != var and var not in host.vars:
                raise ValueError(
                    f"host {host.name} has no var {var!r}, which argv template {template!r}"
                    f" needs; add vars: {{{var}: ...}} to the host"
                )
        argv.append(expand_template(template, host.name, host.address, host.vars))
    return argv


_PLUGIN_CODES = {
    0: ReturnCode.OK,
    1: ReturnCode.WARNING,
    2: ReturnCode.PROBLEM,
    3: ReturnCode.MISCONFIG,  # UNKNOWN: the plugin could not tell, which is our MISCONFIG
}
NO_PLUGIN_OUTPUT = "(no output from plugin)"


def parse_plugin_output(
    stdout: bytes,
    exit_status: int | None,
    *,
    killed: bool,
    signal_name: str | None,
    timeout: float,
    duration_ms: int,
    host: str,
) -> CheckResult:
    """A CheckResult from one plugin run, following the Nagios plugin API.

    The comment is the first line up to `|`. Long output (the later lines) is
    not part of the comment: state and history keep one short line per
    result. The one exception is a plugin whose first line is empty: then the
    long text (lines joined with "; ", cut to COMMENT_MAX) is the comment,
    because it is all the operator would have. Perfdata comes from the first
    line after `|` and from the long output after its first `|`, through to
    the end; the first perfdatum's value is the scalar.
    """
    if killed:
        return CheckResult(
            host=host,
            rc=int(ReturnCode.TIMEDOUT),
            comment=f"plugin timed out after {_seconds_text(timeout)} s",
            duration_ms=duration_ms,
        )
    summary, perf_text = _split_plugin_output(stdout.decode("utf-8", errors="replace"))
    perfdata = parse_perfdata(perf_text) if perf_text else ()
    scalar = perfdata[0].value if perfdata else None
    if signal_name is not None:
        rc, comment = int(ReturnCode.MISCONFIG), f"plugin killed by {signal_name}"
    elif exit_status is None:
        rc, comment = int(ReturnCode.MISCONFIG), "plugin ended without an exit status"
    elif exit_status in _PLUGIN_CODES:
        rc, comment = int(_PLUGIN_CODES[exit_status]), summary or NO_PLUGIN_OUTPUT
    else:
        rc = int(ReturnCode.MISCONFIG)
        comment = f"plugin exited with status {exit_status}: {summary or NO_PLUGIN_OUTPUT}"
    return CheckResult(
        host=host,
        rc=rc,
        comment=comment[:COMMENT_MAX],
        scalar=scalar,
        duration_ms=duration_ms,
        perfdata=perfdata,
    )


def _split_plugin_output(text: str) -> tuple[str, str]:
    """`(comment, perfdata text)` of plugin output; see parse_plugin_output."""
    lines = text.split("\n")
    head, bar, perf = lines[0].partition("|")
    summary = head.strip()
    perf_parts = [perf] if bar else []
    long_lines: list[str] = []
    for index in range(1, len(lines)):
        before, bar, after = lines[index].partition("|")
        if bar:
            long_lines.append(before)
            perf_parts.append(after)
            perf_parts.extend(lines[index + 1 :])
            break
        long_lines.append(before)
    if not summary:
        summary = "; ".join(s for s in (line.strip() for line in long_lines) if s)
    return summary[:COMMENT_MAX], " ".join(perf_parts)


# --------------------------------------------------------------------------- perfdata

_SPACE_RE = re.compile(r"\s*")
_TOKEN_RE = re.compile(r"\S+")
# A quoted label may hold spaces, `=` and `''` (an escaped quote); an unquoted one neither.
_ITEM_RE = re.compile(r"'((?:[^']|'')*)'=(\S*)|([^\s'=][^\s=]*)=(\S*)")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# Value plus UOM: the guidelines list s ms us % B KB MB GB TB c; other letters are kept too.
_VALUE_RE = re.compile(rf"({_NUMBER})((?:[^\W\d_]|[%/])*)")
_LIMIT_RE = re.compile(rf"({_NUMBER})(?:[^\W\d_]|[%/])*")


def parse_perfdata(text: str) -> tuple[PerfDatum, ...]:
    """Parse `'label'=value[UOM];[warn];[crit];[min];[max]` items separated by whitespace.

    warn and crit are range strings (`10`, `10:20`, `~:5`, `@1:3`) kept as
    text; min and max are numbers (a unit after them is tolerated). `U` is an
    unknown value. A malformed item is skipped; this never raises.
    """
    items: list[PerfDatum] = []
    pos, end = 0, len(text)
    while True:
        space = _SPACE_RE.match(text, pos)
        pos = space.end() if space else pos
        if pos >= end:
            break
        match = _ITEM_RE.match(text, pos)
        if match is None:
            token = _TOKEN_RE.match(text, pos)
            pos = token.end() if token else end
            continue
        pos = match.end()
        quoted, quoted_value, plain, plain_value = match.groups()
        label = plain if quoted is None else quoted.replace("''", "'")
        datum = _perfdatum(label, plain_value if quoted is None else quoted_value)
        if datum is not None:
            items.append(datum)
    return tuple(items)


def _perfdatum(label: str, spec: str) -> PerfDatum | None:
    if not label:
        return None
    fields = spec.split(";")
    value_field = fields[0]
    if value_field == "U":
        value, uom = None, ""
    else:
        match = _VALUE_RE.fullmatch(value_field)
        if match is None:
            return None
        value = _finite_text(match.group(1))
        if value is None:
            return None
        uom = match.group(2)
    fields += [""] * (5 - len(fields))
    return PerfDatum(
        label=label,
        value=value,
        uom=uom,
        warn=fields[1] or None,
        crit=fields[2] or None,
        min=_limit(fields[3]),
        max=_limit(fields[4]),
    )


def _limit(text: str) -> float | None:
    match = _LIMIT_RE.fullmatch(text) if text else None
    return None if match is None else _finite_text(match.group(1))


def _finite_text(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None
