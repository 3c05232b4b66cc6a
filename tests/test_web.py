"""survivor web: every route over real HTTP on 127.0.0.1, answers for bad input, and the CLI."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from survivor.views.web import StatusSource, make_server, parse_bind
from survivor.views.web.server import SurvivorServer
from tests.cli.conftest import ENTRY
from tests.conftest import REPO
from tests.fakes import FakeClock
from tests.viewstate import NOW, Tree, empty_tree, full_tree, hold_pidfile, write_raw

CONFIGURED = {
    ("web1", "ping"),
    ("web1", "http"),
    ("web2", "ping"),
    ("web2", "http"),
    ("db1", "ping"),
    ("db1", "disk"),
}


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json")
        return json.loads(self.body)


class Site:
    def __init__(self, server: SurvivorServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.port = server.server_address[1]

    def request(self, path: str, method: str = "GET") -> Answer:
        """Send `path` exactly as given (no normalisation of `..`)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return Answer(resp.status, resp.msg, resp.read())
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        """Through urllib, as a browser-like client would."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return Answer(r.status, r.headers, r.read())
        except urllib.error.HTTPError as err:
            return Answer(err.code, err.headers, err.read())


def serve(tree: Tree, configured: set[tuple[str, str]] | None = CONFIGURED) -> Iterator[Site]:
    clock = FakeClock(NOW + timedelta(seconds=5))
    source = StatusSource(tree.state, tree.history, clock, configured=configured)
    server = make_server("127.0.0.1", 0, source)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Site(server, clock)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    tree = full_tree(tmp_path / "tree")
    with hold_pidfile(tree.state):
        yield from serve(tree)


@pytest.fixture
def empty_site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(empty_tree(tmp_path / "empty"))


# --------------------------------------------------------------------------- pages


def test_overview_page(site: Site) -> None:
    a = site.get("/")
    assert a.status == 200 and a.headers["Content-Type"] == "text/html; charset=utf-8"
    assert a.headers["Cache-Control"] == "no-store"
    page = a.text
    assert 'Overview: <span data-k="total">6</span> check@host pairs' in page
    assert "daemon: running, pid" in page and 'data-api="/api/summary"' in page
    assert '<a href="/host/web1">web1</a>' in page and '<a href="/check/web1/http">http</a>' in page
    # The problem is listed before the warning, and the comment is escaped.
    assert page.index("PROBLEM") < page.index("WARNING")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert '<script src="/static/survivor.js"></script>' in page


def test_host_page(site: Site) -> None:
    a = site.get("/host/web1")
    assert a.status == 200
    assert "Host web1" in a.text and 'data-api="/api/host/web1"' in a.text
    assert "c1f2a" in a.text and "c1f2b" in a.text and "check-2" in a.text
    assert "db1" not in a.text


def test_check_page_with_plot_ack_alerts_and_commands(site: Site) -> None:
    a = site.get("/check/web1/http")
    assert a.status == 200
    page = a.text
    assert "Acknowledged (PROBLEM) by alice 10m ago: on it" in page
    assert "Alert state for PROBLEM: 2 alert(s) sent" in page
    assert page.count("<polyline") == 2  # two incarnations, never joined
    assert "fp bbbbbbbbbbbb" in page and "stroke-dasharray" in page
    assert "command=ack" in page and "recipients=" in page
    assert "c1f2a" in page  # the running item of this pair
    # the perfdata of the last result (web1/http: rtt=5012ms), in a table the script rebuilds
    assert 'data-rows="perfdata"' in page and "<td>rtt</td><td>5012.0</td><td>ms</td>" in page
    inhibited = site.get("/check/db1/disk").text
    assert "Alerts inhibited until 2026-11-24T18:00:00.000Z, by bob" in inhibited
    never = site.get("/check/db1/ping")
    assert never.status == 200 and "no history yet" in never.text


def test_queue_page(site: Site) -> None:
    a = site.get("/queue")
    assert a.status == 200 and 'data-api="/api/queue"' in a.text
    assert a.text.index("c1f2a") < a.text.index("c1f2b")  # running first


def test_queue_page_counts_what_waits_and_what_is_planned_later(tmp_path: Path) -> None:
    """The queue page said "0 queued" while the pool line said 3: the pool counts items
    planned for later in the minute, which queue.json counts but does not list."""
    tree = full_tree(tmp_path / "tree")
    doc = json.loads((tree.state / "queue.json").read_text())
    doc["scheduled"] = {"check": 3, "alert": 0}
    (tree.state / "queue.json").write_text(json.dumps(doc))
    for site in serve(tree):
        totals = site.get("/api/queue").json()["totals"]
        assert totals["scheduled"] == 3
        assert "waiting for a worker" in site.get("/queue").text
        assert 'data-k="totals.scheduled">3<' in site.get("/queue").text


def test_plot_svg_route_is_well_formed(site: Site) -> None:
    a = site.get("/svg/check/web1/http")
    assert a.status == 200 and a.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(a.body)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert len(root.findall(f"{ns}circle")) == 60
    assert "style" not in a.text  # presentation attributes only: the CSP forbids inline style


def test_static_assets_and_metrics(site: Site) -> None:
    js = site.get("/static/survivor.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "setInterval(tick, 5000)" in js.text and "innerHTML" in js.text
    assert js.headers["Cache-Control"] == "max-age=300"
    css = site.get("/static/survivor.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    m = site.get("/metrics")
    assert m.status == 200 and m.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'survivor_checks{code="PROBLEM"} 1' in m.text


def test_security_headers(site: Site) -> None:
    a = site.get("/")
    csp = a.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert a.headers["X-Content-Type-Options"] == "nosniff"
    assert a.headers["X-Frame-Options"] == "DENY"
    assert a.headers["Server"] == "survivor-web"


# --------------------------------------------------------------------------- JSON


def test_api_summary(site: Site) -> None:
    s = site.get("/api/summary").json()
    assert s["total"] == 6 and s["problem_count"] == 2
    assert s["counts"] == {"PROBLEM": 1, "WARNING": 1, "NOTYET": 1, "OK": 3}
    assert s["daemon"]["running"] and s["daemon"]["level"] == "ok"
    assert s["queue"] == {"running": 1, "queued": 1}
    assert s["now"] == "2026-11-24T10:00:05.000Z"


def test_api_host_check_and_queue(site: Site) -> None:
    h = site.get("/api/host/web1").json()
    assert [c["check"] for c in h["checks"]] == ["http", "ping"]
    assert [q["id"] for q in h["queue"]] == ["c1f2a", "c1f2b"]
    c = site.get("/api/check/web1/http").json()
    assert c["state"]["code"] == "PROBLEM" and c["state"]["acked"]
    assert c["ack"]["user"] == "alice" and c["inhibit"] is None
    assert len(c["results"]) == 10 and c["results"][0]["code"] == "PROBLEM"
    assert c["alerts"][0]["summary"].startswith("code=PROBLEM try=1")
    q = site.get("/api/queue").json()
    assert [i["id"] for i in q["items"]] == ["c1f2a", "c1f2b"]
    assert q["totals"] == {"running": 1, "queued": 1, "scheduled": 0}


def resolve(data: Any, path: str) -> Any:
    for part in path.split("."):
        assert isinstance(data, dict) and part in data, f"{path}: no {part!r}"
        data = data[part]
    return data


@pytest.mark.parametrize(
    ("page", "api"),
    [
        ("/", "/api/summary"),
        ("/host/web1", "/api/host/web1"),
        ("/check/web1/http", "/api/check/web1/http"),
        ("/queue", "/api/queue"),
    ],
)
def test_every_live_element_names_a_value_of_its_api(site: Site, page: str, api: str) -> None:
    """The refresh script writes API values into elements by path: every path must exist."""
    html = site.get(page).text
    data = site.get(api).json()
    assert f'data-api="{api}"' in html
    paths = re.findall(r'data-(?:k|list|counts|level|plot-key)="([^"]+)"', html)
    assert paths
    for path in paths:
        resolve(data, path)
    for rows_path, cols in re.findall(r'data-rows="([^"]+)" data-cols="([^"]+)"', html):
        rows = resolve(data, rows_path)
        assert isinstance(rows, list)
        for row in rows:
            missing = [c for c in cols.split(",") if c not in row]
            assert not missing, f"{rows_path} rows lack {missing}"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "path",
    [
        "/host/..",
        "/host/%2e%2e",
        "/host/a%2fb",
        "/host/-dash",
        "/host/%ff",
        "/check/web1/..",
        "/check/..%2f..%2fetc/passwd",
        "/api/host/.hidden",
        "/api/check/web1/x%00y",
        "/svg/check/web1/..",
        "relative",
    ],
)
def test_unsafe_paths_are_400(site: Site, path: str) -> None:
    a = site.request(path)
    assert a.status == 400, (path, a.status)
    assert "Traceback" not in a.text


@pytest.mark.parametrize(
    "path",
    ["/host/nohost", "/check/web1/nocheck", "/check/nohost/http", "/nope", "/static/x.js"],
)
def test_unknown_things_are_404_pages(site: Site, path: str) -> None:
    a = site.get(path)
    assert a.status == 404 and "404 Not Found" in a.text


@pytest.mark.parametrize(
    "path", ["/api/host/nohost", "/api/check/web1/nocheck", "/api/nope", "/svg/check/x/y"]
)
def test_unknown_api_things_are_404(site: Site, path: str) -> None:
    a = site.get(path)
    assert a.status == 404
    if path.startswith("/api/"):
        assert a.json()["status"] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_only_get_and_head(site: Site, method: str) -> None:
    a = site.request("/", method)
    assert a.status == 405 and a.headers["Allow"] == "GET, HEAD"


def test_head_has_the_headers_of_get_and_no_body(site: Site) -> None:
    for path in ("/", "/api/summary", "/host/nohost"):
        get, head = site.request(path), site.request(path, "HEAD")
        assert head.status == get.status and head.body == b""
        assert head.headers["Content-Length"] == str(len(get.body))


def test_a_failing_page_is_a_500_and_the_server_goes_on(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(site.server.source, "summary", broken)
    a = site.get("/")
    assert a.status == 500 and "bug" not in a.text
    assert site.get("/queue").status == 200


# --------------------------------------------------------------------------- empty, damaged state


def test_empty_state_dir(empty_site: Site) -> None:
    page = empty_site.get("/")
    assert page.status == 200 and "daemon: NOT RUNNING" in page.text
    s = empty_site.get("/api/summary").json()
    assert s["total"] == 6 and s["counts"] == {"NOTYET": 6} and not s["daemon"]["running"]
    assert s["queue_updated"] == "never"
    assert empty_site.get("/host/web1").status == 200  # configured, never ran
    assert empty_site.get("/check/web1/ping").status == 200
    assert empty_site.get("/queue").status == 200
    assert empty_site.get("/metrics").status == 200
    assert empty_site.get("/svg/check/web1/ping").status == 200


def test_damaged_state_dir_without_config(tmp_path: Path) -> None:
    tree = empty_tree(tmp_path)
    write_raw(tree.state / "daemon.json", "{torn")
    write_raw(tree.state / "queue.json", {"items": [{"id": "x1", "hosts": "web1"}, 7]})
    write_raw(tree.state / "host" / "web1" / "http" / "check.json", b"\x00\x01")
    write_raw(tree.state / "host" / "web1" / "http" / "ack.json", {"version": 1})
    write_raw(tree.state / "host" / "web1" / "ping" / "check.json", {"version": 0, "rc": 1})
    write_raw(tree.history / "host" / "web1" / "http" / "check-2026-11.jsonl", 'x\n{"t": 5}\n{"t"')
    for site in serve(tree, configured=None):
        for path in ("/", "/host/web1", "/check/web1/http", "/check/web1/ping", "/queue"):
            a = site.get(path)
            assert a.status == 200, path
        check = site.get("/api/check/web1/http").json()
        assert check["state"]["error"]
        assert site.get("/api/summary").json()["errors"]
        assert site.get("/svg/check/web1/http").status == 200


def test_snapshot_is_cached_briefly(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    clock = FakeClock(NOW)
    source = StatusSource(tree.state, tree.history, clock, cache_s=1.0)
    first = source.snapshot()
    assert source.snapshot() is first
    clock.advance(1.5)
    assert source.snapshot() is not first


def test_a_slow_read_serves_everyone_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that takes longer than the cache (20,000 pairs: about a second) must still
    serve the requests that waited for it, not leave them to read everything again."""
    from survivor.views.web import source as source_module

    tree = full_tree(tmp_path)
    clock = FakeClock(NOW)
    source = StatusSource(tree.state, tree.history, clock, cache_s=1.0)
    reads: list[float] = []
    real_read = source_module.read_snapshot

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        reads.append(clock.monotonic())
        clock.advance(1.05)  # the read itself takes longer than the cache lasts
        return real_read(*args, **kwargs)

    monkeypatch.setattr(source_module, "read_snapshot", slow_read)
    first = source.snapshot()
    assert source.snapshot() is first  # the request that waited behind the read
    assert len(reads) == 1


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind(":9000") == ("127.0.0.1", 9000)
    assert parse_bind("[::1]:8080") == ("::1", 8080)
    for bad in ("8080", "host:", "host:http", "1.2.3.4:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_bind(bad)


# --------------------------------------------------------------------------- the command


def test_web_command_serves_until_ctrl_c(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "--config", str(tree.config), "web", "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        with urllib.request.urlopen(m[1] + "api/summary", timeout=10) as r:
            assert json.loads(r.read())["total"] == 6
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        out, err = proc.communicate()
        assert "Traceback" not in err and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_web_command_refuses_a_bad_bind(tmp_path: Path) -> None:
    tree = full_tree(tmp_path)
    with socket_in_use() as port:
        proc = subprocess.run(
            [sys.executable, "-c", ENTRY, "-c", str(tree.config), "web", "--bind", f":{port}"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=20,
        )
    assert proc.returncode == 1 and f"cannot listen on :{port}" in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-c", ENTRY, "-c", str(tree.config), "web", "--bind", "nope"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=20,
    )
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr


@contextlib.contextmanager
def socket_in_use() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- hardening


def test_a_large_constant_scalar_plots(tmp_path: Path) -> None:
    """A constant 2e16 once gave the value axis a zero span (2e16 - 1 == 2e16): a 500."""
    from survivor.views.web.plot import scalar_plot, widen

    low, high = widen(2e16, 2e16)
    assert low < 2e16 < high
    records = [{"t": f"2026-11-24T10:{m:02d}:00.000Z", "scalar": 2e16, "fp": "a"} for m in range(5)]
    root = ET.fromstring(scalar_plot(records))
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 5


def test_the_listen_backlog_holds_a_burst_of_connections(tmp_path: Path) -> None:
    """With socketserver's backlog of 5, a burst of 200 parallel requests overflowed the
    listen queue and clients waited for SYN retries (15-54 s). Connections the server has
    not accepted yet must all be queued by the kernel."""
    import socket

    source = StatusSource(tmp_path / "state", tmp_path / "history", FakeClock(NOW))
    server = make_server("127.0.0.1", 0, source)  # bound and listening, not accepting
    clients: list[socket.socket] = []
    try:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            s.connect(server.server_address)  # times out once the backlog is full
            clients.append(s)
        assert len(clients) == 100
    finally:
        for s in clients:
            s.close()
        server.server_close()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("[::1]:{port}", 200),
        ("monitor.example.org", 200),  # given with --hostname
        ("evil.example:{port}", 421),  # a DNS-rebinding page's own name
        ("localhost.evil.example", 421),
    ],
)
def test_only_known_host_names_are_served(tmp_path: Path, host: str, status: int) -> None:
    tree = full_tree(tmp_path / "tree")
    source = StatusSource(tree.state, tree.history, FakeClock(NOW), configured=CONFIGURED)
    server = make_server("127.0.0.1", 0, source, ["monitor.example.org"])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.putrequest("GET", "/api/summary", skip_host=True)
        conn.putheader("Host", host.format(port=server.server_address[1]))
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert resp.status == status, body[:200]
    if status == 421:
        assert b"--hostname" in body


