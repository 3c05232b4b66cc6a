"""The Nagios plugin protocol of DESIGN.md §4 (`plugin:`), so monitoring-plugins work unchanged.

A plugin runs once per host with an argv expanded from `{host}`, `{address}` and
`{vars.X}` (whole values, never re-split); its exit status maps to a return code,
its first line up to `|` is the comment and its perfdata is parsed as the
monitoring-plugins guidelines write it. A malformed perfdata item is skipped and
an odd exit status becomes MISCONFIG with the reason; only bad configuration (an
argv template naming a var the host lacks) raises `ValueError`.

This is the lower of the two protocol modules: the Survivor protocol
(`protocol.modules`) reads perfdata given as text with `parse_perfdata` and
caps comments at the same COMMENT_MAX, both defined here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from survivor.config.convert import expand_template, template_fields
from survivor.model.codes import ReturnCode
from survivor.model.config import Host, ModuleLimits
from survivor.model.work import CheckResult, PerfDatum

COMMENT_MAX = 1000  # characters of a comment kept in state and history
LONG_OUTPUT_MAX = 8192  # bytes (UTF-8) of a plugin's long output kept in state and history

__all__ = [
    "COMMENT_MAX",
    "LONG_OUTPUT_MAX",
    "NO_PLUGIN_OUTPUT",
    "argv_placeholders",
    "expand_argv",
    "parse_perfdata",
    "parse_plugin_output",
]

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


# --------------------------------------------------------------------------- plugin output

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
    stderr: bytes = b"",
    limits: ModuleLimits | None = None,
) -> CheckResult:
    """A CheckResult from one plugin run, following the Nagios plugin API.

    The comment is the first line up to `|`. Long output (the later lines, up
    to the first `|` among them) is `long_output`, cut to LONG_OUTPUT_MAX
    bytes; the comment stays one short line. A plugin whose first line is
    empty gets the long text (lines joined with "; ", cut to COMMENT_MAX) as
    its comment too, because it is all the operator would have. A plugin
    that wrote nothing on stdout gets the first line of its stderr as the
    comment, as Nagios shows it. Perfdata comes from the first line after
    `|` and from the long output after its first `|`, through to the end;
    the first perfdatum's value is the scalar. A plugin run under `limits`
    (a check's `limits:`) that is killed, or prints nothing, says so: "plugin
    killed by SIGXCPU: cpu limit 5 s", "... (limits: memory 64M; its stderr
    ends: MemoryError)".
    """
    if killed:
        return CheckResult(
            host=host,
            rc=int(ReturnCode.TIMEDOUT),
            comment=f"plugin timed out after {_seconds_text(timeout)} s",
            duration_ms=duration_ms,
        )
    summary, long_output, perf_text = _split_plugin_output(stdout.decode("utf-8", errors="replace"))
    if not summary and not long_output:
        summary = _first_line(stderr.decode("utf-8", errors="replace"))
    perfdata = parse_perfdata(perf_text) if perf_text else ()
    scalar = perfdata[0].value if perfdata else None
    if signal_name is not None:
        why = signal_name if limits is None else limits.why_killed(signal_name)
        rc, comment = int(ReturnCode.MISCONFIG), f"plugin killed by {why}"
    elif exit_status is None:
        rc, comment = int(ReturnCode.MISCONFIG), "plugin ended without an exit status"
    elif exit_status in _PLUGIN_CODES:
        rc, comment = int(_PLUGIN_CODES[exit_status]), summary or NO_PLUGIN_OUTPUT
    else:
        rc = int(ReturnCode.MISCONFIG)
        comment = f"plugin exited with status {exit_status}: {summary or NO_PLUGIN_OUTPUT}"
    if limits is not None and signal_name is None and not stdout.strip():
        note = f" ({limits.why_no_result(stderr)})"  # kept whole: the comment is cut first
        comment = comment[: COMMENT_MAX - len(note)] + note
    return CheckResult(
        host=host,
        rc=rc,
        comment=comment[:COMMENT_MAX],
        scalar=scalar,
        duration_ms=duration_ms,
        perfdata=perfdata,
        long_output=long_output,
    )


def _first_line(text: str) -> str:
    """The first line of `text` with something on it, cut to COMMENT_MAX."""
    return next((line.strip() for line in text.split("\n") if line.strip()), "")[:COMMENT_MAX]


def cap_long_output(text: str) -> str:
    """`text` without trailing blanks, cut to LONG_OUTPUT_MAX bytes of UTF-8 (never inside a
    character)."""
    text = text.rstrip()
    data = text.encode()
    if len(data) <= LONG_OUTPUT_MAX:
        return text
    return data[:LONG_OUTPUT_MAX].decode(errors="ignore")


def _split_plugin_output(text: str) -> tuple[str, str, str]:
    """`(comment, long output, perfdata text)` of plugin output; see parse_plugin_output."""
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
    long_output = cap_long_output("\n".join(long_lines).strip("\n"))
    return summary[:COMMENT_MAX], long_output, " ".join(perf_parts)


def _seconds_text(timeout: float) -> str:
    return f"{timeout:g}"


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
