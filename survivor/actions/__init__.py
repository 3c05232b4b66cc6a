"""Operator actions: ack, unack, inhibit, uninhibit, escalate, reschedule, fix, call lists.

`operator` holds who acts and the plumbing every action shares, `pairs` the
actions on one check@host, `calllists` the call-list views and substitutions.

Plain functions over an `Operator` (config, state, history, the real user),
so the CLI is a thin shell and tests call them directly. Preconditions are
Survivor's (reference §6.1); a refused action raises `OpError` naming the
host/check and the state that stands in the way, and changes nothing.

Every change is made under the pair's entity lock (the same lock the daemon
takes to write alert state) and recorded in the pair's command history with
the Unix user running the command (never a name given on the command line)
and the comment, "(no reason given)" by default.

Decisions that differ from Survivor 1.0, and why:

* `reschedule` is recorded in the command history too: DESIGN.md §7 lists it
  among the recorded operator actions, and a history that explains why a
  check ran off-schedule is worth one line.
* `ack` writes no alert.json. Survivor wrote an alert status holding the
  current code so an ack placed before the first alert was not taken for a
  stale one; here the ack itself carries the code (`about_rc`), which is what
  `alertplan.decide()` compares when there is no alert state, and alert.json
  stays owned by the daemon, which keeps it in memory.
* `inhibit` on an inhibited pair replaces the inhibition (and says so), so a
  maintenance window can be extended or shortened without a gap.
* A new call-list substitution for a person replaces that person's earlier
  one, so a mistaken substitution is corrected by giving the right one.
"""
