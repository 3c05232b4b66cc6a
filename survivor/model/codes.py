"""Return codes and what each means: one table that every part of survivor asks.

"Failing" (needs a person, may be acknowledged and alerted), "quiet" and the
two orders of codes are defined here once. The two orders answer different
questions and are kept apart on purpose:

* `urgency` sorts views (PROBLEM first, OK last; custom codes between WARNING
  and NOTICE);
* `severity` is Survivor 1.0's "worst" for combining a composite's required
  components (MISCONFIG > PROBLEM > WARNING > NOTICE > OK, other codes by
  number; reference §2.4).
"""

from __future__ import annotations

from enum import IntEnum


class ReturnCode(IntEnum):
    """The return codes of Survivor 1.0; custom codes 20-1000 are plain ints."""

    OK = 0
    PROBLEM = 1
    WARNING = 2
    NOTICE = 3
    MISCONFIG = 4
    TIMEDOUT = 5
    DEPEND = 6
    NOTYET = 7


MAX_RETURN_CODE = 1000
CUSTOM_CODES = range(20, MAX_RETURN_CODE + 1)


def is_valid_code(rc: object) -> bool:
    """A code a module may return: 0-7 or custom 20-1000."""
    return isinstance(rc, int) and not isinstance(rc, bool) and (0 <= rc <= 7 or rc in CUSTOM_CODES)


def code_name(rc: int) -> str:
    """The word stored next to every code: `OK`, `PROBLEM`, ... or `CUSTOM-25`."""
    try:
        return ReturnCode(rc).name
    except ValueError:
        return f"CUSTOM-{rc}"


# Codes that need nobody's attention: a result that is fine, not there yet, or held
# back by a dependency (the dependency's own pair is the one that fails).
QUIET = frozenset({ReturnCode.OK, ReturnCode.NOTYET, ReturnCode.DEPEND})


def is_failing(rc: int) -> bool:
    """Whether a code needs a person: alerted, listed by `status --problems`, acknowledgeable."""
    return rc not in QUIET


def blocks_dependents(rc: int) -> bool:
    """Whether a Type I dependency in this state holds back the checks that depend on it.

    Survivor: "not scheduled while the dependency's last result is not OK". A
    dependency that is itself held back (DEPEND) passes the decision on to its own.
    """
    return rc not in (ReturnCode.OK, ReturnCode.DEPEND)


# Most to least urgent, for views; custom codes (20-1000) sit between WARNING and NOTICE.
_URGENCY = {
    int(ReturnCode.PROBLEM): 0,
    int(ReturnCode.TIMEDOUT): 1,
    int(ReturnCode.MISCONFIG): 2,
    int(ReturnCode.WARNING): 3,
    int(ReturnCode.NOTICE): 5,
    int(ReturnCode.DEPEND): 6,
    int(ReturnCode.NOTYET): 7,
    int(ReturnCode.OK): 8,
}
_CUSTOM_URGENCY = 4


def urgency(rc: int) -> int:
    """Sort key of a code for views: PROBLEM first (0), OK last."""
    return _URGENCY.get(rc, _CUSTOM_URGENCY)


# Survivor's order for a composite's "worst" and "best" result; higher is worse.
_SEVERITY = {
    int(ReturnCode.OK): 0,
    int(ReturnCode.NOTICE): 1,
    int(ReturnCode.WARNING): 2,
    int(ReturnCode.PROBLEM): 3,
    int(ReturnCode.MISCONFIG): 4,
}


def severity(rc: int) -> int:
    """Sort key of a code for combining results: higher is worse; other codes by number."""
    known = _SEVERITY.get(rc)
    return known if known is not None else 5 + rc
