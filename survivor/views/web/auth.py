"""Who is on the page, and whether a POST may act: sessions, CSRF tokens, login slowing.

Only when the config's `web:` names a `users` file or a `trust_header` does
the page take POSTs; otherwise it stays read-only and this module is unused.

* Sessions live in this process's memory: a random id (`secrets`, 256 bits)
  in an HttpOnly, SameSite=Strict cookie (Secure over TLS), a per-session
  CSRF token in every form, an expiry. A restart logs everyone out.
* Every POST, the login's too, needs a session cookie and that session's
  token (compared in constant time). `/login` gives a visitor an anonymous
  session first; logging in replaces it with a new one (no fixation).
* A failed login is logged (user name and client address) and answered only
  after a delay that doubles with each failure in a row for that name or that
  address (1 s, 2 s, ... 30 s). The delay holds only the failing request's
  thread: other requests go on.
* With `trust_header` the proxy names the user on every request; a session
  belongs to the user it was made for, and a POST whose header names someone
  else is refused.

What acting means is not decided here: `act` (an `ActRequest` -> `ActResult`
callable) is handed in by `survivor web` (cli/web_actions), which runs the
same action code as the CLI. The views may not import the actions (they are
sideways in the layer map); the command line sits above both and wires them.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from survivor.clock import Clock
from survivor.store.passwords import PasswordFileError, is_user_name, read_users, verify

log = logging.getLogger(__name__)

COOKIE = "survivor_session"
SESSION_S = 12 * 3600.0  # a logged-in session lasts a working day
ANONYMOUS_S = 900.0  # the session a login form is posted with
MAX_SESSIONS = 10_000  # the oldest go first: a flood of GET /login cannot exhaust memory
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
FORGET_FAILURES_S = 900.0

ACTIONS = ("ack", "unack", "inhibit", "uninhibit", "escalate", "reschedule", "downtime")


@dataclass(frozen=True, slots=True)
class ActRequest:
    """One form's worth of action, as the page received it (texts not yet parsed)."""

    user: str
    action: str
    selection: tuple[str, ...]
    groups: tuple[str, ...] = ()
    comment: str = ""
    until: str = ""  # inhibit's optional end, downtime's required end
    start: str = ""  # downtime's start (default now)


@dataclass(frozen=True, slots=True)
class ActResult:
    done: tuple[str, ...]  # one line per pair acted on, as the CLI prints it
    refused: tuple[str, ...]  # one line per pair refused, with the reason
    operation: str | None = None  # the op_id of the command records


Act = Callable[[ActRequest], ActResult]


@dataclass(slots=True)
class Session:
    id: str
    user: str | None  # None: a visitor who has not logged in yet
    csrf: str
    expires: float  # monotonic


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass(slots=True)
class Gate:
    """Everything a POST passes through: the way users are known, sessions, slowing."""

    clock: Clock
    act: Act
    users_file: Path | None = None
    trust_header: str | None = None
    secure: bool = False  # served over TLS: cookies get Secure
    first_delay: float = FIRST_DELAY_S
    stop: threading.Event = field(default_factory=threading.Event)
    _sessions: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    _failures: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---------------------------------------------------------------- sessions

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            found = self._sessions.get(sid)
            if found is None:
                return None
            if found.expires <= self.clock.monotonic():
                del self._sessions[sid]
                return None
            return found

    def open_session(self, user: str | None, *, replacing: str | None = None) -> Session:
        ttl = SESSION_S if user is not None else ANONYMOUS_S
        new = Session(
            secrets.token_urlsafe(32),
            user,
            secrets.token_urlsafe(32),
            self.clock.monotonic() + ttl,
        )
        with self._lock:
            if replacing is not None:
                self._sessions.pop(replacing, None)
            self._sessions[new.id] = new
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return new

    def close_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def cookie(self, session: Session | None) -> str:
        """The Set-Cookie value for `session` (None: clear the cookie)."""
        value, age = ("", 0) if session is None else (session.id, int(SESSION_S))
        secure = "; Secure" if self.secure else ""
        return f"{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{secure}"

    @staticmethod
    def token_matches(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())

    # ---------------------------------------------------------------- passwords

    def check_password(self, user: str, password: str, client: str) -> bool:
        """Whether the login is good; a bad one is logged and answered late (see the top)."""
        users: dict[str, str] = {}
        if self.users_file is not None:
            try:
                users = read_users(self.users_file)
            except PasswordFileError as err:
                log.error("web: login for %r refused: %s", user, err)
        ok = is_user_name(user) and verify(users, user, password)
        keys = (f"user:{user}", f"addr:{client}")
        now = self.clock.monotonic()
        with self._lock:
            if ok:
                for key in keys:
                    self._failures.pop(key, None)
                return True
            count = 0
            for key in keys:
                seen = self._failures.get(key)
                if seen is None or now - seen.last > FORGET_FAILURES_S:
                    seen = self._failures[key] = _Failures()
                seen.count += 1
                seen.last = now
                count = max(count, seen.count)
        delay = min(self.first_delay * 2 ** (count - 1), MAX_DELAY_S)
        log.warning(
            "web: failed login for user %r from %s (%d in a row); answering in %.1f s",
            user,
            client,
            count,
            delay,
        )
        self.clock.sleep_until(self.clock.monotonic() + delay, self.stop)
        return False

    def proxy_user(self, value: str | None) -> str | None:
        """The user the proxy's header names, or None when it names none (or nonsense)."""
        if self.trust_header is None or value is None:
            return None
        value = value.strip()
        return value if is_user_name(value) else None
