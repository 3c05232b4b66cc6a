"""The HTTP server: routes, status codes and headers, on the standard library.

`respond()` maps a method and a path to a `Response` without any socket, so
every route is testable as a function; `Handler` only moves bytes. Read-only,
only GET and HEAD exist (405 for anything else); with a `web:` users file or
trusted header, `front.answer` (sessions, login, actions) is put in front and
POST is answered too. Path segments are decoded and then checked as survivor
names before they reach a file name: `..`, slashes and other unsafe names are
400, unknown hosts or checks 404, never 500.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from survivor.clock import parse_iso, utc_iso
from survivor.config.build_web import is_loopback as is_loopback  # re-exported
from survivor.config.build_web import parse_bind as parse_bind  # re-exported
from survivor.model.names import is_safe_name
from survivor.views.metrics import collect
from survivor.views.web import assets, forms, pages
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
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
ALLOWED = "GET, HEAD"
MAX_BODY = 64 * 1024  # a form is a few hundred bytes
REPORT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    cache: str = "no-store"
    extra_headers: tuple[tuple[str, str], ...] = ()


class BadRequest(Exception):
    """A path that names something unsafe: 400."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request as `front.answer` needs it (the read-only server needs only the first two)."""

    method: str
    path: str  # as sent, with the query
    cookies: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)  # a POST's fields
    client: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at the page: with a user and token, the pages carry the action forms."""

    user: str | None = None
    csrf: str | None = None
    can_login: bool = False

    def who(self) -> str:
        return forms.who_bar(self.user, self.csrf, can_login=self.can_login)

    def tools(self, selection: str, back: str, *, free: bool = False) -> str:
        if self.user is None or self.csrf is None:
            return ""
        return forms.action_form(self.csrf, selection, back, free=free)


READ_ONLY = Viewer()


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


def not_allowed(message: str = "this page is read-only", allow: str = ALLOWED) -> Response:
    return Response(
        405,
        HTML,
        pages.error_page(405, "Method Not Allowed", message).encode(),
        extra_headers=(("Allow", allow),),
    )


def respond(
    source: StatusSource, method: str, raw_path: str, viewer: Viewer = READ_ONLY
) -> Response:
    """The answer to one request (HEAD gets GET's answer; the handler drops the body)."""
    if method not in ("GET", "HEAD"):
        return not_allowed()
    api = urlsplit(raw_path).path.startswith("/api/")
    try:
        parts = segments(raw_path)
        return _route(source, parts, urlsplit(raw_path).query, viewer)
    except (BadRequest, UnicodeDecodeError) as err:
        return error(400, str(err), api=api)


def _route(source: StatusSource, parts: list[str], query: str, viewer: Viewer) -> Response:
    who = viewer.who()
    match parts:
        case [""]:
            tools = viewer.tools("", "/", free=True)
            return _html(pages.overview_page(source.summary(), tools=tools, who=who))
        case ["queue"]:
            return _html(pages.queue_page(source.queue(), who=who))
        case ["host", host]:
            detail = source.host(_name(host, "host"))
            if detail is None:
                return error(404, f"no host named {host!r} in the state or the configuration")
            tools = viewer.tools(host, pages.host_href(host))
            return _html(pages.host_page(detail, tools=tools, who=who))
        case ["check", host, check]:
            cdetail = source.check(_name(host, "host"), _name(check, "check"))
            if cdetail is None:
                return error(404, f"no check {check!r} on host {host!r}")
            svg = scalar_plot(source.plot_records(host, check))
            tools = viewer.tools(f"{host}/{check}", pages.check_href(host, check))
            return _html(pages.check_page(cdetail, svg, tools=tools, who=who))
        case ["report", host] | ["report", host, _]:
            return _report(source, host, parts[2] if len(parts) == 3 else None, query, who)
        case ["api", "report", host] | ["api", "report", host, _]:
            data = _report_data(source, host, parts[3] if len(parts) == 4 else None, query)
            if data is None:
                return error(404, f"no configured host or pair {'/'.join(parts[2:])!r}", api=True)
            return _json(data)
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
        case ["act"] | ["logout"]:
            return not_allowed("this address only takes the page's forms (POST)", "POST")
        case ["login"]:
            return error(404, "this page is read-only: the config's web: section names no users")
    return error(404, "no such page")


def _period(source: StatusSource, query: str) -> tuple[datetime, datetime]:
    """since/until (ISO 8601 or a date) or days=N from the query; 30 days to now by default."""
    q = {k: v[-1] for k, v in parse_qs(query).items() if v}

    def when(key: str) -> datetime | None:
        text = q.get(key, "").strip()
        if not text:
            return None
        try:
            return parse_iso(text)
        except ValueError:
            raise BadRequest(
                f"{key}={text!r} is not a time; use ISO 8601 (2026-11-01T00:00:00Z) or a date"
            ) from None

    until = when("until") or source.clock.now()
    days = q.get("days", "")
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3660:
            raise BadRequest(f"days={days!r} is not a number of days (1..3660)")
        since = until - timedelta(days=int(days))
    else:
        since = when("since") or until - timedelta(days=REPORT_DAYS)
    if since >= until:
        raise BadRequest(f"since {utc_iso(since)} is not before until {utc_iso(until)}")
    return since, until


def _report_data(
    source: StatusSource, host: str, check: str | None, query: str
) -> dict[str, Any] | None:
    _name(host, "host")
    if check is not None:
        _name(check, "check")
    since, until = _period(source, query)
    rows = source.availability(host, check, since, until)
    if rows is None:
        return None
    return {
        "title": host if check is None else f"{check}@{host}",
        "since": utc_iso(since),
        "until": utc_iso(until),
        "back": pages.host_href(host) if check is None else pages.check_href(host, check),
        "rows": rows,
    }


def _report(source: StatusSource, host: str, check: str | None, query: str, who: str) -> Response:
    data = _report_data(source, host, check, query)
    if data is None:
        what = f"host {host!r}" if check is None else f"check {check!r} on host {host!r}"
        return error(404, f"no configured {what} (the report needs the configuration)")
    return _html(forms.report_page(data, forms.report_path(host, check), who))


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

    def do_POST(self) -> None:
        self._answer(head=False)

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in this request's thread, not at accept

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server answers 501 for methods without a do_ method; we say 405.
        if name.startswith("do_"):
            return self._answer_not_allowed
        raise AttributeError(name)

    def _answer_not_allowed(self) -> None:
        self.close_connection = True  # its body, if any, was not read
        self._send(respond(self.server.source, self.command, self.path), head=False)

    def _answer(self, *, head: bool) -> None:
        host = self.headers.get("Host")
        if not self.server.accepts_host(host):
            log.warning("web: refused a request for host %r (DNS rebinding?)", host)
            self._send(misdirected(host), head=head)
            return
        try:
            if self.server.answer is None:
                resp = respond(self.server.source, self.command, self.path)
                if self.command not in ("GET", "HEAD"):
                    self.close_connection = True  # its body, if any, was not read
            else:
                req, refusal = self._request()
                resp = refusal or self.server.answer(req)
        except Exception:
            log.exception("web: %s %s failed", self.command, self.path)
            resp = error(500, "internal error; see the server's log")
        self._send(resp, head=head)

    def _request(self) -> tuple[Request, Response | None]:
        """The request as `front.answer` takes it, or a refusal of its body."""
        cookies: dict[str, str] = {}
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
            cookies = {k: m.value for k, m in jar.items()}
        except CookieError:
            pass  # a cookie we cannot read is no session
        headers = {k.lower(): v for k, v in self.headers.items()}
        form: dict[str, list[str]] = {}
        if self.command == "POST":
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.isdigit():
                self.close_connection = True
                return Request("POST", self.path), error(411, "a POST needs a Content-Length")
            length = int(length_text)
            if length > MAX_BODY:
                self.close_connection = True
                return Request("POST", self.path), error(413, "the form is too large")
            body = self.rfile.read(length)
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind != "application/x-www-form-urlencoded":
                return Request("POST", self.path), error(
                    415, "the page's forms send application/x-www-form-urlencoded"
                )
            try:
                form = parse_qs(body.decode("utf-8"), strict_parsing=False)
            except (UnicodeDecodeError, ValueError):
                return Request("POST", self.path), error(400, "the form is not UTF-8")
        return (
            Request(self.command, self.path, cookies, form, self.client_address[0], headers),
            None,
        )

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
        self,
        address: tuple[str, int],
        source: StatusSource,
        hostnames: Iterable[str] = (),
        answer: Callable[[Request], Response] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.source = source
        self.answer = answer
        self.hostnames = frozenset(h.lower() for h in hostnames) | {address[0].lower()}
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(str(tls[0]), str(tls[1]))
            except (OSError, ssl.SSLError) as err:
                self.server_close()
                raise OSError(f"web.tls_cert/tls_key {tls[0]}, {tls[1]}: {err}") from err
            self.socket = context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops the connection or fails the TLS handshake is not news.
        log.debug("web: connection from %s failed", client_address, exc_info=True)

    def accepts_host(self, header: str | None) -> bool:
        """Whether a request's Host header names this server (DNS rebinding, below)."""
        return host_allowed(header, self.hostnames)


def make_server(
    host: str,
    port: int,
    source: StatusSource,
    hostnames: Iterable[str] = (),
    *,
    answer: Callable[[Request], Response] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> SurvivorServer:
    """A bound, not yet serving server; port 0 picks a free one (see `server_address`).

    `hostnames` are the names (besides IP addresses, `localhost` and the bind host)
    that clients may use in the Host header to reach it. `answer` (`front.answer` with
    its gate) takes every request when the page may act; `tls`: (cert, key) files.
    """
    return SurvivorServer((host, port), source, hostnames, answer, tls)


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
