"""How often the daemon rewrites queue.json: once a second, less when the writing is dear."""

from __future__ import annotations

import pytest

from survivor.daemon.heartbeat import QUEUE_SHARE, QUEUE_WRITE_S, queue_write_due


def test_a_short_queue_is_written_every_second() -> None:
    assert queue_write_due(100.0, 100.002) == pytest.approx(100.0 + QUEUE_WRITE_S)


def test_a_long_queue_takes_at_most_its_share_of_the_time() -> None:
    took = 0.2  # a backlog of tens of thousands of due items
    due = queue_write_due(100.0, 100.0 + took)
    assert due == pytest.approx(100.0 + took / QUEUE_SHARE)
    assert took / (due - 100.0) <= QUEUE_SHARE
