"""The shipped format and transmit modules, run as real subprocesses.

Format modules turn the alert document into subject + body; transmit modules
deliver it: to a file, to an HTTP server on 127.0.0.1 in a thread, and to a
fake sendmail that records its stdin and argv.
"""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MOD = Path(__file__).resolve().parent.parent / "mod"
FORMATS = ("plain", "short", "json")
TRANSMITS = ("mail", "webhook", "file")

PROBLEM = {
    "version": 1,
    "kind": "alert",
    "check": "http",
    "host": "web1",
    "rc": 1,
    "code": "PROBLEM",
    "comment": "connection refused on port 8080 " + "x" * 200,
    "since": "2026-11-24T10:05:00.412Z",
    "consecutive": 3,
    "try": 2,
    "escalated": True,
    "recipients": [{"person": "alice", "address": "alice@example.org", "via": "mail"}],
    "clear": False,
    "digest": [],
}
CLEAR = {**PROBLEM, "rc": 0, "code": "OK", "comment": "200 OK", "clear": True}
DIGEST = {
    **PROBLEM,
    "digest": [
        {
            "check": "disk",
            "host": "db1",
            "rc": 2,
            "code": "WARNING",
            "comment": "91% full",
            "since": "2026-11-24T09:00:00.000Z",
        },
        {
            "check": "ping",
            "host": "gw1",
            "rc": 5,
            "code": "TIMEDOUT",
            "comment": "no reply",
            "since": "2026-11-24T09:30:00.000Z",
        },
    ],
}


def run(kind: str, name: str, doc: Any, *args: str) -> subprocess.CompletedProcess[str]:
    data = doc if isinstance(doc, str) else json.dumps(doc)
    return subprocess.run(
        [str(MOD / kind / name), *args],
        input=data,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )


def formatted(name: str, doc: dict[str, Any]) -> tuple[str, str]:
    done = run("format", name, doc)
    assert done.returncode == 0, done.stderr
    subject, _, body = done.stdout.partition("\n")
    return subject, body


# --------------------------------------------------------------------------- all modules


@pytest.mark.parametrize(
    ("kind", "name"), [("format", n) for n in FORMATS] + [("transmit", n) for n in TRANSMITS]
)
def test_modules_are_executable_and_validate_with_dash_v(kind: str, name: str) -> None:
    path = MOD / kind / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    done = run(kind, name, "", "-v")
    assert done.returncode == 0
    assert done.stdout == f"{name}: OK\n"


@pytest.mark.parametrize(
    ("kind", "name"), [("format", n) for n in FORMATS] + [("transmit", n) for n in TRANSMITS]
)
def test_modules_refuse_garbage_with_a_reason(kind: str, name: str) -> None:
    done = run(kind, name, "not json")
    assert done.returncode == 1
    assert done.stderr.startswith(f"{name}: stdin is not a JSON")


# --------------------------------------------------------------------------- formats


def test_plain_problem_clear_and_digest() -> None:
    subject, body = formatted("plain", PROBLEM)
    assert subject.startswith("PROBLEM: http@web1 - connection refused")
    assert "Host:        web1" in body and "Try:         2 (escalated)" in body
    assert "3 results in a row" in body and "alice (mail)" in body
    subject, body = formatted("plain", CLEAR)
    assert subject == "CLEAR: http@web1 is OK again"
    assert "has cleared" in body
    subject, body = formatted("plain", DIGEST)
    assert subject == "DIGEST: 2 problems (alert throttle)"
    assert "  disk@db1: WARNING since 2026-11-24T09:00:00.000Z - 91% full" in body
    assert "  ping@gw1: TIMEDOUT since 2026-11-24T09:30:00.000Z - no reply" in body


def test_a_digest_of_one_is_singular_in_every_format() -> None:
    # issue 19: "DIGEST: 1 problems", "1 alerts were withheld".
    one = {**DIGEST, "digest": DIGEST["digest"][:1]}
    subject, body = formatted("plain", one)
    assert subject == "DIGEST: 1 problem (alert throttle)"
    assert body.startswith("1 alert was withheld by the alert throttle:")
    assert "2 alerts were withheld" in formatted("plain", DIGEST)[1]
    assert formatted("short", one)[0] == "DIGEST 1 problem"
    assert formatted("json", one)[0] == "DIGEST: 1 problem (alert throttle)"


def test_plain_shows_a_fix_result() -> None:
    _, body = formatted(
        "plain", {**PROBLEM, "fix": {"rc": 0, "code": "OK", "comment": "restarted httpd"}}
    )
    assert "Fix:         OK - restarted httpd" in body


def test_plain_shows_a_plugins_long_output() -> None:
    _, body = formatted("plain", {**PROBLEM, "long_output": "sda: ok\nsdb: degraded"})
    assert "Details:\n  sda: ok\n  sdb: degraded\n" in body
    _, body = formatted("plain", {**PROBLEM, "long_output": ""})
    assert "Details:" not in body


@pytest.mark.parametrize("doc", [PROBLEM, CLEAR, DIGEST], ids=["problem", "clear", "digest"])
def test_short_fits_a_pager(doc: dict[str, Any]) -> None:
    done = run("format", "short", doc)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) <= 160
    assert done.stdout.count("\n") == 1