def test_results_are_marked_stale_while_the_daemon_is_down(tmp_path: Path) -> None:
    """The rows looked current after the daemon had stopped: now the page says so."""
    tree = full_tree(tmp_path / "tree")
    for site in serve(tree):  # no process holds the pidfile: not running
        for path in ("/", "/host/web1", "/check/web1/http", "/queue"):
            assert '<main class="stale">' in site.get(path).text, path
    with hold_pidfile(tree.state):
        for site in serve(tree):
            assert "<main>" in site.get("/").text
            assert "main.stale" in site.get("/static/survivor.css").text
            assert 'classList.toggle("stale"' in site.get("/static/survivor.js").text


def test_the_check_page_shows_a_plugins_long_output(tmp_path: Path) -> None:
    tree = full_tree(tmp_path / "tree")
    path = tree.state / "host" / "db1" / "disk" / "check.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "long_output": "/ 91%\n<b>x</b>"}))
    for site in serve(tree):
        page = site.get("/check/db1/disk").text
        assert 'data-k="state.long_output" data-blank>/ 91%\n&lt;b&gt;x&lt;/b&gt;</pre>' in page
        assert site.get("/api/check/db1/disk").json()["state"]["long_output"] == "/ 91%\n<b>x</b>"


def test_overview_says_how_many_checks_wait_for_room(tmp_path: Path) -> None:
    tree = full_tree(tmp_path / "tree")
    doc = json.loads((tree.state / "daemon.json").read_text())
    doc["pools"]["check"].update(waiting=250, waiting_s=42)
    write_raw(tree.state / "daemon.json", json.dumps(doc))
    with hold_pidfile(tree.state):
        for site in serve(tree):
            assert "250 WAITING for room, the oldest 42s" in site.get("/").text
