"""The HTML of the status pages, rendered from the same dicts the JSON endpoints return.

Rendering from the API's own answer keeps the first paint and every refresh
identical: the script (assets.SCRIPT) rebuilds exactly the elements rendered
here, by the same rules (`cell` below mirrors its `cell`). Every value goes
through `h()` (html.escape) or `attr()`; nothing from a state file is ever
written unescaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from string import Template
from typing import Any
from urllib.parse import quote

Row = Mapping[str, Any]
Columns = Sequence[tuple[str, str]]  # (key in the row, column title)

PAGE = Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title - survivor</title>
<link rel="stylesheet" href="/static/survivor.css">
</head>
<body$api>
<header><a class="brand" href="/">survivor</a>
<nav><a href="/">overview</a><a href="/queue">queue</a><a href="/metrics">metrics</a></nav>
$who<input type="search" id="filter" placeholder="filter rows" aria-label="filter the rows" hidden>
<button type="button" id="timezone" hidden>times: UTC</button>
<span id="refreshed">$stamp</span></header>
<main$stale>
<p class="stale-note">The daemon is not running: these are the last results it wrote.</p>
$content
</main>
<script src="/static/survivor.js"></script>
</body></html>
"""
)

PROBLEM_COLUMNS: Columns = (
    ("host", "host"),
    ("check", "check"),
    ("code", "code"),
    ("since_age", "since"),
    ("consecutive", "in a row"),
    ("last_age", "last run"),
    ("flags", "silenced"),
    ("comment", "comment"),
)
HOST_COLUMNS: Columns = (
    ("host", "host"),
    ("checks", "checks"),
    ("problems", "problems"),
    ("worst", "worst"),
    ("counts_text", "by code"),
)
CHECK_COLUMNS: Columns = (
    ("check", "check"),
    ("code", "code"),
    ("since_age", "since"),
    ("consecutive", "in a row"),
    ("last_age", "last run"),
    ("duration_ms", "ms"),
    ("next_due_in", "next due"),
    ("scalar_text", "scalar"),
    ("flags", "silenced"),
    ("comment", "comment"),
)
QUEUE_COLUMNS: Columns = (
    ("id", "id"),
    ("state", "state"),
    ("kind", "kind"),
    ("check", "check"),
    ("hosts", "hosts"),
    ("since_age", "since"),
    ("worker", "worker"),
    ("pid", "pid"),
    ("reason", "reason"),
)
RAN_COLUMNS: Columns = (
    ("check", "check"),
    ("last_start", "started (UTC)"),
    ("last_age", "age"),
    ("duration_ms", "ms"),
    ("code", "code"),
)
RESULT_COLUMNS: Columns = (
    ("t", "time (UTC)"),
    ("code", "code"),
    ("scalar_text", "scalar"),
    ("duration_ms", "ms"),
    ("fp", "fp"),
    ("comment", "comment"),
)
RECORD_COLUMNS: Columns = (("t", "time (UTC)"), ("summary", "what"))
PERFDATA_COLUMNS: Columns = (
    ("label", "label"),
    ("value", "value"),
    ("uom", "unit"),
    ("warn", "warn"),
    ("crit", "crit"),
    ("min", "min"),
    ("max", "max"),
)


def h(value: object) -> str:
    """Text for HTML: None and "" show as an en dash, everything escaped."""
    if value is None or value == "":
        return "\u2013"
    return escape(str(value))


