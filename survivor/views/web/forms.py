"""The HTML that acts and logs in, and the availability report: plain forms, no script needed.

Every POST form carries the session's CSRF token in a hidden field; the
buttons of the action form each name their action, so one form does them
all without JavaScript. The report's period is a GET form (bookmarkable).
Everything shown goes through `h()`/`attr()`, as on every page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from survivor.clock import parse_time
from survivor.views.rows import span_text
from survivor.views.web.pages import attr, h, page, table

ACTION_BUTTONS = (
    ("ack", "acknowledge"),
    ("unack", "unacknowledge"),
    ("inhibit", "inhibit"),
    ("uninhibit", "uninhibit"),
    ("escalate", "escalate"),
    ("reschedule", "run now"),
    ("downtime", "downtime"),
)


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{attr(token)}">'


def who_bar(user: str | None, token: str | None, *, can_login: bool) -> str:
    """The header's login part: who is logged in and a logout button, or a login link."""
    if user is not None and token is not None:
        return (
            f'<form method="post" action="/logout" class="who">{csrf_field(token)}'
            f'<span class="user">{h(user)}</span> <button type="submit">log out</button></form>'
        )
    if can_login:
        return '<a class="who" href="/login">log in</a>'
    return ""


def action_form(token: str, selection: str, back: str, *, free: bool) -> str:
    """The action form for `selection` (a pair, a host; `free`: typed by the user)."""
    if free:
        target = (
            '<label>selection <input name="selection" required size="28" '
            'placeholder="HOST  HOST/CHECK  */CHECK"></label>'
            '<label>group <input name="group" size="10" placeholder="group or class"></label>'
        )
        title = "Act on a selection"
    else:
        target = f'<input type="hidden" name="selection" value="{attr(selection)}">'
        title = f"Act on {h(selection)}"
    buttons = "".join(
        f'<button type="submit" name="action" value="{attr(value)}">{h(label)}</button>'
        for value, label in ACTION_BUTTONS
    )
    return (
        f'<h2>{title}</h2><form method="post" action="/act" class="act">'
        f'{csrf_field(token)}<input type="hidden" name="back" value="{attr(back)}">{target}'
        '<label>comment <input name="comment" size="30" placeholder="why"></label>'
        '<label>until <input name="until" size="16" placeholder="+2h, 18:00"></label>'
        '<label>downtime from <input name="start" size="12" placeholder="now"></label>'
        f'<span class="buttons">{buttons}</span>'
        '<p class="hint">until: when an inhibition ends (optional) or a downtime ends '
        "(required): +30m, +2h, 18:00, 2026-12-24T06:00. Times without a zone are the "
        "instance's.</p></form>"
    )


def login_page(token: str, next_path: str, message: str = "", user: str = "") -> str:
    note = f'<p class="error">{h(message)}</p>' if message else ""
    content = (
        f"<h1>Log in</h1>{note}"
        f'<form method="post" action="/login" class="login">{csrf_field(token)}'
        f'<input type="hidden" name="next" value="{attr(next_path)}">'
        f'<label>user <input name="user" autocomplete="username" required '
        f'value="{attr(user)}"></label>'
        '<label>password <input name="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">log in</button></form>'
    )
    return page("log in", content)


def result_page(
    user: str,
    action: str,
    done: Sequence[str],
    refused: Sequence[str],
    operation: str | None,
    back: str,
    who: str,
) -> str:
    did = "".join(f"<li>{h(line)}</li>" for line in done) or "<li>nothing</li>"
    nope = "".join(f"<li>{h(line)}</li>" for line in refused)
    content = (
        f"<h1>{h(action)} by {h(user)}: {len(done)} of {len(done) + len(refused)} "
        "pairs acted on</h1>"
        f'<section class="panel level-{"ok" if done else "problem"}"><ul class="done">{did}</ul>'
        + (f'<ul class="errors">{nope}</ul>' if nope else "")
        + "</section>"
        + (f"<p>operation {h(operation)} (the op_id of its command records)</p>" * bool(operation))
        + f'<p><a href="{attr(back)}">back</a></p>'
    )
    return page(f"{action} by {user}", content, who=who)


