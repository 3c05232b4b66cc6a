"""The status page in a real browser: headless Chromium screenshots it and runs its script.

Skipped where Debian's `chromium` is not installed (CI installs it). The PNG is
checked with a small decoder (zlib, no Pillow): right size, not blank, and the
page's own colours present. The DOM is dumped after the script ran, to see
that the JSON refresh rewrote the numbers from a state that changed after the
HTML was served.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from survivor.views.web import StatusSource, make_server
from tests.fakes import FakeClock
from tests.viewstate import NOW, Tree, full_tree, hold_pidfile, state

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="chromium is not installed (apt-get install -y chromium)",
    ),
]

WIDTH, HEIGHT = 1280, 900
HEADER_RGB = (0x1F, 0x2A, 0x36)  # survivor.css header
PROBLEM_RGB = (0xC6, 0x28, 0x28)  # the PROBLEM card
OK_RGB = (0x2E, 0x7D, 0x32)  # the OK card


class ChangingSource(StatusSource):
    """Serves the page from the tree as it is, then breaks web2/http before any JSON answer."""

    def __init__(self, tree: Tree, clock: FakeClock) -> None:
        super().__init__(tree.state, tree.history, clock, cache_s=0)
        self.tree = tree
        self.calls = 0
        self.lock = threading.Lock()

    def summary(self) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            if self.calls == 2:
                self.tree.store.write_check(
                    "web2", "http", state(1, minutes_ago=0, comment="broke after page load")
                )
        return super().summary()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, ChangingSource]]:
    tree = full_tree(tmp_path / "tree")
    source = ChangingSource(tree, FakeClock(NOW + timedelta(seconds=5)))
    server = make_server("127.0.0.1", 0, source)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    with hold_pidfile(tree.state):
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", source
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=4000",  # let the script's first fetch finish
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


# --------------------------------------------------------------------------- a tiny PNG reader


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit truecolour PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            upleft = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filt == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    if channels == 4:
        rows = [bytes(b for i, b in enumerate(r) if i % 4 != 3) for r in rows]
    return width, height, rows


def colours(rows: list[bytes], step: int = 4) -> dict[tuple[int, int, int], int]:
    seen: dict[tuple[int, int, int], int] = {}
    for row in rows[::step]:
        for x in range(0, len(row), 3 * step):
            rgb = (row[x], row[x + 1], row[x + 2])
            seen[rgb] = seen.get(rgb, 0) + 1
    return seen


# --------------------------------------------------------------------------- the tests


def test_overview_screenshot_is_a_rendered_page(
    site: tuple[str, ChangingSource], tmp_path: Path
) -> None:
    url, _ = site
    out = tmp_path / "overview.png"
    proc = chromium(tmp_path, f"--screenshot={out}", url + "/")
    assert out.exists(), proc.stderr[-2000:]
    assert out.stat().st_size > 10_000
    width, height, rows = png_pixels(out.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    seen = colours(rows)
    white = sum(n for rgb, n in seen.items() if min(rgb) >= 245)
    assert white < 0.95 * sum(seen.values()), "the page is (nearly) blank"
    assert len(seen) > 20
    for rgb in (HEADER_RGB, PROBLEM_RGB, OK_RGB):
        assert seen.get(rgb, 0) > 20, f"colour {rgb} not on the page: the CSS did not apply"


def test_script_refreshes_the_numbers_from_the_json(
    site: tuple[str, ChangingSource], tmp_path: Path
) -> None:
    url, source = site
    proc = chromium(tmp_path, "--dump-dom", url + "/")
    dom = proc.stdout
    assert "<body" in dom, proc.stderr[-2000:]
    assert source.calls >= 2, "the page's script never fetched /api/summary"
    assert re.search(r'<body[^>]*data-refreshed="2026-11-24T10:00:05\.000Z"', dom)
    assert "live, updated 10:00:05Z" in dom
    # web2/http broke after the HTML was served: only the JSON refresh knows it.
    assert '<span data-k="problem_count">3</span>' in dom
    assert "broke after page load" in dom
    assert '<div class="card code-PROBLEM"><b>2</b><span>PROBLEM</span></div>' in dom
    assert "<script>alert" not in dom  # the hostile comment stayed text


def test_check_page_draws_the_plot(site: tuple[str, ChangingSource], tmp_path: Path) -> None:
    url, _ = site
    out = tmp_path / "check.png"
    proc = chromium(
        tmp_path, f"--screenshot={out}", "--window-size=1280,1400", url + "/check/web1/http"
    )
    assert out.exists(), proc.stderr[-2000:]
    width, _, rows = png_pixels(out.read_bytes())
    assert width == WIDTH
    seen = colours(rows, step=2)
    assert seen.get(PROBLEM_RGB, 0) > 20 and seen.get(OK_RGB, 0) > 5  # the dots of the plot
    dom = chromium(tmp_path, "--dump-dom", url + "/check/web1/http").stdout
    assert dom.count("<circle") == 60 and "fp bbbbbbbbbbbb" in dom
    assert re.search(r'<dd data-k="state.code">PROBLEM</dd>', dom)


def test_narrow_screen_gets_the_filter_and_time_controls(
    site: tuple[str, ChangingSource], tmp_path: Path
) -> None:
    """At 400 px the page still renders (header, cards); the script turns on the row filter
    and the UTC/local switch, which stay hidden without it."""
    url, _ = site
    out = tmp_path / "narrow.png"
    proc = chromium(tmp_path, f"--screenshot={out}", "--window-size=400,1000", url + "/")
    assert out.exists(), proc.stderr[-2000:]
    width, _, rows = png_pixels(out.read_bytes())
    assert width == 400
    seen = colours(rows, step=2)
    assert seen.get(HEADER_RGB, 0) > 20 and seen.get(PROBLEM_RGB, 0) > 5
    dom = chromium(tmp_path, "--dump-dom", "--window-size=400,1000", url + "/").stdout
    assert re.search(r'<input type="search" id="filter"[^>]*>', dom)
    assert not re.search(r'<input type="search" id="filter"[^>]* hidden', dom)
    assert re.search(r'<button type="button" id="timezone">times: (UTC|local)</button>', dom)
    assert 'class="sortable"' in dom  # the column headers sort on click