def attr(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def host_href(host: str) -> str:
    return "/host/" + quote(host, safe="")


def check_href(host: str, check: str) -> str:
    return f"/check/{quote(host, safe='')}/{quote(check, safe='')}"


def cell(row: Row, key: str) -> str:
    """One table cell, built by the same rules as the script's `cell`."""
    value = row.get(key)
    classes = []
    if key == "host" and value:
        inner = f'<a href="{attr(host_href(str(value)))}">{h(value)}</a>'
    elif key == "check" and value and row.get("host"):
        href = check_href(str(row["host"]), str(value))
        inner = f'<a href="{attr(href)}">{h(value)}</a>'
    elif key == "hosts" and isinstance(value, list):
        inner = " ".join(f'<a href="{attr(host_href(str(x)))}">{h(x)}</a>' for x in value)
    else:
        inner = h(value)
    if key in ("code", "worst"):
        classes.append(f"code code-{value}")
    if key in ("comment", "summary"):
        classes.append("comment")
    cls = f' class="{attr(" ".join(classes))}"' if classes else ""
    return f"<td{cls}>{inner}</td>"


def table(rows: Sequence[Row], columns: Columns, path: str, empty: str = "none") -> str:
    """A table whose body the script rebuilds from the API answer at `path`."""
    head = "".join(f"<th>{h(title) if title else ''}</th>" for _, title in columns)
    keys = [k for k, _ in columns]
    if rows:
        body = "".join("<tr>" + "".join(cell(r, k) for k in keys) + "</tr>" for r in rows)
    else:
        body = f'<tr><td colspan="{len(keys)}" class="none">{h(empty)}</td></tr>'
    return (
        f"<table><thead><tr>{head}</tr></thead>"
        f'<tbody data-rows="{attr(path)}" data-cols="{attr(",".join(keys))}" '
        f'data-empty="{attr(empty)}">{body}</tbody></table>'
    )


def bound(path: str, value: object, tag: str = "span") -> str:
    """An element whose text the script keeps equal to the API value at `path`."""
    return f'<{tag} data-k="{attr(path)}">{h(value)}</{tag}>'


def cards(counts: Mapping[str, int], path: str = "counts") -> str:
    inner = "".join(
        f'<div class="card code-{attr(code)}"><b>{h(n)}</b><span>{h(code)}</span></div>'
        for code, n in counts.items()
    )
    return f'<div class="cards" data-counts="{attr(path)}">{inner}</div>'


def items(lines: Sequence[str], path: str, css: str = "") -> str:
    cls = f' class="{attr(css)}"' if css else ""
    inner = "".join(f"<li>{h(line)}</li>" for line in lines)
    return f'<ul{cls} data-list="{attr(path)}">{inner}</ul>'


def daemon_panel(daemon: Mapping[str, Any]) -> str:
    level = attr(daemon.get("level", "problem"))
    return (
        f'<section class="panel level-{level}" data-level="daemon.level">'
        f"{items(daemon.get('lines') or [], 'daemon.lines')}</section>"
    )


def page(
    title: str,
    content: str,
    *,
    api: str | None = None,
    stamp: str = "",
    daemon: Mapping[str, Any] | None = None,
    who: str = "",
) -> str:
    """A whole page. With `daemon` (the API's daemon part) the results are marked stale
    while the daemon is not running, and the script keeps that mark current."""
    api_attr = f' data-api="{attr(api)}"' if api else ""
    stale = daemon is not None and daemon.get("running") is False
    return PAGE.substitute(
        title=h(title),
        api=api_attr,
        stamp=h(stamp),
        content=content,
        stale=' class="stale"' if stale else "",
        who=who,
    )


# --------------------------------------------------------------------------- the pages


def overview_page(s: Mapping[str, Any], *, tools: str = "", who: str = "") -> str:
    """`tools`: the action form (for a logged-in user); `who`: the header's login part."""
    queue = s.get("queue") or {}
    content = (
        f"<h1>Overview: {bound('total', s.get('total'))} check@host pairs, "
        f"{bound('problem_count', s.get('problem_count'))} need attention</h1>"
        f"{daemon_panel(s.get('daemon') or {})}{tools}"
        f"<h2>Checks by code</h2>{cards(s.get('counts') or {})}"
        f"<h2>Problems first</h2>"
        f"{table(s.get('problems') or [], PROBLEM_COLUMNS, 'problems', 'no problems')}"
        f'<h2>Queue</h2><p><a href="/queue">{bound("queue.running", queue.get("running"))} '
        f"running, {bound('queue.queued', queue.get('queued'))} queued</a>; queue.json "
        f"updated {bound('queue_updated', s.get('queue_updated'))}</p>"
        f"<h2>Hosts</h2>{table(s.get('hosts') or [], HOST_COLUMNS, 'hosts', 'no hosts')}"
        f"{items(s.get('errors') or [], 'errors', 'errors')}"
    )
    return page(
        "overview",
        content,
        api="/api/summary",
        stamp=str(s.get("now", "")),
        daemon=s.get("daemon"),
        who=who,
    )


def host_page(d: Mapping[str, Any], *, tools: str = "", who: str = "") -> str:
    host = str(d.get("host", ""))
    content = (
        f"<h1>Host {h(host)}: {bound('total', d.get('total'))} checks</h1>"
        f"{daemon_panel(d.get('daemon') or {})}"
        f'<p><a href="/report/{attr(quote(host, safe=""))}">availability report</a></p>{tools}'
        f"<h2>Checks by code</h2>{cards(d.get('counts') or {})}"
        f"<h2>Checks, problems first</h2>"
        f"{table(d.get('checks') or [], CHECK_COLUMNS, 'checks', 'no checks')}"
        f"<h2>Queued and running</h2>"
        f"{table(d.get('queue') or [], QUEUE_COLUMNS, 'queue', 'nothing queued or running')}"
        f"<h2>What ran, latest first</h2>"
        f"{table(d.get('ran') or [], RAN_COLUMNS, 'ran', 'nothing has run yet')}"
    )
    return page(
        f"host {host}",
        content,
        api=f"/api/host/{quote(host, safe='')}",
        daemon=d.get("daemon"),
        who=who,
    )


def check_page(d: Mapping[str, Any], svg: str, *, tools: str = "", who: str = "") -> str:
    host, check = str(d.get("host", "")), str(d.get("check", ""))
    st: Mapping[str, Any] = d.get("state") or {}
    facts = (
        ("code", "state.code"),
        ("comment", "state.comment"),
        ("since", "state.since"),
        ("for", "state.since_age"),
        ("in a row", "state.consecutive"),
        ("last run (UTC)", "state.last_start"),
        ("last run", "state.last_age"),
        ("took (ms)", "state.duration_ms"),
        ("scalar", "state.scalar_text"),
        ("next due", "state.next_due_in"),
        ("fingerprint", "state.fingerprint"),
        ("config generation", "state.generation"),
        ("state file", "state.error"),
    )
    dl = "".join(
        f"<dt>{h(label)}</dt>{bound(path, st.get(path.split('.', 1)[1]), 'dd')}"
        for label, path in facts
    )
    notes = "".join(
        f'<p class="note" data-k="{key}" data-blank>{escape(str(d.get(key) or ""))}</p>'
        for key in ("ack_text", "inhibit_text", "escalate_text", "alert_text")
    )
    plot_url = f"/svg/check/{quote(host, safe='')}/{quote(check, safe='')}"
    content = (
        f'<h1>Check {h(check)} on <a href="{attr(host_href(host))}">{h(host)}</a></h1>'
        f"{daemon_panel(d.get('daemon') or {})}"
        f'<p><a href="/report/{attr(quote(host, safe=""))}/{attr(quote(check, safe=""))}">'
        f"availability report</a></p>"
        f'<h2>State</h2><section class="panel level-{attr(d.get("level", "ok"))}">'
        f'<dl class="facts">{dl}</dl>'
        f'<pre class="long" data-k="state.long_output" data-blank>'
        f"{escape(str(st.get('long_output') or ''))}</pre></section>{notes}{tools}"
        f"<h2>Performance data</h2>"
        f"{table(d.get('perfdata') or [], PERFDATA_COLUMNS, 'perfdata', 'no perfdata')}"
        f"<h2>Scalar over time (incarnations marked by fingerprint)</h2>"
        f'<div class="plot" data-plot="{attr(plot_url)}" data-plot-key="state.last_start" '
        f'data-plot-seen="{attr(st.get("last_start"))}">{svg}</div>'
        f"<h2>Queued and running</h2>"
        f"{table(d.get('queue') or [], QUEUE_COLUMNS, 'queue', 'nothing queued or running')}"
        f"<h2>Latest results</h2>"
        f"{table(d.get('results') or [], RESULT_COLUMNS, 'results', 'no results recorded')}"
        f"<h2>Latest alerts</h2>"
        f"{table(d.get('alerts') or [], RECORD_COLUMNS, 'alerts', 'no alerts recorded')}"
        f"<h2>Latest operator commands</h2>"
        f"{table(d.get('commands') or [], RECORD_COLUMNS, 'commands', 'no commands recorded')}"
    )
    api = f"/api/check/{quote(host, safe='')}/{quote(check, safe='')}"
    return page(f"{check}@{host}", content, api=api, daemon=d.get("daemon"), who=who)


def queue_page(q: Mapping[str, Any], *, who: str = "") -> str:
    content = (
        f"<h1>Queue: {bound('totals.running', (q.get('totals') or {}).get('running'))} running, "
        f"{bound('totals.queued', (q.get('totals') or {}).get('queued'))} waiting for a worker</h1>"
        f"<p>and {bound('totals.scheduled', (q.get('totals') or {}).get('scheduled'))} more "
        "planned for later this minute (the pools' <em>queued</em> counts both)</p>"
        f"{daemon_panel(q.get('daemon') or {})}"
        f"<p>queue.json updated {bound('updated_age', q.get('updated_age'))}</p>"
        f"{table(q.get('items') or [], QUEUE_COLUMNS, 'items', 'nothing queued or running')}"
    )
    return page("queue", content, api="/api/queue", daemon=q.get("daemon"), who=who)


def error_page(status: int, reason: str, message: str) -> str:
    content = f"<h1>{h(status)} {h(reason)}</h1><p>{h(message)}</p><p><a href='/'>overview</a></p>"
    return page(f"{status} {reason}", content)
