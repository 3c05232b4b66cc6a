"""One typo in the config on disk must not disable the command line (issue 19 item 1).

While the daemon runs the last good config, read commands and operator actions work from
the config it runs (state/running-config.json) with one line on stderr; validate and
reload still need the file itself.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from survivor.cli import main
from survivor.config import load_config
from survivor.model.documents import ConfigSnapshot
from tests.cli.conftest import Cli
from tests.viewstate import NOW


def run_with_snapshot(cli: Cli) -> None:
    """What the daemon writes at start and after each reload."""
    config = load_config(cli.tree.config)
    cli.tree.store.write_running_config(
        ConfigSnapshot(str(config.path), 3, NOW, tuple((str(p), d) for p, d in config.sources))
    )


def stable(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows without the texts that move with the clock (`5m ago`, `in 1m`)."""
    moving = ("since_age", "last_age", "next_due_in")
    return [{k: v for k, v in row.items() if k not in moving} for row in rows]


def break_config(cli: Cli) -> None:
    text = cli.tree.config.read_text().replace("  ping: {module: ok", "  ping: {modul: ok")
    cli.tree.config.write_text(text)


def test_status_history_and_ack_work_from_the_running_config(cli: Cli) -> None:
    good_status = cli("status", "--json")
    good_history = cli("history", "web1/http")
    run_with_snapshot(cli)
    break_config(cli)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(main, ["--config", str(cli.tree.config), *args])
        return r.exit_code, r.stdout, r.stderr

    code, out, err = run("status", "--json")
    assert code == good_status.exit_code
    assert stable(json.loads(out)["checks"]) == stable(json.loads(good_status.output)["checks"])
    assert err.count("\n") == 1 and "does not load" in err and "generation 3" in err
    assert "survivor.yaml" in err and "modul" in err  # where the file is broken
    code, out, _ = run("history", "web1/http")
    assert (code, out) == (good_history.exit_code, good_history.output)
    code, out, _ = run("unack", "web1/http", "-m", "looked")
    assert code == 0, out
    # the commands that need the file itself still refuse it
    assert run("validate", "--no-modules")[0] == 1
    code, _, err = run("reload")
    assert code == 1 and "modul" in err


def test_without_a_running_config_the_errors_are_shown(cli: Cli) -> None:
    break_config(cli)
    result = cli("status")
    assert result.exit_code == 1 and "configuration problem" in result.output


def test_validate_warns_of_hosts_in_no_class(cli: Cli) -> None:
    """A host that is in no class is monitored by nothing: validate says so (and still
    exits 0: Survivor's rule, not a mistake)."""
    text = cli.tree.config.read_text().replace(
        "  db1: {address: 127.0.0.3}\n",
        "  db1: {address: 127.0.0.3}\n  spare: {address: 10.0.0.9}\n",
    )
    cli.tree.config.write_text(text)
    result = cli("validate", "--no-modules")
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.output.splitlines() if "warning" in line]
    assert "survivor.yaml:" in warning and "'spare' is in no class" in warning