def test_short_says_the_essentials_first() -> None:
    subject, body = formatted("short", PROBLEM)
    assert subject == "PROBLEM http@web1"
    assert body.startswith("x3 since 10:05Z try2!: connection refused")
    assert body.endswith("...")
    assert formatted("short", CLEAR) == ("CLEAR http@web1", "OK since 10:05Z")
    subject, body = formatted("short", DIGEST)
    assert (subject, body) == ("DIGEST 2 problems", "disk@db1 WARNING; ping@gw1 TIMEDOUT")


@pytest.mark.parametrize("doc", [PROBLEM, CLEAR, DIGEST], ids=["problem", "clear", "digest"])
def test_json_body_is_the_alert_document(doc: dict[str, Any]) -> None:
    subject, body = formatted("json", doc)
    parsed = json.loads(body)
    assert parsed["subject"] == subject
    assert {k: parsed[k] for k in doc} == doc
    assert body.count("\n") == 1
    expected = {
        id(PROBLEM): "PROBLEM: http@web1",
        id(CLEAR): "CLEAR: http@web1 is OK again",
        id(DIGEST): "DIGEST: 2 problems (alert throttle)",
    }[id(doc)]
    assert subject.startswith(expected)


# --------------------------------------------------------------------------- transmit/file


def transmit_doc(**args: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "via": "mail",
        "recipients": [
            {"person": "alice", "address": "alice@example.org"},
            {"person": "bob", "address": "bob@example.org"},
        ],
        "subject": "PROBLEM: http@web1",
        "body": "line one\nline two\n",
        "alert": PROBLEM,
        "args": args,
    }


def test_file_appends_one_json_line_per_recipient(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    out.write_text('{"earlier": true}\n')
    for _ in range(2):
        done = run("transmit", "file", transmit_doc(path=str(out)))
        assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0]) == {"earlier": True}
    records = [json.loads(line) for line in lines[1:]]
    assert [r["person"] for r in records] == ["alice", "bob", "alice", "bob"]
    first = records[0]
    assert first["address"] == "alice@example.org" and first["via"] == "mail"
    assert first["subject"] == "PROBLEM: http@web1" and first["body"] == "line one\nline two\n"
    assert first["alert"] == PROBLEM and first["t"].endswith("Z")


def test_file_fails_without_a_path_or_a_writable_directory(tmp_path: Path) -> None:
    done = run("transmit", "file", transmit_doc())
    assert (done.returncode, done.stderr) == (1, "file: args.path is required\n")
    done = run("transmit", "file", transmit_doc(path=str(tmp_path / "missing" / "x")))
    assert done.returncode == 1 and "cannot open" in done.stderr


# --------------------------------------------------------------------------- transmit/webhook


class _Hook(http.server.BaseHTTPRequestHandler):
    status = 204
    received: list[tuple[dict[str, str], Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 204})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_webhook_posts_the_document_without_its_args(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    doc = transmit_doc(url=url, timeout=5, headers={"Authorization": "Bearer s3cret"})
    done = run("transmit", "webhook", doc)
    assert done.returncode == 0, done.stderr
    [(headers, body)] = handler.received
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert body == {k: v for k, v in doc.items() if k != "args"}


def test_webhook_reports_a_server_error(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    handler.status = 500
    done = run("transmit", "webhook", transmit_doc(url=url, timeout=5))
    assert done.returncode == 1
    assert f"{url} answered HTTP 500" in done.stderr
    assert len(handler.received) == 1


def test_webhook_reports_an_unreachable_url_and_a_bad_one() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    done = run("transmit", "webhook", transmit_doc(url=f"http://127.0.0.1:{port}/", timeout=5))
    assert done.returncode == 1 and "failed" in done.stderr
    done = run("transmit", "webhook", transmit_doc(url="file:///etc/passwd"))
    assert done.returncode == 1 and "http:// or https://" in done.stderr


# --------------------------------------------------------------------------- transmit/mail


def fake_sendmail(tmp_path: Path, exit_code: int = 0) -> Path:
    script = tmp_path / "sendmail"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(tmp_path / 'mail.json')!r}, 'w') as fh:\n"
        "    json.dump({'argv': sys.argv[1:], 'stdin': sys.stdin.read()}, fh)\n"
        "sys.stderr.write('queue is full\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return script


def test_mail_hands_an_rfc5322_message_to_sendmail(tmp_path: Path) -> None:
    import email
    import email.policy

    script = fake_sendmail(tmp_path)
    doc = transmit_doc(sendmail=str(script), **{"from": "survivor@example.org"})
    done = run("transmit", "mail", doc)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "mail.json").read_text())
    assert recorded["argv"] == ["-oi", "-t"]
    msg = email.message_from_string(recorded["stdin"], policy=email.policy.default)
    assert msg["To"] == "alice@example.org, bob@example.org"
    assert msg["From"] == "survivor@example.org"
    assert msg["Subject"] == "PROBLEM: http@web1"
    assert msg["X-Survivor-Check"] == "http" and msg["X-Survivor-Host"] == "web1"
    assert msg["Date"] and msg["Message-ID"]
    body = msg.get_body()
    assert body is not None and body.get_content() == "line one\nline two\n"


def test_mail_reports_a_failing_sendmail(tmp_path: Path) -> None:
    script = fake_sendmail(tmp_path, exit_code=75)
    done = run("transmit", "mail", transmit_doc(sendmail=str(script)))
    assert done.returncode == 1
    assert done.stderr == f"mail: {script} exited 75: queue is full\n"
    done = run("transmit", "mail", transmit_doc(sendmail=str(tmp_path / "nope")))
    assert done.returncode == 1 and "cannot run" in done.stderr
