"""What the state files say, for people and tools: every view reads the files the daemon writes.

Every view of survivor reads the same files the daemon writes (DESIGN.md §5)
and nothing else, so they agree with each other and work while the daemon is
down. The files may be missing (a fresh install), half there (the daemon
died between two writes of different files), or written by an older or newer
survivor; none of that may raise. Each document is therefore read leniently:
what can be understood is shown, and what cannot is reported in the row's
`error` or the snapshot's `errors`, never as a traceback.

* `rows`: time texts, check rows and queue rows;
* `health`: the daemon's health from daemon.json and the pidfile;
* `snapshot`: the one reader, and the summaries built from what it read;
* `metrics`: the Prometheus exposition;
* `web/`: the status page.
"""
