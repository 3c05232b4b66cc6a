"""Build `web:`: where `survivor web` listens and who may act on the page (issue 22).

```yaml
web:
  bind: 127.0.0.1:8080          # HOST:PORT; `survivor web --bind` overrides it
  users: web-users              # password file (`survivor web passwd USER` makes it)
  # trust_header: X-Remote-User # or: the user a reverse proxy authenticated (loopback only)
  tls_cert: web.crt             # both or neither: serve HTTPS, cookies marked Secure
  tls_key: web.key
```

Without `users` or `trust_header` the page stays read-only. The two do not
go together: a page that trusts a header must not also take passwords, or
one more way in would be open than the operator meant. A trusted header is
only as good as the loopback bind that keeps everyone but the proxy away,
so `trust_header` with a bind that is not loopback is an error. The users
file need not exist yet (`survivor web passwd` creates it); the TLS files
must.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from survivor.config.fields import Context, Fields
from survivor.model.config import Mark, WebConfig

WEB_KEYS = frozenset(("bind", "users", "trust_header", "tls_cert", "tls_key"))
_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


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


def build_web(ctx: Context) -> WebConfig | None:
    entry = ctx.raw.web
    if entry is None:
        return None
    f = ctx.fields(entry.value, "web", WEB_KEYS, entry.file, entry.line)
    if f is None:
        return None
    base = ctx.raw.base_dir
    bind = _bind(f)
    users = f.path("users", base)
    header = f.text("trust_header")
    if header is not None and not _HEADER.fullmatch(header):
        f.bad("trust_header", f"{header!r} is not an HTTP header name (e.g. X-Remote-User)")
        header = None
    if users is not None and header is not None:
        f.bad(
            "trust_header",
            "users: and trust_header: do not go together; log in with passwords, or let "
            "an authenticating proxy name the user, not both",
        )
    if header is not None and bind is not None and not is_loopback(bind[0]):
        f.bad(
            "trust_header",
            f"needs a loopback bind (127.0.0.1:PORT), not {bind[0]}: anyone who reaches the "
            "page could send the header and act as anyone",
        )
    cert, key = _tls_file(f, "tls_cert", base), _tls_file(f, "tls_key", base)
    if (cert is None) != (key is None):
        present = "tls_cert" if cert is not None else "tls_key"
        f.bad(present, "tls_cert: and tls_key: go together; give both or neither")
    return WebConfig(
        bind=bind,
        users=users,
        trust_header=header,
        tls_cert=cert,
        tls_key=key,
        mark=Mark(entry.file, entry.line),
    )


def _bind(f: Fields) -> tuple[str, int] | None:
    text = f.text("bind")
    if text is None:
        return None
    try:
        return parse_bind(text)
    except ValueError as err:
        f.bad("bind", str(err))
        return None


def _tls_file(f: Fields, key: str, base: Path) -> Path | None:
    path = f.path(key, base)
    if path is not None and not path.is_file():
        f.bad(key, f"{path}: no such file")
    return path
