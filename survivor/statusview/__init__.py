"""What the state files say, as rows and summaries shared by `status`, `queue`, `web` and metrics.

Every view of survivor reads the same files the daemon writes (DESIGN.md §5)
and nothing else, so they agree with each other and work while the daemon is
down. The files may be missing (a fresh install), half there (the daemon
died between two writes of different files), or written by an older or newer
survivor; none of that may raise. Each document is therefore read leniently:
what can be understood is shown, and what cannot is reported in the row's
`error` or the snapshot's `errors`, never as a traceback.

* `rows`: codes by urgency, time texts, check rows and queue rows;
* `health`: the daemon's health from daemon.json and the pidfile;
* `snapshot`: the one reader, and the summaries built from what it read.
"""

from survivor.statusview.health import DaemonHealth, daemon_health
from survivor.statusview.rows import (
    CheckRow,
    QueueRow,
    age_text,
    count_by_code,
    inhibit_active,
    is_problem,
    iso,
    lenient_check_state,
    parse_time,
    queue_by_host,
    queue_rows,
    rank,
    sort_rows,
    span_text,
)
from survivor.statusview.snapshot import (
    PAIR_DOCS,
    Snapshot,
    host_detail,
    host_line,
    queue_totals,
    queue_updated,
    read_pair_docs,
    read_snapshot,
    status_lines,
    summary,
)

__all__ = [
    "PAIR_DOCS",
    "CheckRow",
    "DaemonHealth",
    "QueueRow",
    "Snapshot",
    "age_text",
    "count_by_code",
    "daemon_health",
    "host_detail",
    "host_line",
    "inhibit_active",
    "is_problem",
    "iso",
    "lenient_check_state",
    "parse_time",
    "queue_by_host",
    "queue_rows",
    "queue_totals",
    "queue_updated",
    "rank",
    "read_pair_docs",
    "read_snapshot",
    "sort_rows",
    "span_text",
    "status_lines",
    "summary",
]
