"""The alert pipeline's documents (DESIGN §4): what format and transmit modules read.

A format module gets the alert document on stdin and prints the message (first
line the subject); the transmit module gets the transmit document and exits 0
when it delivered. A digest (the alert throttle's withheld problems, one per
recipient) is an alert document whose `digest` lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from survivor.clock import utc_iso
from survivor.model.codes import code_name
from survivor.model.documents import Recipient
from survivor.model.words import counted

ALERT_VERSION = 1


def alert_document(
    check: str,
    host: str,
    rc: int,
    comment: str,
    since: datetime,
    consecutive: int,
    *,
    attempt: int | None,
    escalated: bool,
    clear: bool,
    long_output: str = "",
) -> dict[str, Any]:
    """The alert document of one problem, without recipients (one list per method).
    `long_output` is a plugin's lines after the first ("" if none)."""
    return {
        "version": ALERT_VERSION,
        "kind": "alert",
        "check": check,
        "host": host,
        "rc": rc,
        "code": code_name(rc),
        "comment": comment,
        "long_output": long_output,
        "since": utc_iso(since),
        "consecutive": consecutive,
        "try": attempt,
        "escalated": escalated,
        "recipients": [],
        "clear": clear,
        "digest": [],
    }


def addressed(doc: Mapping[str, Any], recipients: Sequence[Recipient]) -> dict[str, Any]:
    """`doc` for these recipients (those of one alert method)."""
    return {**doc, "recipients": [r.to_dict() for r in recipients]}


def digest_document(
    recipient: Recipient, entries: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """One recipient's digest of the problems the throttle withheld this minute."""
    n = len(entries)
    return {
        "version": ALERT_VERSION,
        "kind": "alert",
        "check": "digest",
        "host": "",
        "rc": max((int(e.get("rc") or 0) for e in entries), default=0),
        "code": "DIGEST",
        "comment": f"{counted(n, 'problem')} withheld by the alert throttle",
        "since": utc_iso(now),
        "consecutive": 0,
        "try": None,
        "escalated": False,
        "recipients": [recipient.to_dict()],
        "clear": False,
        "digest": list(entries),
    }


def transmit_document(
    via: str,
    recipients: Sequence[Recipient],
    formatted: str,
    alert: Mapping[str, Any],
    args: Mapping[str, Any],
) -> bytes:
    """What the transmit module reads: the format module's text split into subject and
    body, the recipients' addresses, the alert itself and the method's `args`."""
    subject, _, body = formatted.partition("\n")
    return json.dumps(
        {
            "version": ALERT_VERSION,
            "via": via,
            "recipients": [{"person": r.person, "address": r.address} for r in recipients],
            "subject": subject.strip(),
            "body": body,
            "alert": dict(alert),
            "args": dict(args),
        }
    ).encode()
