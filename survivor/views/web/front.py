"""The page when it may act: who is logged in, the login form, and the POSTs that act.

`answer(source, gate, request)` is put in front of the read-only routes when
the config's `web:` names a users file or a trusted header (`survivor web`
does that). Every POST is refused with 403 and changes nothing unless it
carries a live session's cookie and that session's CSRF token; `/act` also
needs a logged-in user (and, behind a proxy, the same user the proxy names
now). A GET never acts: `/act` and `/logout` answer GET with 405.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from urllib.parse import unquote

from survivor.errors import SurvivorError
from survivor.views.web import forms
from survivor.views.web.auth import ACTIONS, COOKIE, ActRequest, Gate, Session
from survivor.views.web.server import (
    HTML,
    BadRequest,
    Request,
    Response,
    Viewer,
    error,
    not_allowed,
    respond,
    segments,
)
from survivor.views.web.source import StatusSource

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[\s,]+")


def answer(source: StatusSource, gate: Gate, req: Request) -> Response:
    try:
        parts = segments(req.path)
    except (BadRequest, UnicodeDecodeError) as err:
        return error(400, str(err))
    session = gate.session(req.cookies.get(COOKIE))
    cookie: str | None = None
    user: str | None
    if gate.trust_header is not None:
        user = gate.proxy_user(req.headers.get(gate.trust_header.lower()))
        if user is not None and req.method != "POST" and (session is None or session.user != user):
            session = gate.open_session(user)  # the proxy's user gets a session of their own
            cookie = gate.cookie(session)
    else:
        user = session.user if session is not None else None
    if req.method == "POST":
        return _post(source, gate, req, parts, session, user)
    if parts == ["login"] and req.method in ("GET", "HEAD"):
        return _login_form(gate, req, session)
    viewer = Viewer(
        user if session is not None and session.user == user else None,
        session.csrf if session is not None else None,
        can_login=gate.trust_header is None,
    )
    resp = respond(source, req.method, req.path, viewer)
    return _with_cookie(resp, cookie)


def _with_cookie(resp: Response, cookie: str | None, *more: tuple[str, str]) -> Response:
    extra = ((("Set-Cookie", cookie),) if cookie is not None else ()) + more
    if not extra:
        return resp
    return dataclasses.replace(resp, extra_headers=resp.extra_headers + extra)


def _page(text: str, status: int = 200) -> Response:
    return Response(status, HTML, text.encode())


def _redirect(location: str, cookie: str | None) -> Response:
    return _with_cookie(Response(303, HTML, b""), cookie, ("Location", location))


def _local(path: str | None, default: str = "/") -> str:
    """Only a path on this site (`/...`, not `//host`), so a form cannot send anyone away."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


def _field(req: Request, name: str) -> str:
    values = req.form.get(name) or [""]
    return values[-1]


def _refuse(req: Request, why: str) -> Response:
    log.warning("web: refused POST %s from %s: %s", req.path, req.client, why)
    return error(403, why)


# --------------------------------------------------------------------------- login


def _login_form(gate: Gate, req: Request, session: Session | None) -> Response:
    if gate.trust_header is not None:
        return error(404, "this page is behind a proxy that logs you in; there is no login form")
    query = req.path.partition("?")[2]
    next_path = "/"
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "next":
            next_path = _local(unquote(value))
    if session is not None and session.user is not None:
        return _redirect(next_path, None)
    cookie = None
    if session is None:
        session = gate.open_session(None)
        cookie = gate.cookie(session)
    return _with_cookie(_page(forms.login_page(session.csrf, next_path)), cookie)


def _login(gate: Gate, req: Request, session: Session) -> Response:
    if gate.trust_header is not None:
        return _refuse(req, "the proxy logs users in here; there is no password login")
    user, password = _field(req, "user").strip(), _field(req, "password")
    next_path = _local(_field(req, "next"))
    if not gate.check_password(user, password, req.client):
        page = forms.login_page(session.csrf, next_path, "wrong user or password", user)
        return _page(page, 403)
    log.info("web: %s logged in from %s", user, req.client)
    fresh = gate.open_session(user, replacing=session.id)
    return _redirect(next_path, gate.cookie(fresh))


# --------------------------------------------------------------------------- POST


def _post(
    source: StatusSource,
    gate: Gate,
    req: Request,
    parts: Sequence[str],
    session: Session | None,
    user: str | None,
) -> Response:
    if list(parts) not in (["login"], ["logout"], ["act"]):
        return not_allowed("only the page's forms are posted, to /login, /logout and /act")
    if session is None:
        return _refuse(req, "no session: open the page (or /login) first, with cookies allowed")
    if not gate.token_matches(session, _field(req, "csrf") or None):
        return _refuse(req, "the form's token does not belong to this session; reload the page")
    match list(parts):
        case ["login"]:
            return _login(gate, req, session)
        case ["logout"]:
            gate.close_session(session.id)
            return _redirect("/", gate.cookie(None))
    if session.user is None:
        return _refuse(req, "log in first")
    if gate.trust_header is not None and user != session.user:
        return _refuse(req, "this session belongs to another user than the proxy names")
    return _act(gate, req, session.user, session)


def _act(gate: Gate, req: Request, user: str, session: Session) -> Response:
    action = _field(req, "action")
    back = _local(_field(req, "back"))
    who = forms.who_bar(user, session.csrf, can_login=gate.trust_header is None)
    if action not in ACTIONS:
        return error(400, f"unknown action {action!r} (one of: {', '.join(ACTIONS)})")
    selection = tuple(s for s in _SPLIT.split(_field(req, "selection")) if s)
    groups = tuple(g for g in _SPLIT.split(_field(req, "group")) if g)
    if not selection and not groups:
        return error(400, "name a selection (HOST, HOST/CHECK, */CHECK) or a group")
    request = ActRequest(
        user=user,
        action=action,
        selection=selection,
        groups=groups,
        comment=_field(req, "comment").strip(),
        until=_field(req, "until").strip(),
        start=_field(req, "start").strip(),
    )
    try:
        result = gate.act(request)
    except SurvivorError as err:
        log.warning("web: %s by %s refused: %s", action, user, err)
        return error(400, f"{action}: {err}")
    log.info(
        "web: %s by %s on %s: %d acted on, %d refused (operation %s)",
        action,
        user,
        " ".join(selection + tuple(f"--group {g}" for g in groups)),
        len(result.done),
        len(result.refused),
        result.operation,
    )
    page = forms.result_page(user, action, result.done, result.refused, result.operation, back, who)
    return _page(page, 200 if result.done else 409)
