"""The screenshots of docs/operations.md, taken with headless Chromium on the test tree.

    PYTHONPATH=. .venv/bin/python -m tests.integration.shoot_docs docs/img

Runs the acting page (tests/webkit.py: alice and bob, the viewstate tree of
2026-11-24 10:00 UTC) and walks through an operator's morning as the doc tells it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.integration.cdp import Chromium
from tests.viewstate import hold_pidfile, state
from tests.webkit import acting_site


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as scratch,
        acting_site(Path(scratch) / "tree") as site,
        hold_pidfile(site.tree.state),  # the daemon looks alive
    ):
        site.tree.store.write_check(
            "web2", "http", state(1, minutes_ago=1, comment="connection refused on :80")
        )
        url = f"http://127.0.0.1:{site.port}"
        browser = Chromium(Path(scratch) / "profile", 1100, 720)
        try:
            browser.goto(url + "/login?next=/")
            browser.fill("input[name=user]", "alice")
            browser.screenshot(out / "ops-login.png")
            browser.fill("input[name=password]", "correct horse")
            browser.click("form.login button")
            browser.wait_for(
                f"location.href === {url + '/'!r} && !!document.querySelector('form.act')"
            )
            browser.screenshot(out / "ops-overview.png")
            browser.goto(url + "/check/web2/http")
            browser.fill("form.act input[name=comment]", "apache down after the upgrade, on it")
            browser.evaluate(
                "window.scrollTo(0, document.querySelector('form.act').offsetTop - 260)"
            )
            browser.screenshot(out / "ops-check-form.png")
            browser.click("form.act button[value=ack]")
            browser.wait_for("document.title.startsWith('ack by alice')")
            browser.screenshot(out / "ops-ack-result.png")
            browser.goto(url + "/")
            browser.fill("form.act input[name=selection]", "*/http")
            browser.fill("form.act input[name=until]", "+2h")
            browser.fill("form.act input[name=comment]", "load balancer swap")
            browser.click("form.act button[value=downtime]")
            browser.wait_for("document.title.startsWith('downtime by alice')")
            browser.screenshot(out / "ops-downtime-result.png")
            browser.goto(url + "/check/web2/http")
            browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            browser.screenshot(out / "ops-check-records.png")
            browser.goto(url + "/report/web1?days=1")
            browser.screenshot(out / "ops-report-host.png")
            browser.goto(
                url + "/report/web1/http?since=2026-11-24T09:00:00Z&until=2026-11-24T10:00:00Z"
            )
            browser.screenshot(out / "ops-report-pair.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
