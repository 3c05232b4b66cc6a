"""The Survivor-protocol check modules in mod/check/, run as real subprocesses.

Every module gets a JSON document on stdin and is judged only by what it
prints and its exit status, against resources on 127.0.0.1 that the tests
create: listening sockets, an HTTP server, a scratch directory, child
processes, and a fake `ping` on PATH (so ping's parsing is tested on machines
without iputils; the real binary is exercised when it is installed).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MOD = Path(__file__).resolve().parent.parent / "mod" / "check"
MODULES = ("ping", "tcp", "http", "disk", "procs")
KEYS = {"host", "rc", "scalar", "comment", "duration_ms", "perfdata"}
OK, PROBLEM, WARNING, NOTICE, MISCONFIG, TIMEDOUT = 0, 1, 2, 3, 4, 5
LOCAL = (("localhost", "127.0.0.1"),)
SKELETON_BEGIN = "# --- begin protocol skeleton"
SKELETON_END = "# --- end protocol skeleton ---"


@dataclass
class Run:
    status: int
    lines: list[dict[str, Any]]
    stderr: str

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.lines) == 1, self.lines
        return self.lines[0]

    def by_host(self) -> dict[str, dict[str, Any]]:
        return {line["host"]: line for line in self.lines}


def document(
    name: str, args: Mapping[str, Any], hosts: Sequence[tuple[str, str]], timeout: float
) -> str:
    return json.dumps(
        {
            "version": 1,
            "kind": "check",
            "check": name,
            "timeout": timeout,
            "args": dict(args),
            "hosts": [{"name": h, "address": a, "vars": {}} for h, a in hosts],
        }
    )


def assert_result_line(line: dict[str, Any]) -> None:
    assert set(line) == KEYS, line
    assert isinstance(line["host"], str)
    assert isinstance(line["rc"], int) and 0 <= line["rc"] <= 5
    assert line["scalar"] is None or isinstance(line["scalar"], int | float)
    assert isinstance(line["comment"], str) and line["comment"]
    assert isinstance(line["duration_ms"], int) and line["duration_ms"] >= 0
    for item in line["perfdata"]:
        assert isinstance(item["label"], str) and "value" in item
        for key in ("warn", "crit"):
            assert key not in item or isinstance(item[key], str)


def run_module(
    name: str,
    args: Mapping[str, Any],
    hosts: Sequence[tuple[str, str]] = LOCAL,
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Run a module like the daemon does; it must end by the document's timeout (plus start-up)."""
    done = subprocess.run(
        [sys.executable, str(MOD / name)],
        input=document(name, args, hosts, timeout),
        capture_output=True,
        text=True,
        timeout=timeout + 1.5,
        env=dict(env) if env is not None else None,
    )
    lines = [json.loads(text) for text in done.stdout.splitlines()]
    for line in lines:
        assert_result_line(line)
    assert sorted(line["host"] for line in lines) == sorted(h for h, _ in hosts)
    assert done.returncode == max((line["rc"] for line in lines), default=0)
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, lines, done.stderr)


# --- every module -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_module_is_a_standalone_executable(name: str) -> None:
    path = MOD / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    assert "import survivor" not in path.read_text() and "from survivor" not in path.read_text()


def skeleton(name: str) -> str:
    text = (MOD / name).read_text()
    return text[text.index(SKELETON_BEGIN) : text.index(SKELETON_END)]


@pytest.mark.parametrize("name", MODULES[1:])
def test_protocol_skeleton_is_the_same_in_every_module(name: str) -> None:
    assert skeleton(name) == skeleton(MODULES[0])


