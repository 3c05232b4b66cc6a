"""How a composite check's components combine into one result (Survivor semantics).

Pure: the executor runs the components together and hands their results here.

* Any component that did not finish (TIMEDOUT) makes the composite TIMEDOUT.
* Required components act like AND: if any failed, the result is the worst of
  their codes; if none failed the composite is OK whatever the optionals say.
* With only optional components: OK if any succeeded, else the best failure.
* Comments are joined with "; ", the scalar is the number of components that
  finished, and the duration is the sum of the components' durations.

Severity, from best to worst: OK < NOTICE < WARNING < PROBLEM < MISCONFIG,
then any other code (DEPEND, custom 20-1000) by its number.
"""

from __future__ import annotations

from collections.abc import Sequence

from survivor.model.codes import ReturnCode, severity
from survivor.model.work import CheckResult


def combine(
    host: str,
    required: Sequence[tuple[str, CheckResult]],
    optional: Sequence[tuple[str, CheckResult]],
) -> CheckResult:
    """One result for `host` from (component name, result) pairs."""
    parts = [*required, *optional]
    comment = "; ".join(f"{name}: {r.comment}" if r.comment else name for name, r in parts)
    finished = sum(1 for _, r in parts if r.rc != ReturnCode.TIMEDOUT)
    duration = sum(r.duration_ms for _, r in parts)
    if any(r.rc == ReturnCode.TIMEDOUT for _, r in parts):
        rc = int(ReturnCode.TIMEDOUT)
    elif required:
        failed = [r.rc for _, r in required if r.rc != ReturnCode.OK]
        rc = max(failed, key=severity) if failed else int(ReturnCode.OK)
    elif optional:
        codes = [r.rc for _, r in optional]
        rc = int(ReturnCode.OK) if ReturnCode.OK in codes else min(codes, key=severity)
    else:
        rc, comment = int(ReturnCode.MISCONFIG), "composite check has no components"
    return CheckResult(host, rc, comment, float(finished), duration)
