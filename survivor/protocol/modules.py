"""The Survivor protocol of DESIGN.md §4 (`module:`): what check and fix modules read and print.

A module gets one JSON document on stdin (`check_request`, `fix_request`) and
prints one JSON object per line: a result per host for a check, one `{"rc",
"comment"}` for a fix. The parsers here take whatever came back, keep the first
valid line per host and turn a host without one into TIMEDOUT (the module was
killed) or MISCONFIG quoting the first unusable line, so a module's traceback
or usage message reaches the operator as a comment and never as an exception.

Perfdata a module gives as text is read with the plugin protocol's parser, and
the comment cap is the one both protocols share, so this module imports both
from `protocol.plugins`, which stays the lower of the two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from survivor.model.codes import ReturnCode, is_valid_code
from survivor.model.config import Host, ModuleLimits
from survivor.model.work import CheckResult, PerfDatum
from survivor.protocol.plugins import COMMENT_MAX, parse_perfdata

PROTOCOL_VERSION = 1
QUOTE_MAX = 200  # characters of a bad output line quoted in a MISCONFIG comment
NO_RESULT = "no result from module"  # how the comment of a host the module left out begins

__all__ = [
    "PROTOCOL_VERSION",
    "QUOTE_MAX",
    "check_request",
    "explain_missing",
    "fix_request",
    "parse_check_output",
    "parse_fix_output",
    "result_from_dict",
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


def explain_missing(
    results: Sequence[CheckResult],
    *,
    signal_name: str | None,
    limits: ModuleLimits | None,
    stderr: bytes = b"",
) -> list[CheckResult]:
    """Say why hosts got no result of the module's own.

    A module ended by a signal (`signal_name`; None when the timeout ended it,
    which says so already): "no result from module (module killed by
    SIGSEGV)", and under `limits:` "(module killed by SIGXCPU: cpu limit 5 s)".
    A module under limits that just gave nothing (a failed allocation ends
    most programs with an error): "(limits: memory 64M; its stderr ends:
    MemoryError)". Results the module gave are left as they are.
    """
    if signal_name is not None:
        why = signal_name if limits is None else limits.why_killed(signal_name)
        note = f" (module killed by {why})"
    elif limits is not None:
        note = f" ({limits.why_no_result(stderr)})"
    else:
        return list(results)
    return [
        replace(r, comment=r.comment + note) if r.comment.startswith(NO_RESULT) else r
        for r in results
    ]


def parse_fix_output(
    stdout: bytes, *, killed: bool, exit_status: int | None = None, stderr: bytes = b""
) -> tuple[int, str]:
    """`(rc, comment)` from the first valid `{"rc", "comment"}` line a fix module printed.

    Without one, the comment says so with what the operator needs to see why:
    a non-zero exit status, the first line printed and the first stderr line.
    """
    first_bad: str | None = None
    for line in _lines(stdout):
        obj = _json_object(line)
        if obj is not None and is_valid_code(obj.get("rc")):
            return int(obj["rc"]), _comment(obj.get("comment"))
        if first_bad is None:
            first_bad = line
    if killed:
        return int(ReturnCode.TIMEDOUT), "timed out after fix module was killed"
    what = "no result from fix module"
    if exit_status:
        what += f" (it exited with status {exit_status})"
    comment = _no_result(what, first_bad)
    err = next(_lines(stderr), None)
    if err is not None:
        comment += f'; stderr: "{_quote(err)}"'
    return int(ReturnCode.MISCONFIG), _comment(comment)


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
    return None if obj is None else result_from_dict(obj, default_duration_ms)


def result_from_dict(obj: Mapping[str, Any], default_duration_ms: int = 0) -> CheckResult | None:
    """A result object `{"host", "rc", ...}` as a CheckResult, or None when it is not valid
    (also for results that come back from a remote worker, protocol.remote)."""
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
    what = NO_RESULT
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
