"""The Survivor and Nagios plugin protocols, without running anything."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survivor.model.codes import ReturnCode, is_valid_code
from survivor.model.config import Host
from survivor.model.work import CheckResult, PerfDatum
from survivor.protocol.modules import (
    QUOTE_MAX,
    check_request,
    fix_request,
    parse_check_output,
    parse_fix_output,
)
from survivor.protocol.plugins import (
    COMMENT_MAX,
    LONG_OUTPUT_MAX,
    NO_PLUGIN_OUTPUT,
    argv_placeholders,
    expand_argv,
    parse_perfdata,
    parse_plugin_output,
)

WEB1 = Host("web1", "192.0.2.10", vars={"port": 8080, "path": "/a b", "tls": True})
WEB2 = Host("web2", "web2")


def line(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def parse(
    stdout: bytes, hosts: tuple[str, ...] = ("web1", "web2"), **kw: bool
) -> list[CheckResult]:
    kw.setdefault("killed", False)
    kw.setdefault("truncated", False)
    return list(
        parse_check_output(stdout, hosts, killed=kw["killed"], truncated=kw["truncated"]).values()
    )


# --------------------------------------------------------------------------- requests


def test_check_request_is_one_json_line_with_plain_args_and_hosts() -> None:
    args = MappingProxyType({"count": 3, "targets": ("a", "b"), "opts": MappingProxyType({"x": 1})})
    raw = check_request("ping", args, [WEB1, WEB2], 30.0)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw) == {
        "version": 1,
        "kind": "check",
        "check": "ping",
        "timeout": 30,
        "args": {"count": 3, "targets": ["a", "b"], "opts": {"x": 1}},
        "hosts": [
            {
                "name": "web1",
                "address": "192.0.2.10",
                "vars": {"port": 8080, "path": "/a b", "tls": True},
            },
            {"name": "web2", "address": "web2", "vars": {}},
        ],
    }


def test_check_request_keeps_fractional_timeout() -> None:
    assert json.loads(check_request("ping", {}, [WEB2], 2.5))["timeout"] == 2.5


def test_fix_request_carries_host_object_and_check() -> None:
    doc = json.loads(fix_request("restart-httpd", WEB1, {"service": "httpd"}, 60, "http"))
    assert doc == {
        "version": 1,
        "kind": "fix",
        "fix": "restart-httpd",
        "check": "http",
        "timeout": 60,
        "args": {"service": "httpd"},
        "host": WEB1.to_dict(),
    }


def test_request_refuses_args_that_are_not_json() -> None:
    with pytest.raises(TypeError, match="cannot be sent as JSON"):
        check_request("ping", {"when": object()}, [WEB1], 1)


# --------------------------------------------------------------------------- check output


def test_one_result_per_host_in_host_order() -> None:
    out = line(host="web2", rc=2, scalar=85, comment="85% full", duration_ms=12) + line(
        host="web1",
        rc=0,
        scalar=1.5,
        comment="fine",
        duration_ms=3,
        perfdata=[
            {"label": "rta", "value": 0.5, "uom": "ms", "warn": 100, "crit": "200", "min": 0}
        ],
    )
    web1, web2 = parse(out)
    assert web1 == CheckResult(
        "web1", 0, "fine", 1.5, 3, (PerfDatum("rta", 0.5, "ms", "100", "200", 0.0, None),)
    )
    assert (web2.host, web2.rc, web2.scalar, web2.comment, web2.duration_ms) == (
        "web2",
        2,
        85.0,
        "85% full",
        12,
    )


def test_unknown_hosts_ignored_and_first_line_for_a_host_wins() -> None:
    out = line(host="web1", rc=1) + line(host="web1", rc=0) + line(host="other", rc=0)
    (web1,) = parse(out, ("web1",))
    assert web1.rc == 1


def test_missing_host_quotes_first_unusable_line() -> None:
    out = b"Traceback (most recent call last):\n  File x\n" + line(host="web1", rc=0)
    web1, web2 = parse(out)
    assert web1.rc == 0
    assert web2.rc == ReturnCode.MISCONFIG
    assert web2.comment == 'no result from module; it printed: "Traceback (most recent call last):"'


def test_result_for_an_unknown_host_is_quoted_as_unusable() -> None:
    (web1,) = parse(line(host="localhost", rc=0), ("web1",))
    assert web1.rc == ReturnCode.MISCONFIG
    assert '"host": "localhost"' in web1.comment


def test_no_output_at_all() -> None:
    (web1,) = parse(b"", ("web1",))
    assert (web1.rc, web1.comment) == (ReturnCode.MISCONFIG, "no result from module")


def test_killed_module_keeps_results_it_printed_and_times_out_the_rest() -> None:
    web1, web2 = parse(line(host="web1", rc=0) + b"Traceback", killed=True)
    assert web1.rc == ReturnCode.OK
    assert (web2.rc, web2.comment) == (ReturnCode.TIMEDOUT, "timed out after module was killed")


def test_truncated_output_says_so() -> None:
    (web1,) = parse(b'{"host": "web1", "rc"', ("web1",), truncated=True)
    assert web1.comment.startswith("no result from module (its output was cut at the output cap)")


@pytest.mark.parametrize("rc", [-1, 8, 19, 1001, True, "0", 1.0, None])
def test_invalid_return_code_makes_the_line_invalid(rc: object) -> None:
    (web1,) = parse(line(host="web1", rc=rc), ("web1",))
    assert web1.rc == ReturnCode.MISCONFIG
    assert "it printed" in web1.comment


@pytest.mark.parametrize("rc", [0, 3, 7, 20, 1000])
def test_valid_return_codes_including_custom(rc: int) -> None:
    (web1,) = parse(line(host="web1", rc=rc), ("web1",))
    assert web1.rc == rc


@pytest.mark.parametrize("scalar", ["12", True, [1], {"a": 1}])
def test_scalar_must_be_a_number_or_null(scalar: object) -> None:
    (web1,) = parse(line(host="web1", rc=0, scalar=scalar), ("web1",))
    assert web1.rc == ReturnCode.MISCONFIG


def test_null_scalar_is_none_and_nan_is_not_json() -> None:
    (web1,) = parse(line(host="web1", rc=0, scalar=None), ("web1",))
    assert web1.rc == 0 and web1.scalar is None
    (web1,) = parse(b'{"host": "web1", "rc": 0, "scalar": NaN}\n', ("web1",))
    assert web1.rc == ReturnCode.MISCONFIG


def test_comment_is_coerced_to_text_and_cut() -> None:
    (web1,) = parse(line(host="web1", rc=0, comment=42), ("web1",))
    assert web1.comment == "42"
    (web1,) = parse(line(host="web1", rc=0, comment="x" * 5000), ("web1",))
    assert web1.comment == "x" * COMMENT_MAX


def test_bad_perfdata_items_are_dropped() -> None:
    perfdata = [
        {"label": "ok", "value": 1},
        {"label": "", "value": 1},
        {"value": 2},
        {"label": "bad", "value": "high"},
        "load=3",
        {"label": "unknown", "value": None, "min": "x"},
    ]
    (web1,) = parse(line(host="web1", rc=0, perfdata=perfdata), ("web1",))
    assert web1.perfdata == (PerfDatum("ok", 1.0), PerfDatum("unknown", None))


def test_perfdata_may_be_given_as_plugin_text() -> None:
    (web1,) = parse(line(host="web1", rc=0, perfdata="rta=1.5ms;100;200 pl=0%"), ("web1",))
    assert [p.label for p in web1.perfdata] == ["rta", "pl"]


def test_duration_defaults_when_missing_or_bad() -> None:
    out = line(host="web1", rc=0, duration_ms=-5) + line(host="web2", rc=0, duration_ms=7.6)
    results = parse_check_output(
        out, ["web1", "web2", "web3"], killed=False, truncated=False, default_duration_ms=99
    )
    assert [r.duration_ms for r in results.values()] == [99, 7, 99]


def test_torn_last_line_and_crlf_are_accepted() -> None:
    out = b'{"host": "web1", "rc": 1}\r\n{"host": "web2", "rc": 2}'
    assert [r.rc for r in parse(out)] == [1, 2]


def test_u2028_inside_a_json_string_does_not_split_the_line() -> None:
    (web1,) = parse(line(host="web1", rc=0, comment="a\u2028b"), ("web1",))
    assert web1.comment == "a\u2028b"


def test_binary_garbage_is_quoted_printably_and_cut() -> None:
    out = b"\xff\xfe\x00\x1b[31m" + b"z" * 500 + b"\n"
    (web1,) = parse(out, ("web1",))
    quoted = web1.comment.split("it printed: ", 1)[1]
    assert quoted.startswith('"\ufffd\ufffd??[31mzzz') and quoted.endswith('..."')
    assert len(quoted) == QUOTE_MAX + 2  # the quotes around it


def test_deeply_nested_json_does_not_crash() -> None:
    (web1,) = parse(b"{" + b'"a":[' * 100_000 + b"\n", ("web1",))
    assert web1.rc == ReturnCode.MISCONFIG


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.booleans(), st.booleans())
def test_arbitrary_bytes_never_raise(stdout: bytes, killed: bool, truncated: bool) -> None:
    results = parse_check_output(stdout, ["web1", "web2"], killed=killed, truncated=truncated)
    assert list(results) == ["web1", "web2"]
    assert all(is_valid_code(r.rc) and len(r.comment) <= COMMENT_MAX for r in results.values())


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"host": st.sampled_from(["web1", "web2", "x"]) | _json_values},
            optional={
                "rc": st.integers(-5, 1005) | _json_values,
                "scalar": _json_values,
                "comment": _json_values,
                "duration_ms": _json_values,
                "perfdata": _json_values
                | st.lists(
                    st.dictionaries(
                        st.sampled_from(["label", "value", "uom", "warn", "crit", "min", "max"]),
                        _json_values,
                    )
                ),
            },
        ),
        max_size=5,
    )
)
def test_arbitrary_json_lines_never_raise(objs: list[dict[str, object]]) -> None:
    out = b"".join(json.dumps(o).encode() + b"\n" for o in objs)
    results = parse_check_output(out, ["web1", "web2"], killed=False, truncated=False)
    for result in results.values():
        assert is_valid_code(result.rc)
        assert all(isinstance(p, PerfDatum) for p in result.perfdata)


# --------------------------------------------------------------------------- fix output


def test_fix_result_first_valid_line_wins() -> None:
    out = b"starting httpd\n" + line(rc=0, comment="restarted") + line(rc=1, comment="no")
    assert parse_fix_output(out, killed=False) == (0, "restarted")


def test_fix_without_result() -> None:
    assert parse_fix_output(b"usage: restart SERVICE\n", killed=False) == (
        ReturnCode.MISCONFIG,
        'no result from fix module; it printed: "usage: restart SERVICE"',
    )
    assert parse_fix_output(b"", killed=False) == (
        ReturnCode.MISCONFIG,
        "no result from fix module",
    )
    assert parse_fix_output(b"", killed=True) == (
        ReturnCode.TIMEDOUT,
        "timed out after fix module was killed",
    )


def test_fix_with_invalid_code_is_not_a_result() -> None:
    rc, _comment = parse_fix_output(line(rc=12, comment="?"), killed=False)
    assert rc == ReturnCode.MISCONFIG


# --------------------------------------------------------------------------- argv templates


def test_expand_argv_substitutes_whole_values_without_splitting() -> None:
    argv = expand_argv(
        [
            "-H",
            "{address}",
            "-p",
            "{vars.port}",
            "-u",
            "{vars.path}",
            "--name={host}",
            "{vars.tls}",
        ],
        WEB1,
    )
    assert argv == ["-H", "192.0.2.10", "-p", "8080", "-u", "/a b", "--name=web1", "true"]


def test_expand_argv_literal_braces() -> None:
    assert expand_argv(['{{"host": "{host}"}}', "}}{{"], WEB1) == ['{"host": "web1"}', "}{"]


def test_expand_argv_names_the_missing_var() -> None:
    with pytest.raises(ValueError, match=r"host web2 has no var 'port'"):
        expand_argv(["-p", "{vars.port}"], WEB2)


@pytest.mark.parametrize("template", ["{hostname}", "{ host }", "{vars.}", "{", "a}b", "{a{b}"])
def test_bad_templates_are_errors(template: str) -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder|unmatched"):
        expand_argv([template], WEB1)
    with pytest.raises(ValueError, match=r"unknown placeholder|unmatched"):
        argv_placeholders([template])


def test_argv_placeholders_for_load_time_checks() -> None:
    templates = ["-H", "{address}", "-p", "{vars.port}", "{{host}}", "x{host}y{vars.path}"]
    assert argv_placeholders(templates) == {"address", "vars.port", "host", "vars.path"}


# --------------------------------------------------------------------------- plugin output


def plugin(stdout: bytes, status: int | None = 0, **kw: object) -> CheckResult:
    return parse_plugin_output(
        stdout,
        status,
        killed=bool(kw.get("killed", False)),
        signal_name=kw.get("signal_name"),  # type: ignore[arg-type]
        timeout=30.0,
        duration_ms=41,
        host="web1",
        stderr=bytes(kw.get("stderr", b"")),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "rc"),
    [
        (0, ReturnCode.OK),
        (1, ReturnCode.WARNING),
        (2, ReturnCode.PROBLEM),
        (3, ReturnCode.MISCONFIG),
    ],
)
def test_plugin_exit_status_mapping(status: int, rc: ReturnCode) -> None:
    result = plugin(b"HTTP OK: 200 | time=0.02s;1;2;0\n", status)
    assert (result.rc, result.comment, result.duration_ms, result.host) == (
        rc,
        "HTTP OK: 200",
        41,
        "web1",
    )
    assert result.scalar == 0.02


def test_plugin_other_exit_status_is_misconfig_with_reason() -> None:
    result = plugin(b"oops\nmore\n", 127)
    assert (result.rc, result.comment) == (
        ReturnCode.MISCONFIG,
        "plugin exited with status 127: oops",
    )


def test_plugin_death_by_signal_and_timeout() -> None:
    died = plugin(b"half", None, signal_name="SIGSEGV")
    assert (died.rc, died.comment) == (ReturnCode.MISCONFIG, "plugin killed by SIGSEGV")
    timed_out = plugin(b"half", None, killed=True, signal_name="SIGTERM")
    assert (timed_out.rc, timed_out.comment) == (ReturnCode.TIMEDOUT, "plugin timed out after 30 s")


def test_plugin_without_output() -> None:
    assert plugin(b"", 0).comment == "(no output from plugin)"
    assert plugin(b"", None).comment == "plugin ended without an exit status"


def test_plugin_long_output_form() -> None:
    out = (
        b"DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        b"/ 15272 MB (77%);\n"
        b"/boot 68 MB (69%);\n"
        b"/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        b"/home=69357MB;253404;253409;0;253414 \n"
        b"/var/log=818MB;970;975;0;980\n"
    )
    result = plugin(out)
    assert result.comment == "DISK OK - free space: / 3326 MB (56%);"
    assert result.long_output == "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/var/log 819 MB (84%);"
    assert [(p.label, p.value, p.uom) for p in result.perfdata] == [
        ("/", 2643.0, "MB"),
        ("/boot", 68.0, "MB"),
        ("/home", 69357.0, "MB"),
        ("/var/log", 818.0, "MB"),
    ]
    assert result.perfdata[0] == PerfDatum("/", 2643.0, "MB", "5948", "5958", 0.0, 5968.0)
    assert result.scalar == 2643.0


def test_plugin_long_text_is_the_comment_only_when_the_first_line_is_empty() -> None:
    assert plugin(b"| a=1\nline one\n\nline two | b=2\n").comment == "line one; line two"
    assert plugin(b"summary\nline one\n").comment == "summary"


def test_plugin_long_output_is_capped_at_8_kib_never_inside_a_character() -> None:
    result = plugin(b"summary\n" + "\u00e9".encode() * 5000 + b"\n", 0)
    assert result.comment == "summary" and len(result.long_output.encode()) == LONG_OUTPUT_MAX
    assert result.long_output == "\u00e9" * (LONG_OUTPUT_MAX // 2)
    assert plugin(b"summary\n\n", 0).long_output == ""


def test_plugin_with_only_stderr_shows_its_first_line_as_nagios_does() -> None:
    mute = plugin(b"", 3, stderr=b"\n  cannot open /dev/sdz  \nusage: ...\n")
    assert (mute.rc, mute.comment) == (ReturnCode.MISCONFIG, "cannot open /dev/sdz")
    assert plugin(b"OK fine\n", 0, stderr=b"warning: deprecated\n").comment == "OK fine"
    odd = plugin(b"", 127, stderr=b"exec: not found\n")
    assert odd.comment == "plugin exited with status 127: exec: not found"
    assert plugin(b"", 0, stderr=b"\n").comment == NO_PLUGIN_OUTPUT


def test_fix_without_result_shows_its_exit_status_and_stderr() -> None:
    rc, comment = parse_fix_output(
        b"", killed=False, exit_status=2, stderr=b"\nsystemctl: unit httpd not found\n"
    )
    assert rc == ReturnCode.MISCONFIG
    assert comment == (
        "no result from fix module (it exited with status 2);"
        ' stderr: "systemctl: unit httpd not found"'
    )
    assert parse_fix_output(b"", killed=False, exit_status=0) == (
        ReturnCode.MISCONFIG,
        "no result from fix module",
    )


def test_plugin_unknown_first_value_gives_no_scalar() -> None:
    result = plugin(b"OK | rta=U;;;0 pl=0%\n")
    assert result.scalar is None and result.perfdata[1].value == 0.0


def test_plugin_comment_cut_and_binary_output_survives() -> None:
    assert len(plugin(b"x" * 3000).comment) == COMMENT_MAX
    assert plugin(b"\xff\xfe OK \x00 | a=1\n").rc == ReturnCode.OK


# --------------------------------------------------------------------------- perfdata


def test_perfdata_guideline_examples() -> None:
    items = parse_perfdata(
        "'total time'=12.5s;10:20;~:30;0 'it''s'=5% 'a=b'=1c time=0.002ms;;;; "
        "load1=U range=3;@1:3;10: size=1.5e3KB;;;0;1e4 weird=7packets"
    )
    assert items == (
        PerfDatum("total time", 12.5, "s", "10:20", "~:30", 0.0, None),
        PerfDatum("it's", 5.0, "%"),
        PerfDatum("a=b", 1.0, "c"),
        PerfDatum("time", 0.002, "ms"),
        PerfDatum("load1", None),
        PerfDatum("range", 3.0, "", "@1:3", "10:"),
        PerfDatum("size", 1500.0, "KB", None, None, 0.0, 10000.0),
        PerfDatum("weird", 7.0, "packets"),
    )


def test_perfdata_negative_values_and_units_on_limits() -> None:
    assert parse_perfdata("temp=-3.5;-10:;-20:;-40C;60C") == (
        PerfDatum("temp", -3.5, "", "-10:", "-20:", -40.0, 60.0),
    )


def test_malformed_items_are_skipped_not_fatal() -> None:
    text = "good=1 =2 nolabel bad=1,5 'unclosed=3 also=abc x=1.2.3 after=4 inf=1e999 ok2=5"
    assert [p.label for p in parse_perfdata(text)] == ["good", "after", "ok2"]


def test_quoted_label_needs_equals() -> None:
    assert [p.label for p in parse_perfdata("'a b' c=1 'd e'=2")] == ["c", "d e"]


def test_perfdata_across_lines() -> None:
    assert [p.label for p in parse_perfdata("a=1\nb=2\t c=3\n")] == ["a", "b", "c"]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_perfdata_never_raises(text: str) -> None:
    for datum in parse_perfdata(text):
        assert datum.label


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="'=;:~@ U.-+0123456789eEKMBs%c\n", max_size=200))
def test_perfdata_never_raises_on_near_misses(text: str) -> None:
    parse_perfdata(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500), st.one_of(st.none(), st.integers(-300, 300)), st.booleans())
def test_plugin_output_never_raises(stdout: bytes, status: int | None, killed: bool) -> None:
    result = plugin(stdout, status, killed=killed)
    assert is_valid_code(result.rc)


def test_perfdata_is_linear_on_hostile_input() -> None:
    # Many unclosed quotes must not make the label regex backtrack quadratically.
    text = "'a " * 20_000
    assert parse_perfdata(text) == ()
    assert len(parse_perfdata("x=1;2;3;4;5 " * 5_000)) == 5_000
