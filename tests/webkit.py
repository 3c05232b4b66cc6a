"""A status page that may act, on a scratch tree, and a small cookie-keeping HTTP client.

The page is wired as `survivor web` wires it (cli/web_cmds `_front`): the
config's `web:` section, the users file `survivor web passwd` writes, the
same `web_act` over the real StateStore and HistoryStore. Its clock is a
FakeClock, so a slowed login jumps the clock instead of waiting.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import re
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from survivor.cli.web_actions import web_act
from survivor.clock import Clock
from survivor.config import load_config
from survivor.model.config import FsyncPolicy
from survivor.store.fsio import FileWriter
from survivor.store.history import HistoryStore
from survivor.store.passwords import set_password
from survivor.store.state import StateStore
from survivor.views.web import StatusSource, make_server
from survivor.views.web.auth import Gate
from survivor.views.web.front import answer
from survivor.views.web.server import SurvivorServer
from tests.fakes import FakeClock
from tests.viewstate import CONFIG, NOW, Tree, full_tree, write_config

PASSWORDS = {"alice": "correct horse", "bob": "battery staple"}
_USERS_TEXT: dict[str, str] = {}


def users_file(path: Path) -> Path:
    """alice and bob, hashed once per test session (argon2 takes a while on purpose)."""
    if "text" not in _USERS_TEXT:
        scratch = path.with_name(".users-scratch")
        for user, password in PASSWORDS.items():
            set_password(scratch, user, password)
        _USERS_TEXT["text"] = scratch.read_text()
        scratch.unlink()
    path.write_text(_USERS_TEXT["text"])
    path.chmod(0o600)
    return path


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert found, f"no CSRF field in the page ({self.status})"
        return found.group(1)

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class Browser:
    """Keeps the session cookie like a browser; every request can override it."""

    port: int
    tls: bool = False
    cookie: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        fields: Mapping[str, str] | None = None,
        *,
        cookie: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=30, context=ctx
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(self.headers)
        sent.update(headers or {})
        jar = cookie if cookie is not None else self.cookie
        if jar:
            sent["Cookie"] = f"survivor_session={jar}"
        body = None
        if fields is not None:
            body = urlencode(fields).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            got = Answer(resp.status, resp.msg, resp.read())
        finally:
            conn.close()
        for line in got.cookies():
            value = line.split(";", 1)[0].partition("=")[2]
            if cookie is None:
                self.cookie = value or None
        return got

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, fields: Mapping[str, str], **kw: Any) -> Answer:
        return self.request("POST", path, fields, **kw)

    def login(self, user: str, password: str | None = None) -> Answer:
        form = self.get("/login")
        assert form.status == 200, form.text
        return self.post(
            "/login",
            {
                "csrf": form.csrf(),
                "user": user,
                "password": PASSWORDS[user] if password is None else password,
                "next": "/",
            },
        )

    def token(self, path: str = "/") -> str:
        return self.get(path).csrf()


@dataclass
class ActingSite:
    tree: Tree
    server: SurvivorServer
    gate: Gate
    clock: Clock

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def browser(self, **kw: Any) -> Browser:
        return Browser(self.port, tls=self.server.socket.__class__.__name__ == "SSLSocket", **kw)

    def files(self) -> dict[str, str]:
        """Every file under state/ and history/ with a hash of its bytes: 'nothing changed'."""
        out = {}
        for top in (self.tree.state, self.tree.history):
            for path in sorted(top.rglob("*")):
                if path.is_file() and not path.name.endswith(".lock"):
                    out[str(path.relative_to(self.tree.root))] = hashlib.sha256(
                        path.read_bytes()
                    ).hexdigest()
        return out

    def commands(self, host: str, check: str) -> list[dict[str, Any]]:
        return list(self.tree.hist.read(host, check, "command"))


WEB_USERS = "web:\n  users: web-users\n"
WEB_PROXY = "web:\n  bind: 127.0.0.1:0\n  trust_header: X-Remote-User\n"


@contextlib.contextmanager
def acting_site(
    root: Path,
    web: str = WEB_USERS,
    *,
    clock: Clock | None = None,
    first_delay: float = 1.0,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[ActingSite]:
    tree = full_tree(root)
    write_config(root, CONFIG + web)
    if "users:" in web:
        users_file(tree.config.parent / "web-users")
    config = load_config(tree.config)
    assert config.web is not None
    clock = clock or FakeClock(NOW + timedelta(seconds=5))
    writer = FileWriter(FsyncPolicy.NEVER)
    gate = Gate(
        clock=clock,
        act=web_act(
            config, StateStore(tree.state, writer), HistoryStore(tree.history, writer), clock
        ),
        users_file=config.web.users,
        trust_header=config.web.trust_header,
        secure=tls is not None,
        first_delay=first_delay,
    )
    source = StatusSource(tree.state, tree.history, clock, cache_s=0, config=config)
    server = make_server(
        "127.0.0.1", 0, source, answer=functools.partial(answer, source, gate), tls=tls
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield ActingSite(tree, server, gate, clock)
    finally:
        gate.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A command record without its time and op id: what must match the CLI's."""
    return {k: v for k, v in record.items() if k not in ("t", "op_id", "v")}


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
