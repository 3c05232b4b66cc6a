"""The request and reply documents of remote work (protocol.remote): strict both ways, and a
hostile reply (garbage, another work id, huge, a host not asked) is dropped and logged."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survivor.model.config import CheckDef, CheckKind, Host
from survivor.model.work import CheckResult
from survivor.protocol.remote import (
    Refused,
    Status,
    accept_reply,
    busy_reply,
    parse_reply,
    parse_request,
    reply_limit,
    work_reply,
    work_request,
)

T = datetime(2026, 12, 7, 10, 5, 0, 412000, tzinfo=UTC)
HOSTS = [Host("web1", "192.0.2.10", {"port": 80}), Host("web2", "web2")]
DISK = CheckDef(name="disk", kind=CheckKind.MODULE, hosts=("web1", "web2"), module="disk",
                args={"warn": 80}, timeout=30)  # fmt: skip


def request_bytes(**changes: object) -> bytes:
    doc = json.loads(work_request(DISK, HOSTS, work_id="w1", fingerprint="abc", deadline=T))
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_request_is_the_module_document_plus_work_id_fingerprint_and_deadline() -> None:
    doc = json.loads(request_bytes())
    assert doc["version"] == 1 and doc["kind"] == "check" and doc["check"] == "disk"
    assert doc["hosts"][0] == {"name": "web1", "address": "192.0.2.10", "vars": {"port": 80}}
    assert (doc["work_id"], doc["fingerprint"], doc["deadline"]) == (
        "w1", "abc", "2026-12-07T10:05:00.412Z"
    )  # fmt: skip
    request = parse_request(request_bytes())
    assert request.module == "disk" and request.hosts == tuple(HOSTS) and request.deadline == T


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"module": "/bin/sh"}, "never a path"),
        ({"module": "../x"}, "never a path"),
        ({"plugin": "check_x"}, "exactly one of module or plugin"),
        ({"argv": ["-x"]}, "argv goes with a plugin"),
        ({"hosts": [{"name": "a/b"}]}, "safe name"),
        ({"hosts": [{"name": "a", "address": "-oProxyCommand=x"}]}, "address"),
        ({"timeout": "30"}, "timeout"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"version": 2}, "version 1"),
        ({"limits": "1G"}, "limits must be a mapping"),
        ({"limits": {"memory": "1G"}}, "limit memory must be a whole number"),
        ({"limits": {"stack": 1}}, "unknown limit 'stack'"),
    ],
)
def test_a_bad_request_is_refused_with_the_reason(changes: dict[str, object], why: str) -> None:
    with pytest.raises(Refused, match=why):
        parse_request(request_bytes(**changes))


def test_plugins_by_path_are_not_sent() -> None:
    by_path = CheckDef(name="p", kind=CheckKind.PLUGIN, hosts=("web1",), plugin="/usr/bin/x")
    with pytest.raises(ValueError, match="by name"):
        work_request(by_path, HOSTS[:1], work_id="w", fingerprint="f", deadline=T)


def good_reply(**changes: object) -> bytes:
    request = parse_request(request_bytes())
    results = [CheckResult("web1", 0, "fine", 1.0, 12), CheckResult("web2", 1, "full", 99.0, 15)]
    doc = json.loads(
        work_reply(request, "dc1-a", results, started=T, duration_ms=20, module_sha256="ab" * 32)
    )
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_reply_carries_results_worker_start_duration_and_module_hash() -> None:
    reply = parse_reply(good_reply(), work_id="w1", hosts=["web1", "web2"], max_bytes=1 << 16)
    assert reply.status is Status.OK and reply.worker == "dc1-a"
    assert [(r.host, r.rc, r.scalar) for r in reply.results] == [
        ("web1", 0, 1.0),
        ("web2", 1, 99.0),
    ]
    assert (reply.started, reply.duration_ms, reply.module_sha256) == (T, 20, "ab" * 32)
    busy = parse_reply(busy_reply("w1", "dc1-b"), work_id="w1", hosts=["web1"], max_bytes=999)
    assert busy.status is Status.BUSY and busy.worker == "dc1-b"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00garbage{", "not JSON"),
        (b'{"v": 1, "work_id": "w1\xff"}', "not JSON"),  # not UTF-8
        (b'{"v": 1, "work_id": "w1", "duration_ms": NaN}', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (good_reply(work_id="w0"), "reply for work 'w0'"),
        (good_reply(results=[{"host": "db1", "rc": 0}]), "host 'db1', which was not asked"),
        (good_reply(results=[{"host": "web1", "rc": "zero"}]), "not a valid result"),
        (good_reply(results=[{"host": "web1", "rc": 0}] * 2), "two results"),
        (good_reply(worker="../x"), "never a path"),
        (good_reply(status="maybe"), "unknown status"),
        (good_reply(comment="x" * 100_000), "over the limit"),
    ],
)
def test_a_hostile_reply_is_dropped_and_logged(
    data: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    limit = reply_limit(2, 65536) // 2  # 72 KiB
    with caplog.at_level(logging.WARNING, logger="survivor.protocol.remote"):
        got = accept_reply(
            data, work_id="w1", hosts=["web1", "web2"], max_bytes=limit, what="disk@web1"
        )
    assert got is None
    [record] = caplog.records
    assert "remote disk@web1: reply dropped (work w1)" in record.getMessage()
    assert why in record.getMessage()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["version", "kind", "check", "module", "plugin", "argv", "args", "hosts", "timeout",
     "work_id", "fingerprint", "deadline", "v", "status", "worker", "results", "t",
     "duration_ms", "module_sha256", "error"]
)  # fmt: skip


@given(st.dictionaries(KEYS, JSON, max_size=8), st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_anything_from_the_wire_is_read_or_refused_never_a_crash(
    changes: dict[str, object], noise: bytes
) -> None:
    for data in (request_bytes(**changes), good_reply(**changes), noise):
        try:
            parse_request(data)
        except Refused:
            pass
        try:
            parse_reply(data, work_id="w1", hosts=["web1", "web2"], max_bytes=1 << 16)
        except Refused:
            pass
