"""Selections: HOST, HOST/CHECK, */CHECK and --group G resolved against the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from survivor.config import load_config
from survivor.model.config import Config
from survivor.selection import (
    SelectionError,
    parse_selection,
    parse_selector,
    resolve,
)
from tests.test_ops import CONFIG


@pytest.fixture
def config(tmp_path: Path, scratch: Path) -> Config:
    path = tmp_path / "survivor.yaml"
    path.write_text(CONFIG.format(mod=scratch / "mod") + "groups:\n  front: [web2]\n")
    return load_config(path)


def pick(config: Config, *texts: str, groups: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return resolve(config, parse_selection(texts, groups))


def test_a_host_selects_all_its_checks(config: Config) -> None:
    assert pick(config, "web1") == [("web1", "http"), ("web1", "smtp"), ("web1", "ping")]
    assert pick(config, "web1/*") == pick(config, "web1")


def test_a_pair_in_either_spelling(config: Config) -> None:
    assert pick(config, "web2/http") == [("web2", "http")]
    assert pick(config, "http@web2") == [("web2", "http")]


def test_star_check_selects_the_check_on_every_host(config: Config) -> None:
    assert pick(config, "*/ping") == [("web1", "ping"), ("web2", "ping"), ("db1", "ping")]


def test_groups_and_classes(config: Config) -> None:
    assert pick(config, groups=("front",)) == [("web2", "http"), ("web2", "ping")]
    assert pick(config, groups=("db",)) == [("db1", "ping")]  # a class


def test_several_selectors_are_merged_each_pair_once_in_config_order(config: Config) -> None:
    assert pick(config, "db1", "web2/http", "*/http", groups=("front",)) == [
        ("web1", "http"),
        ("web2", "http"),
        ("web2", "ping"),
        ("db1", "ping"),
    ]


@pytest.mark.parametrize(
    ("texts", "groups", "message"),
    [
        (("web9",), (), "nothing configured matches 'web9': no host named 'web9'"),
        (("wbe1",), (), "did you mean 'web1'?"),
        (("*/htp",), (), "no check named 'htp'"),
        (("*/htp",), (), "did you mean 'http'?"),
        (("db1/http",), (), "check http does not run on host db1 (it runs on: web1, web2)"),
        ((), ("frnt",), "no group or class named 'frnt'"),
        ((), ("frnt",), "did you mean 'front'?"),
    ],
)
def test_a_selector_matching_nothing_is_named(
    config: Config, texts: tuple[str, ...], groups: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SelectionError) as err:
        pick(config, *texts, groups=groups)
    assert message in str(err.value)


def test_every_selector_matching_nothing_is_reported_at_once(config: Config) -> None:
    with pytest.raises(SelectionError) as err:
        pick(config, "web9", "web1", "*/nope")
    assert "'web9'" in str(err.value) and "'nope'" in str(err.value)


@pytest.mark.parametrize("text", ["../etc", "web1/..", "*/*", "*", "a b/c"])
def test_malformed_selectors_are_refused_before_any_lookup(text: str) -> None:
    with pytest.raises(SelectionError):
        parse_selector(text)
