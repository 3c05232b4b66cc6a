"""Log in and act in a real browser (issue 22 part 3): headless Chromium, driven over the
DevTools protocol like a person: it fills the login form, clicks "acknowledge", and
reads the result and the command record on the check page. No JavaScript of ours is
needed for any of it (the forms are plain HTML); the page's script only refreshes.

Skipped where Debian's `chromium` is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cdp import Chromium
from tests.viewstate import state
from tests.webkit import ActingSite, acting_site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="chromium is not installed (apt-get install -y chromium)",
    ),
]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ActingSite]:
    with acting_site(tmp_path / "tree") as s:
        s.tree.store.write_check("web2", "http", state(1, minutes_ago=1, comment="refused"))
        yield s


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


def test_log_in_acknowledge_and_see_the_record(
    site: ActingSite, browser: Chromium, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{site.port}"
    # the page's own script is off: the forms must work without JavaScript
    browser.page("Emulation.setScriptExecutionDisabled", value=True)
    browser.goto(url + "/check/web2/http")
    assert "log in" in browser.text() and "acknowledge" not in browser.text()
    browser.goto(url + "/login?next=/check/web2/http")
    browser.fill("input[name=user]", "alice")
    browser.fill("input[name=password]", "correct horse")
    browser.click("form.login button")
    browser.wait_for(f"location.href === {url + '/check/web2/http'!r}")
    browser.wait_for("document.querySelector('form.act') !== null")
    assert "alice" in browser.evaluate("document.querySelector('header .user').textContent")
    assert browser.evaluate("document.cookie") == ""  # HttpOnly: a script cannot see it
    assert browser.evaluate("document.body.dataset.refreshed") is None  # our script did not run
    browser.fill("form.act input[name=comment]", "looking into it")
    browser.click("form.act button[value=ack]")
    browser.wait_for("document.title.startsWith('ack by alice')")
    assert "1 of 1 pairs acted on" in browser.text()
    assert "acknowledged web2/http (PROBLEM" in browser.text()
    (record,) = site.commands("web2", "http")
    assert record["user"] == "alice" and record["comment"] == "looking into it"
    browser.goto(url + "/check/web2/http")
    page = browser.wait_for(
        "document.body.innerText.includes('Acknowledged (PROBLEM) by alice')"
        " && document.body.innerText"
    )
    assert "command=ack code=PROBLEM comment=looking into it user=alice" in page
    browser.screenshot(tmp_path / "acked.png")
    assert (tmp_path / "acked.png").stat().st_size > 10_000
    # log out: the forms go away, and a stale form posted again is refused
    browser.click("header form.who button")
    browser.wait_for(f"location.href === {url + '/'!r}")
    browser.goto(url + "/check/web2/http")
    assert browser.evaluate("document.querySelector('form.act')") is None
