from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from survivor.composite import combine
from survivor.model.codes import severity
from survivor.model.work import CheckResult

OK, PROBLEM, WARNING, NOTICE, MISCONFIG, TIMEDOUT = 0, 1, 2, 3, 4, 5
codes = st.sampled_from([0, 1, 2, 3, 4, 6, 25, 1000])


def r(rc: int, comment: str = "", ms: int = 10) -> CheckResult:
    return CheckResult("web1", rc, comment, None, ms)


def test_required_is_worst_of_failures() -> None:
    res = combine(
        "web1",
        [("ping", r(OK, "up")), ("http", r(WARNING, "slow")), ("disk", r(PROBLEM, "full"))],
        [],
    )
    assert res.rc == PROBLEM
    assert res.comment == "ping: up; http: slow; disk: full"
    assert res.scalar == 3 and res.duration_ms == 30


def test_required_all_ok_ignores_failing_optionals() -> None:
    res = combine("web1", [("ping", r(OK))], [("extra", r(MISCONFIG))])
    assert res.rc == OK


def test_optionals_only_ok_if_any_ok_else_best_failure() -> None:
    assert combine("web1", [], [("a", r(PROBLEM)), ("b", r(OK))]).rc == OK
    assert combine("web1", [], [("a", r(PROBLEM)), ("b", r(WARNING))]).rc == WARNING


def test_any_unfinished_component_is_timedout() -> None:
    res = combine("web1", [("ping", r(OK))], [("slow", r(TIMEDOUT))])
    assert res.rc == TIMEDOUT and res.scalar == 1


def test_misconfig_is_worse_than_problem() -> None:
    assert severity(MISCONFIG) > severity(PROBLEM) > severity(WARNING) > severity(OK)


@given(st.lists(codes, min_size=1, max_size=6), st.lists(codes, max_size=6))
def test_required_result_is_ok_exactly_when_all_required_are_ok(
    req: list[int], opt: list[int]
) -> None:
    res = combine(
        "web1",
        [(f"r{i}", r(c)) for i, c in enumerate(req)],
        [(f"o{i}", r(c)) for i, c in enumerate(opt)],
    )
    assert (res.rc == OK) == all(c == OK for c in req)
    if any(c != OK for c in req):
        assert res.rc in req and all(severity(res.rc) >= severity(c) for c in req)


@given(st.lists(codes, min_size=1, max_size=6))
def test_optional_result_is_a_component_code_and_the_best(opt: list[int]) -> None:
    res = combine("web1", [], [(f"o{i}", r(c)) for i, c in enumerate(opt)])
    assert res.rc in opt
    assert all(severity(res.rc) <= severity(c) for c in opt)
    assert res.scalar == len(opt)
