"""The read-only HTTP server: routes, status codes and headers, on the standard library.

`respond()` maps a method and a path to a `Response` without any socket, so
every route is testable as a function; `Handler` only moves bytes. Only GET
and HEAD exist (405 for anything else). Path segments are decoded and then
checked as survivor names before they reach a file name: `..`, slashes and
other unsafe names are 400, unknown hosts or checks 404, never 500.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from survivor.model.names import is_safe_name
from survivor.views.metrics import collect
from survivor.views.web import assets, pages
from survivor.views.web.plot import scalar_plot
from survivor.views.web.source import StatusSource

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
SVG = "image/svg+xml; charset=utf-8"
PROM = "text/plain; version=0.0.4; charset=utf-8"
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
ALLOWED = "GET, HEAD"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    cache: str = "no-store"
    extra_headers: tuple[tuple[str, str], ...] = ()


class BadRequest(Exception):
    """A path that names something unsafe: 400."""


def _html(text: str, status: int = 200) -> Response:
    return Response(status, HTML, text.encode())


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
    return Response(status, JSON, body.encode())


def error(status: int, message: str, *, api: bool = False) -> Response:
    reason = HTTPStatus(status).phrase
    if api:
        return _json({"error": message, "status": status}, status)
    return _html(pages.error_page(status, reason, message), status)


def segments(raw_path: str) -> list[str]:
    """The decoded path segments; a trailing slash is ignored."""
    path = urlsplit(raw_path).path
    if not path.startswith("/"):
        raise BadRequest("the path must start with /")
    parts = [unquote(p, errors="strict") for p in path[1:].split("/")]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    for p in parts:
        if p in (".", "..") or "/" in p or "\x00" in p:
            raise BadRequest(f"path segment {p!r} is not allowed")
    return parts


def _name(value: str, what: str) -> str:
    if not is_safe_name(value):
        raise BadRequest(f"{value!r} is not a valid {what} name")
    return value


def respond(source: StatusSource, method: str, raw_path: str) -> Response:
    """The answer to one request (HEAD gets GET's answer; the handler drops the body)."""
    if method not in ("GET", "HEAD"):
        return Response(
            405,
            HTML,
            pages.error_page(405, "Method Not Allowed", "this page is read-only").encode(),
            extra_headers=(("Allow", ALLOWED),),
        )
    api = urlsplit(raw_path).path.startswith("/api/")
    try:
        parts = segments(raw_path)
        return _route(source, parts)
    except (BadRequest, UnicodeDecodeError) as err:
        return error(400, str(err), api=api)


def _route(source: StatusSource, parts: list[str]) -> Response:
    match parts:
        case [""]:
            return _html(pages.overview_page(source.summary()))
        case ["queue"]:
            return _html(pages.queue_page(source.queue()))
        case ["host", host]:
            detail = source.host(_name(host, "host"))
            if detail is None:
                return error(404, f"no host named {host!r} in the state or the configuration")
            return _html(pages.host_page(detail))
        case ["check", host, check]:
            cdetail = source.check(_name(host, "host"), _name(check, "check"))
            if cdetail is None:
                return error(404, f"no check {check!r} on host {host!r}")
            return _html(pages.check_page(cdetail, scalar_plot(source.plot_records(host, check))))
        case ["svg", "check", host, check]:
            if source.check(_name(host, "host"), _name(check, "check")) is None:
                return error(404, f"no check {check!r} on host {host!r}")
            return Response(200, SVG, scalar_plot(source.plot_records(host, check)).encode())
        case ["api", "summary"]:
            return _json(source.summary())
        case ["api", "queue"]:
            return _json(source.queue())
        case ["api", "host", host]:
            detail = source.host(_name(host, "host"))
            if detail is None:
                return error(404, f"no host named {host!r}", api=True)
            return _json(detail)
        case ["api", "check", host, check]:
            cdetail = source.check(_name(host, "host"), _name(check, "check"))
            if cdetail is None:
                return error(404, f"no check {check!r} on host {host!r}", api=True)
            return _json(cdetail)
        case ["metrics"]:
            return Response(200, PROM, collect(source.state_dir, source.clock.now()).encode())
        case ["static", "survivor.js"]:
            return Response(
                200, "text/javascript; charset=utf-8", assets.SCRIPT.encode(), "max-age=300"
            )
        case ["static", "survivor.css"]:
            return Response(200, "text/css; charset=utf-8", assets.STYLE.encode(), "max-age=300")
        case ["api", *_]:
            return error(404, "no such API endpoint", api=True)
    return error(404, "no such page")


class Handler(BaseHTTPRequestHandler):
    """Moves one request's answer onto the socket; any bug becomes a 500, never a dead thread."""

    server: SurvivorServer
    server_version = "survivor-web"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that sends nothing does not hold a thread for ever

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server answers 501 for methods without a do_ method; we say 405.
        if name.startswith("do_"):
            return self._answer_not_allowed
        raise AttributeError(name)

    def _answer_not_allowed(self) -> None:
        self._send(respond(self.server.source, self.command, self.path), head=False)

    def _answer(self, *, head: bool) -> None:
        host = self.headers.get("Host")
        if not self.server.accepts_host(host):
            log.warning("web: refused a request for host %r (DNS rebinding?)", host)
            self._send(misdirected(host), head=head)
            return
        try:
            resp = respond(self.server.source, self.command, self.path)
        except Exception:
            log.exception("web: %s %s failed", self.command, self.path)
            resp = error(500, "internal error; see the server's log")
        self._send(resp, head=head)

    def _send(self, resp: Response, *, head: bool) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", resp.cache)
        for key, value in (*SECURITY_HEADERS, *resp.extra_headers):
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(resp.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web: %s " + format, self.address_string(), *args)


class SurvivorServer(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog (socketserver's default is 5): with 5, 200 parallel requests
    # overflowed the queue 463 times and the slowest took 15-54 s; with 128, 0.12 s.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], source: StatusSource, hostnames: Iterable[str] = ()
    ) -> None:
        self.source = source
        self.hostnames = frozenset(h.lower() for h in hostnames) | {address[0].lower()}
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def accepts_host(self, header: str | None) -> bool:
        """Whether a request's Host header names this server (DNS rebinding, below)."""
        return host_allowed(header, self.hostnames)


def make_server(
    host: str, port: int, source: StatusSource, hostnames: Iterable[str] = ()
) -> SurvivorServer:
    """A bound, not yet serving server; port 0 picks a free one (see `server_address`).

    `hostnames` are the names (besides IP addresses, `localhost` and the bind host)
    that clients may use in the Host header to reach it.
    """
    return SurvivorServer((host, port), source, hostnames)


LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """A DNS-rebinding page in a browser on the monitoring host reaches the loopback
    server under its own name (Host: evil.example), so only names we know are served:
    an IP address (a rebinding page cannot send one for its own origin), `localhost`, the
    bind host, and the names given (`--hostname`). No Host at all (HTTP/1.0 tools) is
    not a browser and is served."""
    if header is None:
        return True
    host = header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in LOCAL_NAMES or host in names
    return True


def misdirected(host: str | None) -> Response:
    return error(
        421,
        f"this server does not answer for host {host!r}; start `survivor web` with"
        " --hostname NAME to serve it under that name",
    )


def parse_bind(text: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080` or `:8080` (loopback)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
