"""The pure rules of dispatch (DESIGN §7b): failover lists, breakers on a fake clock, clamping."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from survivor.remote.dispatchplan import (
    Breakers,
    Said,
    Tried,
    chain,
    clamp_start,
    not_served,
)
from tests.fakes import FakeClock


def test_chain_stops_at_local_and_says_whether_local_is_allowed() -> None:
    assert chain(("dc1", "dc2", "local")) == (("dc1", "dc2"), True)
    assert chain(("dc1", "local", "dc2")) == (("dc1",), True)  # local never fails: dc2 unused
    assert chain(("dc2",)) == (("dc2",), False)  # {local: false}
    assert chain(("local",)) == ((), True)


def test_breaker_opens_after_timeouts_in_a_row_and_closes_after_its_time() -> None:
    clock = FakeClock()
    breakers = Breakers(after=3, for_s=60)
    assert not breakers.timed_out("dc1", clock.monotonic())
    assert not breakers.timed_out("dc1", clock.monotonic())
    assert not breakers.is_open("dc1", clock.monotonic())
    assert breakers.timed_out("dc1", clock.monotonic())  # the third opens it
    assert breakers.is_open("dc1", clock.monotonic())
    assert not breakers.is_open("dc2", clock.monotonic())  # per group
    clock.advance(59)
    assert breakers.is_open("dc1", clock.monotonic())
    assert breakers.to_dict(clock.monotonic())["dc1"]["open"] is True
    clock.advance(1)
    assert not breakers.is_open("dc1", clock.monotonic())  # half open: one request goes
    assert breakers.timed_out("dc1", clock.monotonic())  # and one more timeout reopens it
    assert breakers.is_open("dc1", clock.monotonic())


def test_an_answer_closes_the_breaker_and_resets_the_count() -> None:
    clock = FakeClock()
    breakers = Breakers(after=2, for_s=60)
    breakers.timed_out("dc1", clock.monotonic())
    breakers.answered("dc1")
    assert not breakers.timed_out("dc1", clock.monotonic())  # counted from zero again
    assert breakers.timed_out("dc1", clock.monotonic())
    breakers.answered("dc1")
    assert not breakers.is_open("dc1", clock.monotonic())
    assert breakers.to_dict(clock.monotonic()) == {}


def test_the_worker_start_is_clamped_into_sent_and_replied() -> None:
    sent = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    replied = sent + timedelta(seconds=2)
    inside = sent + timedelta(seconds=1)
    assert clamp_start(inside, sent, replied) == inside
    assert clamp_start(sent - timedelta(hours=1), sent, replied) == sent  # a slow clock
    assert clamp_start(sent + timedelta(hours=1), sent, replied) == replied  # a fast one
    assert clamp_start(None, sent, replied) == sent


def test_the_timedout_comment_names_every_group_tried() -> None:
    comment = not_served(
        [Tried("dc2", Said.NO_RESPONDERS), Tried("dc3", Said.TIMEOUT, "within 7 s")]
    )
    assert comment == (
        "not run: no worker group served it and local is off: "
        "dc2 (no responders), dc3 (no answer: within 7 s)"
    )


def test_the_daemon_without_workers_never_imports_nats(tmp_path: Path) -> None:
    """nats-py stays optional: building every part of a daemon with no `workers:` leaves it out."""
    (tmp_path / "survivor.yaml").write_text(
        "instance: {name: t, state_dir: state, history_dir: history}\n"
        "hosts: {web1: {}}\nclasses: {web: {hosts: [web1]}}\n"
        "schedules: {s: [{every: 5m}]}\n"
        "checks: {disk: {module: ok, hosts: all, schedule: s}}\n"
    )
    code = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from survivor.clock import SystemClock
        from survivor.config import load_config
        from survivor.daemon.daemon import Daemon
        from survivor.daemon.wiring import RunningConfig, Stores, build_parts
        config = load_config(Path({str(tmp_path / "survivor.yaml")!r}))
        clock = SystemClock()
        parts = build_parts(config, Stores.open(config), RunningConfig(config, 1, clock.now()),
                            clock, clock.now())
        assert parts.dispatcher is None
        print(sorted(m for m in sys.modules if m == "nats" or m.startswith("nats.")))
        """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr
