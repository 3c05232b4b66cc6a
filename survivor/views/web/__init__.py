"""`survivor web`: a status page over the state and history files, read-only unless
the config's `web:` lets logged-in users act (`auth`, `front`, `forms`).

Built on the standard library (http.server's ThreadingHTTPServer, string
templates, a few lines of vanilla JavaScript): nothing to install on a
monitoring host, and nothing that talks to the daemon. See docs/views.md.
"""

from survivor.views.web.server import is_loopback, make_server, parse_bind, respond
from survivor.views.web.source import StatusSource

__all__ = ["StatusSource", "is_loopback", "make_server", "parse_bind", "respond"]