# --------------------------------------------------------------------------- report

REPORT_COLUMNS = (
    ("pair", "check@host"),
    ("OK", "OK"),
    ("WARNING", "WARNING"),
    ("PROBLEM", "PROBLEM"),
    ("other", "other"),
    ("unknown", "unknown"),
    ("downtime", "downtime"),
    ("outages", "outages"),
    ("longest", "longest"),
    ("mttr", "MTTR"),
)
OUTAGE_COLUMNS = (("start", "start (UTC)"), ("end", "recovered (UTC)"), ("span", "for"))
OUTAGE_LIST_MAX = 50
DOWNTIME_COLUMNS = (("start", "from (UTC)"), ("end", "until (UTC)"), ("span", "for"))


def _span(seconds: float | None) -> str:
    return "\u2013" if seconds is None else span_text(seconds, tenths=True)


def report_row(r: Mapping[str, Any]) -> dict[str, Any]:
    share = r["share"]
    return {
        "pair": f"{r['check']}@{r['host']}",
        **{g: f"{100 * share[g]:.2f}%" for g in ("OK", "WARNING", "PROBLEM", "other", "unknown")},
        "downtime": _span(r["downtime_seconds"]) if r["downtime_seconds"] else "\u2013",
        "outages": r["outages"],
        "longest": _span(r["longest_outage_seconds"]),
        "mttr": _span(r["mean_time_to_recover_seconds"]),
    }


def report_page(data: Mapping[str, Any], path: str, who: str = "") -> str:
    """The availability of a host's checks (or one pair) over the period in `data`."""
    rows = [report_row(r) for r in data["rows"]]
    head = "".join(f"<th>{h(title)}</th>" for _, title in REPORT_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{h(row[key])}</td>" for key, _ in REPORT_COLUMNS) + "</tr>"
        for row in rows
    )
    outages = ""
    if len(data["rows"]) == 1:
        listed = data["rows"][0]["outage_list"][-OUTAGE_LIST_MAX:]
        outages = "<h2>Outages (latest 50)</h2>" + table(
            [
                {
                    "start": o["start"],
                    "end": o["end"] or "still failing",
                    "span": _span(o["seconds"]),
                }
                for o in reversed(listed)
            ],
            OUTAGE_COLUMNS,
            "outages",
            "no outages in this period",
        )
        windows = data["rows"][0].get("downtime_windows", [])[-OUTAGE_LIST_MAX:]
        if windows:
            outages += "<h2>Downtime (latest 50)</h2>" + table(
                [{**w, "span": _span(_seconds(w))} for w in reversed(windows)],
                DOWNTIME_COLUMNS,
                "downtime",
                "",
            )
    quick = " ".join(
        f'<a href="{attr(path)}?days={n}">{label}</a>'
        for n, label in ((1, "last day"), (7, "last 7 days"), (30, "last 30 days"))
    )
    content = (
        f"<h1>Availability of {h(data['title'])}</h1>"
        f"<p>from {h(data['since'])} until {h(data['until'])} (UTC). A result counts for at "
        "most twice its check's interval; time no result covers is unknown, never OK. "
        "Time in downtime (operator downtimes, and the recurring windows of the current "
        "config) is counted apart, outside the shares.</p>"
        f'<form method="get" action="{attr(path)}" class="period">'
        f'<label>since <input name="since" value="{attr(data["since"])}" size="22"></label>'
        f'<label>until <input name="until" value="{attr(data["until"])}" size="22"></label>'
        f'<button type="submit">show</button> {quick}</form>'
        f'<table class="report"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f"{outages}"
        f'<p><a href="{attr(data["back"])}">back to {h(data["title"])}</a></p>'
    )
    return page(f"availability of {data['title']}", content, who=who)


def _seconds(window: Mapping[str, str]) -> float | None:
    start, end = parse_time(window.get("start")), parse_time(window.get("end"))
    return None if start is None or end is None else (end - start).total_seconds()


def report_path(host: str, check: str | None = None) -> str:
    tail = "" if check is None else "/" + quote(check, safe="")
    return "/report/" + quote(host, safe="") + tail
