"""The page's stylesheet and script, served as /static/survivor.css and /static/survivor.js.

They are files of their own (not inline) so the Content-Security-Policy can
forbid every inline script and style: whatever a check's comment contains,
escaped or not, it cannot run. The script is plain ES5 with no build step: it
polls the page's JSON endpoint (named in `<body data-api>`) every few seconds
and writes the answer into the elements that name a path into it:

* `data-k="daemon.heartbeat_age"`: the text of the element (with
  `data-blank`, an empty value leaves it empty, so CSS can hide it);
* `data-level="daemon.level"`: the element's `level-*` class;
* `data-rows="problems" data-cols="host,check,code"`: a table body rebuilt;
* `data-list="daemon.lines"`: a list rebuilt, one item per string;
* `data-counts="counts"`: the code cards rebuilt from {code: n};
* `data-plot="/svg/..." data-plot-key="state.last_start"`: the plot fetched
  again when that value changes.

Everything is written with textContent and createElement, never innerHTML,
except the plot, which is this server's own escaped SVG.
"""

from __future__ import annotations

REFRESH_MS = 5000

SCRIPT = """\
"use strict";
(function () {
  var body = document.body;
  var api = body.getAttribute("data-api");
  if (!api) { return; }
  var stamp = document.getElementById("refreshed");
  var plotKeys = {};

  function get(obj, path) {
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (obj === null || obj === undefined) { return undefined; }
      obj = obj[parts[i]];
    }
    return obj;
  }
  function text(v) {
    return (v === null || v === undefined || v === "") ? "\\u2013" : String(v);
  }
  function enc(s) { return encodeURIComponent(s); }
  function link(href, label) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    return a;
  }
  function cell(row, col) {
    var td = document.createElement("td");
    var v = row[col];
    if (col === "host" && v) {
      td.appendChild(link("/host/" + enc(v), v));
    } else if (col === "check" && v && row.host) {
      td.appendChild(link("/check/" + enc(row.host) + "/" + enc(v), v));
    } else if (col === "hosts" && Array.isArray(v)) {
      v.forEach(function (h, i) {
        if (i) { td.appendChild(document.createTextNode(" ")); }
        td.appendChild(link("/host/" + enc(h), h));
      });
    } else {
      td.textContent = text(v);
    }
    if (col === "code" || col === "worst") { td.className = "code code-" + v; }
    if (col === "comment" || col === "summary") { td.className = "comment"; }
    return td;
  }
  function rebuildRows(el, data) {
    var list = get(data, el.getAttribute("data-rows")) || [];
    var cols = el.getAttribute("data-cols").split(",");
    var rows = [];
    list.forEach(function (r) {
      var tr = document.createElement("tr");
      cols.forEach(function (c) { tr.appendChild(cell(r, c)); });
      rows.push(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = cols.length;
      td.className = "none";
      td.textContent = el.getAttribute("data-empty") || "none";
      tr.appendChild(td);
      rows.push(tr);
    }
    el.replaceChildren.apply(el, rows);
  }
  function rebuildList(el, data) {
    var items = get(data, el.getAttribute("data-list")) || [];
    el.replaceChildren.apply(el, items.map(function (s) {
      var li = document.createElement("li");
      li.textContent = s;
      return li;
    }));
  }
  function rebuildCounts(el, data) {
    var counts = get(data, el.getAttribute("data-counts")) || {};
    var cards = Object.keys(counts).map(function (code) {
      var div = document.createElement("div");
      div.className = "card code-" + code;
      var b = document.createElement("b");
      b.textContent = counts[code];
      var span = document.createElement("span");
      span.textContent = code;
      div.appendChild(b);
      div.appendChild(span);
      return div;
    });
    el.replaceChildren.apply(el, cards);
  }
  function refreshPlot(el, data) {
    var key = get(data, el.getAttribute("data-plot-key"));
    var url = el.getAttribute("data-plot");
    if (plotKeys[url] === undefined) { plotKeys[url] = el.getAttribute("data-plot-seen"); }
    if (String(key) === String(plotKeys[url])) { return; }
    plotKeys[url] = key;
    fetch(url, {cache: "no-store"}).then(function (r) {
      return r.ok ? r.text() : Promise.reject(r.status);
    }).then(function (svg) { el.innerHTML = svg; }).catch(function () {});
  }
  function each(sel, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(sel), fn);
  }
  function apply(data) {
    each("[data-k]", function (el) {
      var v = get(data, el.getAttribute("data-k"));
      var blank = v === null || v === undefined ? "" : String(v);
      el.textContent = el.hasAttribute("data-blank") ? blank : text(v);
    });
    each("[data-level]", function (el) {
      el.className = el.className.replace(/\\blevel-\\S+/g, "").trim() +
        " level-" + get(data, el.getAttribute("data-level"));
    });
    each("[data-rows]", function (el) { rebuildRows(el, data); });
    each("[data-list]", function (el) { rebuildList(el, data); });
    each("[data-counts]", function (el) { rebuildCounts(el, data); });
    var running = get(data, "daemon.running");
    if (running !== undefined) {
      document.querySelector("main").classList.toggle("stale", running === false);
    }
    each("[data-plot]", function (el) { refreshPlot(el, data); });
    enhance();
    body.setAttribute("data-refreshed", data.now || "");
    if (stamp) {
      stamp.textContent = "live, updated " + String(data.now || "").slice(11, 19) + "Z";
    }
  }
  // Enhancements that need the script (the page works without them): filter the rows,
  // sort a table by a column, show times in the browser's zone. Kept across refreshes.
  var filterBox = document.getElementById("filter");
  var zoneButton = document.getElementById("timezone");
  var sorts = {};  // tbody data-rows -> [column index, direction]
  var ISO = /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$/;
  var local = false;
  try { local = window.localStorage.getItem("survivor-local-time") === "1"; } catch (e) {}
  function cellKey(tr, i) {
    var td = tr.children[i];
    var s = td ? (td.getAttribute("data-iso") || td.textContent) : "";
    var n = parseFloat(s);
    return isNaN(n) || String(n) !== s.trim() ? s.toLowerCase() : n;
  }
  function sortBody(tb) {
    var how = sorts[tb.getAttribute("data-rows")];
    if (!how) { return; }
    var rows = Array.prototype.slice.call(tb.children);
    rows.sort(function (a, b) {
      var x = cellKey(a, how[0]), y = cellKey(b, how[0]);
      return (x < y ? -1 : x > y ? 1 : 0) * how[1];
    });
    rows.forEach(function (tr) { tb.appendChild(tr); });
  }
  function enhance() {
    var q = filterBox ? filterBox.value.trim().toLowerCase() : "";
    each("tbody[data-rows]", function (tb) {
      sortBody(tb);
      Array.prototype.forEach.call(tb.children, function (tr) {
        tr.hidden = !!q && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
    each("td, dd", function (el) {
      var iso = el.getAttribute("data-iso");
      if (!iso && ISO.test(el.textContent)) {
        iso = el.textContent;
        el.setAttribute("data-iso", iso);
      }
      if (iso) {
        el.textContent = local ? new Date(iso).toLocaleString() : iso;
        el.title = local ? iso : new Date(iso).toLocaleString();
      }
    });
    if (zoneButton) { zoneButton.textContent = "times: " + (local ? "local" : "UTC"); }
  }
  if (filterBox) {
    filterBox.hidden = false;
    filterBox.addEventListener("input", enhance);
  }
  if (zoneButton) {
    zoneButton.hidden = false;
    zoneButton.addEventListener("click", function () {
      local = !local;
      try { window.localStorage.setItem("survivor-local-time", local ? "1" : "0"); } catch (e) {}
      enhance();
    });
  }
  each("thead th", function (th) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var tb = th.closest("table").querySelector("tbody[data-rows]");
      if (!tb) { return; }
      var key = tb.getAttribute("data-rows");
      var i = Array.prototype.indexOf.call(th.parentNode.children, th);
      var was = sorts[key];
      sorts[key] = [i, was && was[0] === i ? -was[1] : 1];
      enhance();
    });
  });
  enhance();
  function tick() {
    fetch(api, {cache: "no-store"}).then(function (r) {
      return r.ok ? r.json() : Promise.reject("HTTP " + r.status);
    }).then(apply).catch(function (err) {
      if (stamp) { stamp.textContent = "refresh failed (" + err + "); retrying"; }
    });
  }
  tick();
  setInterval(tick, __REFRESH_MS__);
})();
""".replace("__REFRESH_MS__", str(REFRESH_MS))

