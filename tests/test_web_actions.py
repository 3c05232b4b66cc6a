"""Web actions with login (issue 22 part 3), over raw HTTP: what acts, and what is refused.

Each refusal is checked twice: the answer is a 4xx, and no file under state/
or history/ changed (`ActingSite.files`). The acting path is checked against
the CLI: the same command record, with the logged-in user as `user`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from survivor.cli.app import App
from survivor.cli.web_cmds import _front
from survivor.clock import SystemClock
from survivor.views.web import StatusSource, make_server
from survivor.views.web.auth import COOKIE
from tests.cli.conftest import Cli
from tests.fakes import FakeClock
from tests.viewstate import NOW, full_tree, state
from tests.webkit import WEB_PROXY, ActingSite, Browser, acting_site, record_fields


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ActingSite]:
    with acting_site(tmp_path / "tree") as s:
        # web2/http fails, unacknowledged: something to act on
        s.tree.store.write_check("web2", "http", state(1, minutes_ago=1, comment="refused"))
        yield s


def logged_in(site: ActingSite, user: str = "alice") -> Browser:
    b = site.browser()
    done = b.login(user)
    assert done.status == 303, done.text
    return b


def ack_form(token: str, target: str = "web2/http") -> dict[str, str]:
    return {"csrf": token, "action": "ack", "selection": target, "comment": "looking"}


# --------------------------------------------------------------------------- acting


def test_log_in_and_ack_records_the_web_user(site: ActingSite) -> None:
    b = logged_in(site)
    page = b.get("/check/web2/http")
    assert page.status == 200
    assert 'action="/act"' in page.text and 'value="web2/http"' in page.text
    assert '<span class="user">alice</span>' in page.text
    done = b.post("/act", ack_form(page.csrf()))
    assert done.status == 200, done.text
    assert "acknowledged web2/http" in done.text
    ack = site.tree.store.read_pair_doc("web2", "http", "ack")
    assert ack is not None and ack["user"] == "alice" and ack["comment"] == "looking"
    (record,) = site.commands("web2", "http")
    assert record_fields(record) == {
        "user": "alice",
        "command": "ack",
        "comment": "looking",
        "rc": 1,
        "code": "PROBLEM",
    }
    assert record["op_id"] in done.text
    # and the check page shows it
    after = b.get("/check/web2/http").text
    assert "Acknowledged (PROBLEM) by alice" in after
    assert "command=ack" in after and "user=alice" in after


def test_the_web_writes_the_record_the_cli_writes(site: ActingSite, tmp_path: Path) -> None:
    """The same action through `survivor ack` and through the page: one record shape."""
    b = logged_in(site)
    b.post("/act", ack_form(b.token(), "web2/http"))
    with acting_site(tmp_path / "other") as other:
        other.tree.store.write_check("web2", "http", state(1, minutes_ago=1, comment="refused"))
        result = Cli(other.tree)("ack", "web2/http", "-m", "looking")
        assert result.exit_code == 0, result.output
        (cli_record,) = other.commands("web2", "http")
    (web_record,) = site.commands("web2", "http")
    assert set(web_record) == set(cli_record)
    assert {**record_fields(cli_record), "user": "alice"} == record_fields(web_record)


def test_a_selection_inhibit_with_until_and_a_downtime(site: ActingSite) -> None:
    b = logged_in(site, "bob")
    token = b.token()
    done = b.post(
        "/act",
        {"csrf": token, "action": "inhibit", "selection": "*/http", "until": "+2h", "comment": "x"},
    )
    assert done.status == 200 and "2 of 2 pairs acted on" in done.text, done.text
    for host in ("web1", "web2"):
        doc = site.tree.store.read_pair_doc(host, "http", "inhibit")
        assert doc is not None and doc["user"] == "bob"
        assert doc["until"].startswith("2026-11-24T12:00:05")
    ops = {
        r["op_id"]
        for h in ("web1", "web2")
        for r in site.commands(h, "http")
        if r["command"] == "inhibit"
    }
    assert len(ops) == 1  # one operation, as one CLI invocation
    down = b.post(
        "/act",
        {"csrf": token, "action": "downtime", "selection": "", "group": "servers", "until": "+1h"},
    )
    assert down.status == 200 and "pair(s) of --group servers" in down.text, down.text
    downtimes, _ = site.tree.store.read_downtimes()
    (dt,) = downtimes
    assert dt.user == "bob" and len(dt.pairs) == 6 and dt.end == NOW + timedelta(hours=1, seconds=5)
    assert site.commands("db1", "ping")[-1]["command"] == "downtime"


def test_reschedule_escalate_and_unack(site: ActingSite) -> None:
    b = logged_in(site)
    token = b.token()
    again = b.post("/act", {"csrf": token, "action": "reschedule", "selection": "web1"})
    assert again.status == 200 and "rescheduled web1/ping" in again.text
    assert len(list((site.tree.state / "requests").glob("*.json"))) == 2
    esc = b.post("/act", {"csrf": token, "action": "escalate", "selection": "web2/http"})
    assert esc.status == 409 and "has no alert plan" in esc.text  # refused as the CLI refuses
    un = b.post("/act", {"csrf": token, "action": "unack", "selection": "web1/http"})
    assert un.status == 200 and "unacknowledged web1/http (was by alice)" in un.text
    assert site.commands("web1", "http")[-1]["user"] == "alice"


def test_a_bad_selection_or_time_is_a_400_naming_it(site: ActingSite) -> None:
    b = logged_in(site)
    token = b.token()
    before = site.files()
    nope = b.post("/act", {"csrf": token, "action": "ack", "selection": "web9/http"})
    assert nope.status == 400 and "no host named &#x27;web9&#x27;" in nope.text
    late = b.post(
        "/act", {"csrf": token, "action": "inhibit", "selection": "web1", "until": "soonish"}
    )
    assert late.status == 400 and "soonish" in late.text
    odd = b.post("/act", {"csrf": token, "action": "delete", "selection": "web1"})
    assert odd.status == 400 and "unknown action" in odd.text
    assert site.files() == before


# --------------------------------------------------------------------------- refusals


def test_refused_posts_change_nothing(site: ActingSite) -> None:
    alice = logged_in(site)
    alice_token = alice.token()
    bob = logged_in(site, "bob")
    bob_token = bob.token()
    visitor = site.browser()
    visitor_token = visitor.get("/login").csrf()  # an anonymous session and its token
    before = site.files()
    refusals = {
        "no session": site.browser().post("/act", ack_form(alice_token)),
        "no token": alice.post("/act", {k: v for k, v in ack_form("").items() if k != "csrf"}),
        "empty token": alice.post("/act", ack_form("")),
        "wrong token": alice.post("/act", ack_form(alice_token[:-2] + "xx")),
        "another user's token": alice.post("/act", ack_form(bob_token)),
        "another user's session": bob.post("/act", ack_form(alice_token)),
        "not logged in": visitor.post("/act", ack_form(visitor_token)),
        "unknown session": alice.post("/act", ack_form(alice_token), cookie="made-up"),
    }
    for what, answer in refusals.items():
        assert answer.status == 403, (what, answer.status)
    assert site.files() == before
    # a GET that tries to act, even with a good session and token
    get = alice.get(f"/act?csrf={alice_token}&action=ack&selection=web2/http")
    assert get.status == 405 and get.headers["Allow"] == "POST"
    looks = alice.get(f"/check/web2/http?csrf={alice_token}&action=ack&selection=web2/http")
    assert looks.status == 200
    assert site.files() == before
    # after logging out, the old cookie and token act no more
    cookie = alice.cookie
    assert alice.post("/logout", {"csrf": alice_token}).status == 303
    assert alice.post("/act", ack_form(alice_token), cookie=cookie).status == 403
    assert site.files() == before


def test_a_wrong_password_is_refused_logged_and_slowed(
    site: ActingSite, caplog: pytest.LogCaptureFixture
) -> None:
    b = site.browser()
    token = b.get("/login").csrf()
    before = site.files()
    start = site.clock.monotonic()
    with caplog.at_level(logging.WARNING, logger="survivor.views.web.auth"):
        wrong = b.post("/login", {"csrf": token, "user": "alice", "password": "horse", "next": "/"})
    assert wrong.status == 403 and "wrong user or password" in wrong.text
    assert site.clock.monotonic() - start >= 1.0  # the FakeClock jumped over the delay
    assert any("failed login for user 'alice'" in r.getMessage() for r in caplog.records)
    start = site.clock.monotonic()
    b.post("/login", {"csrf": token, "user": "alice", "password": "staple", "next": "/"})
    assert site.clock.monotonic() - start >= 2.0  # doubles with each failure in a row
    start = site.clock.monotonic()
    nobody = b.post("/login", {"csrf": token, "user": "mallory", "password": "x", "next": "/"})
    assert nobody.status == 403 and "wrong user or password" in nobody.text
    assert b.post("/act", ack_form(token)).status == 403  # still not logged in
    assert site.files() == before
    # the right password still works, and resets the count
    assert b.login("alice").status == 303


def test_a_slowed_login_does_not_hold_up_other_requests(tmp_path: Path) -> None:
    with acting_site(tmp_path / "tree", clock=SystemClock(), first_delay=3.0) as site:
        b = site.browser()
        token = b.get("/login").csrf()
        answers: list[int] = []
        failing = threading.Thread(
            target=lambda: answers.append(
                b.post(
                    "/login", {"csrf": token, "user": "alice", "password": "no", "next": "/"}
                ).status
            )
        )
        clock = SystemClock()
        start = clock.monotonic()
        failing.start()
        pages = [site.browser().get("/").status for _ in range(3)]
        served = clock.monotonic() - start
        assert not answers, "the failed login was answered before its delay"
        failing.join(30)
    assert pages == [200, 200, 200] and served < 2.5
    assert answers == [403]


def test_login_sets_a_new_session_and_strict_cookies(site: ActingSite) -> None:
    b = site.browser()
    form = b.get("/login")
    (visitor_cookie,) = form.cookies()
    before = b.cookie
    done = b.post(
        "/login",
        {"csrf": form.csrf(), "user": "alice", "password": "correct horse", "next": "//evil/"},
    )
    assert done.status == 303 and done.headers["Location"] == "/"  # never off-site
    (cookie,) = done.cookies()
    assert b.cookie != before  # no session fixation: the visitor's id is not promoted
    for line in (visitor_cookie, cookie):
        assert line.startswith(f"{COOKIE}=")
        assert "; HttpOnly" in line and "; SameSite=Strict" in line and "Secure" not in line
    assert site.browser().post("/act", ack_form(form.csrf()), cookie=before).status == 403


def test_the_page_without_web_users_stays_read_only(tmp_path: Path) -> None:
    """No `web:` section: `survivor web` puts nothing in front; no forms, no POST."""
    tree = full_tree(tmp_path / "tree")
    app = App(tree.config)
    answer, mode = _front(app, app.config.web, "127.0.0.1", None)  # type: ignore[arg-type]
    assert answer is None and mode.startswith("read-only")
    source = StatusSource(tree.state, tree.history, FakeClock(NOW), config=app.config)
    server = make_server("127.0.0.1", 0, source, answer=answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        b = Browser(int(server.server_address[1]))
        before = ActingSite(tree, server, None, FakeClock()).files()  # type: ignore[arg-type]
        page = b.get("/check/web1/http")
        assert page.status == 200 and '<form method="post"' not in page.text
        assert "log in" not in page.text
        assert b.get("/login").status == 404
        posted = b.post("/act", {"action": "ack", "selection": "web1/http"})
        assert posted.status == 405
        assert ActingSite(tree, server, None, FakeClock()).files() == before  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- the proxy


def test_a_trusted_header_names_the_user(tmp_path: Path) -> None:
    with acting_site(tmp_path / "tree", WEB_PROXY) as site:
        site.tree.store.write_check("web2", "http", state(1, minutes_ago=1, comment="refused"))
        alice = site.browser(headers={"X-Remote-User": "alice"})
        page = alice.get("/check/web2/http")
        assert '<span class="user">alice</span>' in page.text
        token = page.csrf()
        assert site.browser().get("/login").status == 404  # the proxy logs people in
        before = site.files()
        as_bob = alice.post("/act", ack_form(token), headers={"X-Remote-User": "bob"})
        assert as_bob.status == 403
        no_header = site.browser().post("/act", ack_form(token), cookie=alice.cookie)
        assert no_header.status == 403
        assert site.files() == before
        done = alice.post("/act", ack_form(token))
        assert done.status == 200, done.text
        assert site.commands("web2", "http")[-1]["user"] == "alice"


# --------------------------------------------------------------------------- TLS


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_over_tls_cookies_are_secure(tmp_path: Path) -> None:
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    with acting_site(tmp_path / "tree", tls=(cert, key)) as site:
        b = site.browser()
        assert b.tls
        done = b.login("alice")
        assert done.status == 303
        (cookie,) = done.cookies()
        assert "; Secure" in cookie and "; HttpOnly" in cookie
