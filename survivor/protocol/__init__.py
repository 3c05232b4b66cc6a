"""The module protocols of DESIGN.md §4, as pure functions over bytes.

`modules` speaks the Survivor protocol (`module:`): a JSON document on stdin, one
JSON line per host (or one for a fix) on stdout. `plugins` speaks the Nagios plugin
protocol (`plugin:`): an argv expanded per host, an exit status, a first line and
perfdata. Building the stdin documents and reading what modules and plugins print is
kept apart from running them (`proc.runner`), so every odd output a module can
produce is tested without a process: torn lines, binary junk, unknown hosts,
perfdata in all the shapes the monitoring-plugins guidelines allow.

Nothing here raises on bad module output: bad output becomes a MISCONFIG
result whose comment says what the module printed. Only bad *configuration*
(an argv template naming a var the host lacks) raises `ValueError`.
"""
