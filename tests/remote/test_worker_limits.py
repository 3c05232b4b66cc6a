"""A remote worker sets a check's `limits:` that come with its request (issue 23)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from survivor.model.codes import ReturnCode
from survivor.model.config import CheckDef, CheckKind, Host, ModuleLimits
from survivor.proc.runner import ModuleRunner
from survivor.protocol.remote import parse_request, work_request
from survivor.remote.worker import run_request

MOD = Path(__file__).parent.parent / "fixtures" / "mod"
HOST = Host("web1", "192.0.2.10")


def own_limits(comment: str) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = json.loads(comment)
    return seen


def test_a_remote_request_carries_the_limits_and_the_worker_sets_them() -> None:
    check = CheckDef(name="l", kind=CheckKind.MODULE, hosts=("web1",), module="echo-limits",
                     timeout=30, limits=ModuleLimits(memory=128 << 20, cpu=3))  # fmt: skip
    data = work_request(check, [HOST], work_id="w1", fingerprint="f",
                        deadline=datetime(2026, 12, 7, tzinfo=UTC))  # fmt: skip
    assert json.loads(data)["limits"] == {"memory": 128 << 20, "cpu": 3}
    request = parse_request(data)
    assert request.limits == check.limits
    [result], _path = run_request(ModuleRunner([MOD], []), request, 65536)
    assert result.rc == ReturnCode.OK
    seen = own_limits(result.comment)
    assert (seen["as"], seen["cpu"]) == ([128 << 20] * 2, [3, 4])


def test_the_worker_says_which_limit_stopped_a_module() -> None:
    check = CheckDef(name="s", kind=CheckKind.MODULE, hosts=("web1",), module="spins",
                     timeout=20, limits=ModuleLimits(cpu=1))  # fmt: skip
    data = work_request(check, [HOST], work_id="w2", fingerprint="f",
                        deadline=datetime(2026, 12, 7, tzinfo=UTC))  # fmt: skip
    [result], _path = run_request(ModuleRunner([MOD], []), parse_request(data), 65536)
    assert result.comment == "no result from module (module killed by SIGXCPU: cpu limit 1 s)"