STYLE = """\
:root {
  --ok: #2e7d32; --problem: #c62828; --warning: #ef6c00; --notice: #1565c0;
  --misconfig: #6a1b9a; --timedout: #ad1457; --depend: #607d8b; --notyet: #9e9e9e;
  --custom: #795548; --ink: #1d2329; --muted: #5f6b76; --line: #dde2e7; --bg: #f6f8fa;
}
* { box-sizing: border-box; }
.stale-note { display: none; }
pre.long { margin: .6em 0 0; white-space: pre-wrap; font-size: .92em; }
pre.long:empty { display: none; }
main.stale .stale-note {
  display: block; margin: 0 0 1em; padding: .5em .8em; border-left: 4px solid var(--warning);
  background: #fff3e0;
}
main.stale tbody td, main.stale .card { opacity: .55; }
body {
  margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg);
}
header {
  display: flex; align-items: baseline; gap: 1.5em; padding: .6em 1.2em;
  background: #1f2a36; color: #fff;
}
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; font-size: 1.15em; letter-spacing: .02em; }
header nav a { margin-right: 1em; opacity: .85; }
header nav a:hover { opacity: 1; text-decoration: underline; }
#refreshed { margin-left: auto; font-size: .85em; opacity: .75; }
main { padding: 1em 1.2em 2em; max-width: 1400px; }
h1 { font-size: 1.35em; margin: .2em 0 .6em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .5em; color: var(--muted); text-transform: uppercase;
     letter-spacing: .04em; }
a { color: #0b57a4; }
.panel {
  background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7em 1em;
  border-left: 5px solid var(--notyet);
}
.panel ul { margin: 0; padding-left: 1.1em; }
.panel ul:empty, .note:empty, ul.errors:empty { display: none; }
.level-ok { border-left-color: var(--ok); }
.level-warning { border-left-color: var(--warning); }
.level-problem { border-left-color: var(--problem); }
.cards { display: flex; flex-wrap: wrap; gap: .6em; }
.card {
  min-width: 7.5em; padding: .5em .9em; border-radius: 6px; color: #fff;
  background: var(--custom);
}
.card b { display: block; font-size: 1.7em; line-height: 1.1; }
.card span { font-size: .8em; letter-spacing: .05em; }
table {
  border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line);
}
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef1f4; font-weight: 600; font-size: .85em; color: var(--muted); }
tbody tr:nth-child(even) { background: #fafbfc; }
td.comment { color: #333; max-width: 40em; overflow-wrap: anywhere; }
td.none { color: var(--muted); font-style: italic; }
td.code { font-weight: 700; color: var(--custom); }
.card.code-OK { background: var(--ok); } td.code-OK { color: var(--ok); }
.card.code-PROBLEM { background: var(--problem); } td.code-PROBLEM { color: var(--problem); }
.card.code-WARNING { background: var(--warning); } td.code-WARNING { color: var(--warning); }
.card.code-NOTICE { background: var(--notice); } td.code-NOTICE { color: var(--notice); }
.card.code-MISCONFIG { background: var(--misconfig); }
td.code-MISCONFIG { color: var(--misconfig); }
.card.code-TIMEDOUT { background: var(--timedout); } td.code-TIMEDOUT { color: var(--timedout); }
.card.code-DEPEND { background: var(--depend); } td.code-DEPEND { color: var(--depend); }
.card.code-NOTYET { background: var(--notyet); } td.code-NOTYET { color: var(--notyet); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25em 1.2em; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.note { background: #fff8e1; border: 1px solid #ffe082; border-radius: 6px; padding: .5em .8em;
        margin: .5em 0; }
ul.errors { color: var(--problem); }
.plot { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .4em; }
.plot svg { width: 100%; height: auto; display: block; }
.muted { color: var(--muted); }
#filter { margin-left: auto; padding: .2em .5em; border-radius: 4px; border: 0; min-width: 10em; }
#filter + #timezone { margin-left: .5em; }
#timezone { padding: .2em .6em; border-radius: 4px; border: 0; cursor: pointer; }
#filter:not([hidden]) ~ #refreshed { margin-left: .8em; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable:hover { color: var(--ink); }
header .who { font-size: .9em; }
header form.who { display: inline; margin-left: 1em; }
header form.who button { font-size: .85em; padding: .1em .5em; margin-left: .4em; cursor: pointer; }
form.act, form.login, form.period {
  display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: center; background: #fff;
  border: 1px solid var(--line); border-radius: 6px; padding: .7em 1em; margin: .5em 0 1em;
}
form.login { flex-direction: column; align-items: flex-start; max-width: 22em; }
form label { color: var(--muted); font-size: .9em; }
form input { margin-left: .3em; padding: .2em .4em; border: 1px solid #bbb; border-radius: 4px; }
form button { padding: .3em .8em; border: 1px solid #1f2a36; border-radius: 4px;
              background: #1f2a36; color: #fff; cursor: pointer; }
form .buttons { display: flex; flex-wrap: wrap; gap: .4em; }
form .hint { flex-basis: 100%; margin: 0; font-size: .8em; color: var(--muted); }
p.error { color: var(--problem); font-weight: 600; }
@media (max-width: 700px) {
  header { flex-wrap: wrap; gap: .5em 1em; padding: .5em .7em; }
  #filter { margin-left: 0; flex: 1 1 100%; }
  #refreshed { margin-left: 0; }
  main { padding: .6em .5em 1.5em; }
  table { display: block; overflow-x: auto; }
  td.comment { max-width: none; min-width: 12em; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: .4em; }
  .card { min-width: 5.5em; }
}
"""
