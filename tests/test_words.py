"""Counted nouns in messages: singular for one (issue 19: "1 problems", "1 alerts were")."""

from __future__ import annotations

from datetime import UTC, datetime

from survivor.model.documents import Recipient
from survivor.model.words import counted, scalar_text
from survivor.protocol.alerts import digest_document


def test_counted_picks_the_number() -> None:
    assert counted(0, "file") == "0 files"
    assert counted(1, "file") == "1 file"
    assert counted(2, "configuration problem") == "2 configuration problems"
    assert counted(1, "alert was", "alerts were") == "1 alert was"
    assert counted(3, "alert was", "alerts were") == "3 alerts were"


def test_a_digest_of_one_problem_says_problem() -> None:
    alice = Recipient("alice", "alice@example.org", "mail", "helpdesk")
    now = datetime(2026, 11, 24, tzinfo=UTC)
    one = digest_document(alice, [{"check": "disk", "host": "db1", "rc": 1}], now)
    assert one["comment"] == "1 problem withheld by the alert throttle"
    two = digest_document(alice, [{"rc": 1}, {"rc": 2}], now)
    assert two["comment"] == "2 problems withheld by the alert throttle"


def test_scalars_read_as_numbers_not_exponents() -> None:
    # issue 19: a disk module's bytes printed as 2.53305e+10.
    assert scalar_text(25330500000.0) == "25330500000"
    assert scalar_text(3) == "3"
    assert scalar_text(0.4) == "0.4"
    assert scalar_text(12.3456789) == "12.3457"
    assert scalar_text(1234567.5) == "1234568"
    assert scalar_text(-2.5) == "-2.5"
    assert scalar_text(0.000123456) == "0.000123456"
    assert scalar_text(1e-7) == "1e-07"
    assert scalar_text(1e20) == "1e+20"