@pytest.mark.parametrize("name", ("tcp", "http", "disk", "procs"))
def test_validate_flag_says_ok(name: str) -> None:
    done = subprocess.run([str(MOD / name), "-v"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done
    assert json.loads(done.stdout) == {"rc": 0, "comment": f"{name} OK"}


@pytest.mark.parametrize("name", MODULES)
def test_unreadable_document_is_one_misconfig_line(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(MOD / name)],
        input="not json",
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == MISCONFIG
    line = json.loads(done.stdout)
    assert line["rc"] == MISCONFIG and "not a JSON document" in line["comment"]


@pytest.mark.parametrize("name", MODULES)
def test_no_hosts_means_no_lines_and_exit_zero(name: str) -> None:
    args = {"port": 1, "url": "http://{address}/", "name": "x"}
    keep = {"tcp": ("port",), "http": ("url",), "procs": ("name",)}.get(name, ())
    run = run_module(name, {k: v for k, v in args.items() if k in keep}, hosts=())
    assert run.lines == [] and run.status == 0


BAD_ARGS = [
    ("ping", {"count": 0}, "count"),
    ("ping", {"warn_ms": 900, "crit_ms": 500}, "warn_ms"),
    ("ping", {"cuont": 3}, "cuont"),
    ("tcp", {}, "port"),
    ("tcp", {"port": "smtp"}, "port"),
    ("tcp", {"port": 25, "expect": "re:("}, "expect"),
    ("tcp", {"port": 25, "tls": "maybe"}, "tls"),
    ("http", {"url": "ftp://{address}/"}, "url"),
    ("http", {"url": "http://{addr}/"}, "url"),
    ("http", {"url": "http://x.test/", "expect_status": "fine"}, "expect_status"),
    ("http", {"url": "http://x.test/", "method": "HEAD", "expect_body": "x"}, "method"),
    ("disk", {"paths": ["relative/dir"]}, "paths"),
    ("disk", {"warn_pct": 95, "crit_pct": 90}, "warn_pct"),
    ("disk", {"crit_pct": 120}, "crit_pct"),
    ("procs", {}, "name"),
    ("procs", {"name": "sshd", "user": "no-such-user-here"}, "user"),
    ("procs", {"name": "sshd", "match": "argv"}, "match"),
    ("procs", {"name": "sshd", "min": 3, "max": 2}, "max"),
]


@pytest.mark.parametrize(("name", "args", "arg"), BAD_ARGS)
def test_bad_args_give_every_host_misconfig_naming_the_arg(
    name: str, args: dict[str, Any], arg: str
) -> None:
    hosts = [("web1", "127.0.0.1"), ("web2", "127.0.0.1"), ("db1", "127.0.0.1")]
    run = run_module(name, args, hosts)
    assert run.status == MISCONFIG
    for line in run.lines:
        assert line["rc"] == MISCONFIG
        assert f"bad arg '{arg}'" in line["comment"]


# --- tcp ----------------------------------------------------------------------------------------


class Listener:
    """A TCP server on 127.0.0.1 whose connections are served by `serve` in threads."""

    def __init__(self, serve: Callable[[socket.socket, threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so the accept loop sees `stop` soon after close()
        self.port = self.sock.getsockname()[1]
        self._serve = serve
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._serve(conn, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def listen() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], Listener]]:
    started: list[Listener] = []

    def start(serve: Callable[[socket.socket, threading.Event], None]) -> Listener:
        started.append(Listener(serve))
        return started[-1]

    yield start
    for listener in started:
        listener.close()


def banner(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"220 mail.test ESMTP ready\r\n")
    stop.wait(5)


def answer_ping(conn: socket.socket, stop: threading.Event) -> None:
    if conn.recv(100).startswith(b"PING"):
        conn.sendall(b"+PONG\r\n")
    stop.wait(5)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10)


@pytest.fixture
def closed_ports() -> Iterator[list[int]]:
    """Ports bound but never listened on: connecting is refused, and nobody else can take them."""
    socks = [socket.socket() for _ in range(5)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    yield [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()


def test_tcp_connects_to_a_listening_port(listen: Callable[..., Listener]) -> None:
    server = listen(silent)
    line = run_module("tcp", {"port": server.port}).only
    assert line["rc"] == OK
    assert f"connected to 127.0.0.1:{server.port}" in line["comment"]
    assert line["scalar"] >= 0
    assert line["perfdata"][0]["label"] == "connect"
    assert line["perfdata"][0]["crit"] == "5000"


def test_tcp_expects_a_banner(listen: Callable[..., Listener]) -> None:
    server = listen(banner)
    assert run_module("tcp", {"port": server.port, "expect": "ESMTP"}).only["rc"] == OK
    assert run_module("tcp", {"port": server.port, "expect": r"re:^220 \S+ ESMTP"}).only["rc"] == OK


def test_tcp_sends_and_expects(listen: Callable[..., Listener]) -> None:
    server = listen(answer_ping)
    line = run_module("tcp", {"port": server.port, "send": "PING\r\n", "expect": "+PONG"}).only
    assert line["rc"] == OK and "+PONG" in line["comment"]


def test_tcp_reply_mismatch_is_a_problem_quoting_the_reply(listen: Callable[..., Listener]) -> None:
    server = listen(banner)
    line = run_module("tcp", {"port": server.port, "expect": "SSH-2.0"}).only
    assert line["rc"] == PROBLEM
    assert "expected 'SSH-2.0'" in line["comment"] and "220 mail.test" in line["comment"]


def test_tcp_refused_port_is_a_problem(closed_ports: list[int]) -> None:
    line = run_module("tcp", {"port": closed_ports[0]}).only
    assert line["rc"] == PROBLEM
    assert line["comment"] == f"connection refused to 127.0.0.1:{closed_ports[0]}"
    assert line["scalar"] is None


def test_tcp_connect_slower_than_warn_is_a_warning(listen: Callable[..., Listener]) -> None:
    server = listen(silent)
    line = run_module("tcp", {"port": server.port, "warn_ms": 0, "crit_ms": 10000}).only
    assert line["rc"] == WARNING and "above 0 ms" in line["comment"]


def test_tcp_checks_hosts_in_parallel(listen: Callable[..., Listener]) -> None:
    server = listen(silent)
    hosts = [(f"h{i}", "127.0.0.1") for i in range(5)]
    # Each host waits out the whole budget for a reply that never comes: one after the other
    # they would overrun the timeout, and run_module would fail; side by side they all finish.
    run = run_module("tcp", {"port": server.port, "expect": "never"}, hosts, timeout=1.0)
    assert [line["rc"] for line in run.lines] == [TIMEDOUT] * 5
    assert run.status == TIMEDOUT


def test_tcp_several_refused_hosts(closed_ports: list[int]) -> None:
    hosts = [(f"h{i}", "127.0.0.1") for i in range(5)]
    run = run_module("tcp", {"port": closed_ports[1]}, hosts)
    assert {line["rc"] for line in run.lines} == {PROBLEM}


def test_tcp_silent_server_times_out_without_hanging(listen: Callable[..., Listener]) -> None:
    server = listen(silent)
    line = run_module("tcp", {"port": server.port, "expect": "220"}, timeout=1.0).only
    assert line["rc"] == TIMEDOUT
    assert "no reply '220'" in line["comment"]
    assert line["duration_ms"] < 1000


def test_results_stream_out_as_hosts_finish(listen: Callable[..., Listener]) -> None:
    server = listen(silent)
    # The server listens on 127.0.0.1 only, so the same port on 127.0.0.2 is refused at once.
    hosts = [("fast", "127.0.0.2"), ("slow", "127.0.0.1")]
    doc = document("tcp", {"port": server.port, "expect": "x"}, hosts, 1.0)
    with subprocess.Popen(
        [sys.executable, str(MOD / "tcp")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(doc)
        proc.stdin.close()
        first = json.loads(proc.stdout.readline())
        still_running = proc.poll() is None
        rest = [json.loads(line) for line in proc.stdout]
        proc.wait(timeout=5)
    assert first["host"] == "fast" and first["rc"] == PROBLEM
    assert still_running, "the first result must be printed before the slow host is done"
    assert [line["host"] for line in rest] == ["slow"] and rest[0]["rc"] == TIMEDOUT


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *(
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    return cert, key


def test_tcp_tls_handshake(listen: Callable[..., Listener], certificate: tuple[Path, Path]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def tls_banner(conn: socket.socket, stop: threading.Event) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"* OK IMAP ready\r\n")
            stop.wait(5)

    server = listen(tls_banner)
    args = {"port": server.port, "tls": True, "expect": "* OK"}
    line = run_module("tcp", {**args, "verify_tls": False}).only
    assert line["rc"] == OK and "TLS" in line["comment"]
    # The test certificate is self-signed, so verification must refuse it.
    line = run_module("tcp", args).only
    assert line["rc"] == PROBLEM and "TLS certificate" in line["comment"]
    # Speaking TLS to a plain-text server fails the handshake.
    plain = listen(banner)
    line = run_module("tcp", {"port": plain.port, "tls": True}).only
    assert line["rc"] == PROBLEM and "TLS with" in line["comment"]


# --- http ---------------------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/ok":
            self.reply(200, b"hello from survivor test\n")
        elif self.path.startswith("/echo/"):
            self.reply(200, self.path.encode())
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            self.release.wait(10)
            self.reply(200, b"late")
        elif self.path == "/drip":
            # Headers one byte at a time: each read is quick, the whole never ends.
            for byte in b"HTTP/1.0 200 OK\r\nX-Drip: " + b"z" * 1000:
                if self.release.wait(0.05):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        else:
            self.reply(404, b"no such page")

    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web() -> Iterator[str]:
    """An HTTP server on 127.0.0.1; yields the URL prefix with the {address} placeholder."""
    release = threading.Event()
    handler = type("TestHandler", (Handler,), {"release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://{{address}}:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_http_ok_with_body_match(web: str) -> None:
    line = run_module("http", {"url": f"{web}/ok", "expect_body": "from survivor"}).only
    assert line["rc"] == OK
    assert line["comment"].startswith("HTTP 200 OK from http://127.0.0.1:")
    assert line["scalar"] > 0
    assert [item["label"] for item in line["perfdata"]] == ["time", "size"]
    assert line["perfdata"][1]["value"] == len(b"hello from survivor test\n")


def test_http_body_mismatch_is_a_problem(web: str) -> None:
    line = run_module("http", {"url": f"{web}/ok", "expect_body": "goodbye"}).only
    assert line["rc"] == PROBLEM and "lacks 'goodbye'" in line["comment"]
    line = run_module("http", {"url": f"{web}/ok", "expect_regex": r"hello \w+ survivor"}).only
    assert line["rc"] == OK
    line = run_module("http", {"url": f"{web}/ok", "expect_regex": r"^bye"}).only
    assert line["rc"] == PROBLEM and "does not match /^bye/" in line["comment"]


def test_http_404_is_a_problem_unless_expected(web: str) -> None:
    line = run_module("http", {"url": f"{web}/missing"}).only
    assert (
        line["rc"] == PROBLEM
        and "HTTP 404" in line["comment"]
        and "expected 200" in line["comment"]
    )
    line = run_module("http", {"url": f"{web}/missing", "expect_status": [200, 404]}).only
    assert line["rc"] == OK


def test_http_redirects_are_followed_unless_told_not_to(web: str) -> None:
    line = run_module("http", {"url": f"{web}/redirect", "expect_body": "hello"}).only
    assert line["rc"] == OK and "HTTP 200" in line["comment"]
    no_follow = {"url": f"{web}/redirect", "follow_redirects": False}
    assert "HTTP 302" in run_module("http", no_follow).only["comment"]
    assert run_module("http", {**no_follow, "expect_status": 302}).only["rc"] == OK


def test_http_head_and_host_placeholders(web: str) -> None:
    assert run_module("http", {"url": f"{web}/ok", "method": "HEAD"}).only["rc"] == OK
    hosts = [("web1", "127.0.0.1"), ("web2", "127.0.0.1")]
    run = run_module("http", {"url": f"{web}/echo/{{host}}"}, hosts)
    for host, line in run.by_host().items():
        assert line["rc"] == OK and f"/echo/{host} in" in line["comment"]


def test_http_ignores_proxies_from_the_environment(web: str, closed_ports: list[int]) -> None:
    proxy = f"http://127.0.0.1:{closed_ports[0]}"
    env = {**os.environ, "http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": ""}
    assert run_module("http", {"url": f"{web}/ok"}, env=env).only["rc"] == OK


def test_http_refused_is_a_problem(closed_ports: list[int]) -> None:
    line = run_module("http", {"url": f"http://{{address}}:{closed_ports[0]}/"}).only
    assert line["rc"] == PROBLEM and "connection refused" in line["comment"]


def test_http_slow_answer_times_out(web: str) -> None:
    line = run_module("http", {"url": f"{web}/slow"}, timeout=1.0).only
    assert line["rc"] == TIMEDOUT and "no answer" in line["comment"]


def test_http_endless_answer_is_cut_off_by_the_module_deadline(web: str) -> None:
    # Every read succeeds in time, so only the module-wide deadline can stop this host.
    line = run_module("http", {"url": f"{web}/drip"}, timeout=1.0).only
    assert line["rc"] == TIMEDOUT and "no result within" in line["comment"]


def test_http_tls_verification(certificate: tuple[Path, Path]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    handler = type("TlsHandler", (Handler,), {"release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"https://{{address}}:{server.server_address[1]}/ok"
        line = run_module("http", {"url": url}).only
        assert line["rc"] == PROBLEM and "certificate" in line["comment"]
        assert run_module("http", {"url": url, "verify_tls": False}).only["rc"] == OK
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- disk ---------------------------------------------------------------------------------------


def test_disk_thresholds(tmp_path: Path) -> None:
    paths = [str(tmp_path)]
    line = run_module("disk", {"paths": paths, "warn_pct": 100, "crit_pct": 100}).only
    assert line["rc"] == OK and line["comment"].startswith(f"{tmp_path} ")
    assert 0 < line["scalar"] <= 100
    labels = [item["label"] for item in line["perfdata"]]
    assert labels == [f"{tmp_path} used", f"{tmp_path} free"]
    line = run_module("disk", {"paths": paths, "warn_pct": 0, "crit_pct": 100}).only
    assert line["rc"] == WARNING and "above 0%" in line["comment"]
    line = run_module("disk", {"paths": paths, "warn_pct": 0, "crit_pct": 0}).only
    assert line["rc"] == PROBLEM


def test_disk_defaults_to_root() -> None:
    line = run_module("disk", {}).only
    assert line["comment"].startswith("/ ") and line["perfdata"][0]["warn"] == "80"


def test_disk_missing_path_is_misconfig_for_that_path(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    paths = [str(tmp_path), str(gone)]
    line = run_module("disk", {"paths": paths, "warn_pct": 100, "crit_pct": 100}).only
    assert line["rc"] == MISCONFIG
    assert line["comment"].startswith(f"{gone} does not exist; {tmp_path} ")
    assert [item["label"] for item in line["perfdata"]] == [f"{tmp_path} used", f"{tmp_path} free"]
    assert line["scalar"] is not None
    # A real problem on another path outranks the missing one.
    line = run_module("disk", {"paths": paths, "warn_pct": 0, "crit_pct": 0}).only
    assert line["rc"] == PROBLEM


def test_disk_inode_thresholds(tmp_path: Path) -> None:
    if os.statvfs(tmp_path).f_files == 0:
        pytest.skip("this file system has no inode table")
    args = {"paths": [str(tmp_path)], "warn_pct": 100, "crit_pct": 100, "warn_inodes_pct": 0}
    line = run_module("disk", args).only
    assert line["rc"] == WARNING and "inodes" in line["comment"]
    assert line["perfdata"][-1]["label"] == f"{tmp_path} inodes used"


# --- procs --------------------------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Callable[[Sequence[str]], subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str]) -> subprocess.Popen[bytes]:
        children.append(subprocess.Popen(list(argv), stdin=subprocess.DEVNULL))
        return children[-1]

    yield start
    for child in children:
        child.kill()
        child.wait(timeout=5)


def wait_for(predicate: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def named_sleep(tmp_path: Path, name: str) -> str:
    """A copy of sleep(1) under another name, so its process name (comm) is ours to choose."""
    sleep = shutil.which("sleep")
    if sleep is None:
        pytest.skip("no sleep binary")
    copy = tmp_path / name
    shutil.copy(sleep, copy)
    return str(copy)


def test_procs_finds_the_test_process_by_name() -> None:
    own = Path("/proc/self/comm").read_text().strip()
    line = run_module("procs", {"name": own}).only
    assert line["rc"] == OK and line["scalar"] >= 1
    assert line["comment"].startswith(f"{line['scalar']} process")


def test_procs_counts_by_command_line_and_user(
    spawn: Callable[[Sequence[str]], subprocess.Popen[bytes]],
) -> None:
    marker = f"survivor-test-{uuid.uuid4().hex}"
    child = spawn([sys.executable, "-c", "import time; time.sleep(30)", marker])
    wait_for(lambda: marker.encode() in Path(f"/proc/{child.pid}/cmdline").read_bytes(), "child")
    line = run_module("procs", {"name": marker, "match": "cmdline"}).only
    assert line["rc"] == OK and line["scalar"] == 1 and f"pid {child.pid}" in line["comment"]
    line = run_module("procs", {"name": marker, "match": "cmdline", "user": os.geteuid()}).only
    assert line["scalar"] == 1
    line = run_module("procs", {"name": marker, "match": "cmdline", "user": os.geteuid() + 1}).only
    assert line["rc"] == PROBLEM and line["scalar"] == 0
    line = run_module("procs", {"name": marker, "match": "cmdline", "max": 0, "min": 0}).only
    assert line["rc"] == WARNING and "at most 0" in line["comment"]


def test_procs_missing_process_is_a_problem() -> None:
    line = run_module("procs", {"name": "no-such-proc"}).only
    assert line["rc"] == PROBLEM and line["scalar"] == 0
    assert line["comment"] == "0 processes named 'no-such-proc', expected at least 1"


def test_procs_long_names_and_zombies(
    tmp_path: Path, spawn: Callable[[Sequence[str]], subprocess.Popen[bytes]]
) -> None:
    long_name = f"svlong{uuid.uuid4().hex[:12]}"  # 18 characters; the kernel keeps 15
    runner = spawn([named_sleep(tmp_path, long_name), "30"])
    wait_for(lambda: Path(f"/proc/{runner.pid}/comm").read_text().strip() == long_name[:15], "comm")
    assert run_module("procs", {"name": long_name}).only["scalar"] == 1
    short = f"svz{uuid.uuid4().hex[:8]}"
    zombie = spawn([named_sleep(tmp_path, short), "0"])
    # Not waited for, the exited child stays a zombie: it must not count as running.
    wait_for(
        lambda: Path(f"/proc/{zombie.pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
        "zombie",
    )
    assert run_module("procs", {"name": short}).only["scalar"] == 0


# --- ping ---------------------------------------------------------------------------------------

FAKE_PING = """\
#!{python}
# A stand-in for iputils ping: canned output per address, argv recorded for the test.
import json, sys, time
from pathlib import Path

address = sys.argv[-1]
Path({record!r}, address).write_text(json.dumps(sys.argv[1:]))
header = (f"PING {{address}} ({{address}}) 56(84) bytes of data.\\n\\n"
          f"--- {{address}} ping statistics ---\\n")
stats = {{
    "127.0.0.1": ("3 packets transmitted, 3 received, 0% packet loss, time 2003ms",
                  "rtt min/avg/max/mdev = 0.021/0.040/0.057/0.012 ms", 0),
    "192.0.2.1": ("3 packets transmitted, 0 received, 100% packet loss, time 2030ms", "", 1),
    "192.0.2.2": ("3 packets transmitted, 2 received, 33.3333% packet loss, time 2004ms",
                  "rtt min/avg/max/mdev = 1.000/2.000/3.000/1.000 ms", 1),
    "192.0.2.3": ("3 packets transmitted, 3 received, 0% packet loss, time 2004ms",
                  "rtt min/avg/max/mdev = 240.0/250.5/260.0/8.1 ms", 0),
    "192.0.2.4": ("3 packets transmitted, 1 received, +2 errors, 66.6667% packet loss, time 2004ms",
                  "rtt min/avg/max/mdev = 1.000/1.000/1.000/0.000 ms", 1),
}}
if address in stats:
    counts, rtt, code = stats[address]
    print(header + counts + "\\n" + rtt)
    sys.exit(code)
if address == "192.0.2.8":
    print("ping: socket: Operation not permitted", file=sys.stderr)
    sys.exit(2)
if address == "192.0.2.9":
    time.sleep(60)
print(f"ping: {{address}}: Name or service not known", file=sys.stderr)
sys.exit(2)
"""


@pytest.fixture
def fake_ping(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH finds only the fake ping, and where it records its argv."""
    bin_dir, record = tmp_path / "bin", tmp_path / "argv"
    bin_dir.mkdir()
    record.mkdir()
    script = bin_dir / "ping"
    script.write_text(FAKE_PING.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    return {"PATH": str(bin_dir), "LANG": "C"}, record


def test_ping_parses_replies_loss_and_rtt(fake_ping: tuple[dict[str, str], Path]) -> None:
    env, record = fake_ping
    hosts = [
        ("up", "127.0.0.1"),
        ("down", "192.0.2.1"),
        ("lossy", "192.0.2.2"),
        ("slow", "192.0.2.3"),
        ("bad", "192.0.2.4"),
        ("typo", "nonexistent.invalid"),
        ("jail", "192.0.2.8"),
    ]
    run = run_module("ping", {}, hosts, timeout=10.0, env=env)  # room for the whole run: no -w
    got = run.by_host()
    assert got["up"]["rc"] == OK and got["up"]["scalar"] == 0.04
    assert got["up"]["comment"] == "3/3 replies, rtt avg 0.040 ms"
    assert got["up"]["perfdata"][0] == {
        "label": "rtt",
        "value": 0.04,
        "uom": "ms",
        "warn": "200",
        "crit": "1000",
        "min": 0,
    }
    assert got["down"]["rc"] == PROBLEM and got["down"]["scalar"] is None
    assert got["down"]["comment"] == "0/3 replies from 192.0.2.1"
    assert got["lossy"]["rc"] == WARNING and "33% loss" in got["lossy"]["comment"]
    assert got["slow"]["rc"] == WARNING and "rtt above 200 ms" in got["slow"]["comment"]
    assert got["bad"]["rc"] == PROBLEM and "above 50%" in got["bad"]["comment"]
    assert (
        got["typo"]["rc"] == PROBLEM
        and "cannot resolve nonexistent.invalid" in got["typo"]["comment"]
    )
    assert got["jail"]["rc"] == MISCONFIG and "not permitted" in got["jail"]["comment"]
    argv = json.loads((record / "127.0.0.1").read_text())
    assert argv == ["-n", "-q", "-c", "3", "-i", "1", "-W", "1", "127.0.0.1"]


def test_ping_args_shape_the_command_and_verdict(fake_ping: tuple[dict[str, str], Path]) -> None:
    env, record = fake_ping
    args = {"count": 5, "interval": 0.2, "crit_ms": 2500, "warn_ms": 1, "max_loss_pct": 20}
    hosts = [("lossy", "192.0.2.2"), ("up", "127.0.0.1")]
    run = run_module("ping", args, hosts, timeout=10.0, env=env)
    assert run.by_host()["lossy"]["rc"] == PROBLEM  # 33 % loss is above 20 %
    assert run.by_host()["up"]["rc"] == OK  # 0.04 ms is not above warn_ms 1
    argv = json.loads((record / "127.0.0.1").read_text())
    assert argv[argv.index("-c") + 1] == "5" and argv[argv.index("-i") + 1] == "0.2"
    assert argv[argv.index("-W") + 1] == "3"  # reply_timeout follows crit_ms up to a whole second


def test_ping_that_overruns_is_timed_out(fake_ping: tuple[dict[str, str], Path]) -> None:
    env, _ = fake_ping
    run = run_module(
        "ping", {"count": 1}, [("hung", "192.0.2.9"), ("up", "127.0.0.1")], timeout=1.0, env=env
    )
    hung = run.by_host()["hung"]
    assert hung["rc"] == TIMEDOUT and "ping 192.0.2.9 did not finish" in hung["comment"]
    assert run.by_host()["up"]["rc"] == OK


def test_ping_refuses_option_like_addresses(fake_ping: tuple[dict[str, str], Path]) -> None:
    env, record = fake_ping
    line = run_module("ping", {}, [("evil", "-f")], env=env).only
    assert line["rc"] == MISCONFIG and "looks like a ping option" in line["comment"]
    assert not list(record.iterdir())


def test_ping_without_a_ping_binary_is_misconfig_for_all(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}
    run = run_module("ping", {}, [("a", "127.0.0.1"), ("b", "127.0.0.2")], env=env)
    assert [line["rc"] for line in run.lines] == [MISCONFIG, MISCONFIG]
    assert all("no ping executable" in line["comment"] for line in run.lines)
    done = subprocess.run(
        [sys.executable, str(MOD / "ping"), "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["rc"] == 1 and "no ping executable" in done.stdout


def test_ping_validate_flag_uses_the_ping_it_finds(fake_ping: tuple[dict[str, str], Path]) -> None:
    env, _ = fake_ping
    done = subprocess.run(
        [sys.executable, str(MOD / "ping"), "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {"rc": 0, "comment": "ping OK"}


def test_ping_real_loopback() -> None:
    if shutil.which("ping") is None:
        pytest.skip("no ping binary installed (iputils-ping)")
    line = run_module("ping", {"count": 2, "interval": 0.2}).only
    if line["rc"] == MISCONFIG:
        pytest.skip(f"ping is not usable here: {line['comment']}")
    assert line["rc"] == OK and isinstance(line["scalar"], float)
    assert line["comment"].startswith("2/2 replies")
