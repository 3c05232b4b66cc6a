"""Strict YAML and files: 1.2-style scalars, marks, refusals, includes and merging."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from survivor.config import load_config
from survivor.config.load import read_sources
from survivor.config.yaml import (
    MAX_ALIAS_USES,
    LoadFailure,
    MList,
    MMap,
    parse_yaml,
)
from survivor.errors import ConfigError, ConfigProblem

FIXTURES = Path(__file__).parent.parent / "fixtures" / "etc"
INSTANCE = "instance: {name: t, state_dir: state, history_dir: history}\n"


def parse(text: str) -> tuple[Any, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    return parse_yaml(text, "t.yaml", problems), problems


def load_problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


# --------------------------------------------------------------------------- scalars


def test_yaml_11_traps_stay_strings() -> None:
    doc, problems = parse(
        "sexagesimal: 9:00\n"
        "padded: 08:00\n"
        "on: on\n"
        "no: no\n"
        "yes: yes\n"
        "octal: 0755\n"
        "underscored: 1_000\n"
        "date: 2026-01-01\n"
        "equals: =\n"
    )
    assert problems == []
    assert doc == {
        "sexagesimal": "9:00",
        "padded": "08:00",
        "on": "on",
        "no": "no",
        "yes": "yes",
        "octal": "0755",
        "underscored": "1_000",
        "date": "2026-01-01",
        "equals": "=",
    }


def test_core_schema_scalars() -> None:
    doc, problems = parse(
        "t: true\nf: False\nn: null\ntilde: ~\nempty:\n"
        "int: 42\nneg: -7\nhex: 0x1F\noct: 0o17\nzero: 0\n"
        "float: 1.5\nexp: 1e3\ninf: .inf\nquoted: 'true'\nquoted_int: \"42\"\n"
    )
    assert problems == []
    assert doc == {
        "t": True,
        "f": False,
        "n": None,
        "tilde": None,
        "empty": None,
        "int": 42,
        "neg": -7,
        "hex": 31,
        "oct": 15,
        "zero": 0,
        "float": 1.5,
        "exp": 1000.0,
        "inf": float("inf"),
        "quoted": "true",
        "quoted_int": "42",
    }
    assert type(doc["t"]) is bool and type(doc["int"]) is int


def test_explicit_tags() -> None:
    doc, problems = parse("a: !!str 9:00\nb: !!int '12'\nc: !!float 2\n")
    assert problems == []
    assert doc == {"a": "9:00", "b": 12, "c": 2.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!python/object:os.system x\n", "unsupported YAML tag"),
        ("a: !!binary aGk=\n", "unsupported YAML tag"),
        ("a: !custom x\n", "unsupported YAML tag '!custom'"),
        ("a: !!set {x, y}\n", "unsupported YAML tag"),
        ("a: !!int nine\n", "'nine' is not an integer"),
        ("1: x\n", "mapping key '1' is not a string: quote it"),
        ("[a]: x\n", "a mapping key must be a plain string"),
    ],
)
def test_odd_tags_and_keys_are_problems(text: str, message: str) -> None:
    _, problems = parse(text)
    assert [p.line for p in problems] == [1]
    assert message in problems[0].message


# --------------------------------------------------------------------------- marks


def test_values_remember_their_lines() -> None:
    doc, _ = parse("top:\n  a: 1\n  b:\n    - x\n    -\n      y: z\n  c: [p, q]\n")
    assert isinstance(doc, MMap)
    top = doc["top"]
    assert isinstance(top, MMap)
    assert (top.line, top.key_line("a"), top.key_line("b"), top.value_line("b")) == (2, 2, 3, 4)
    items = top["b"]
    assert isinstance(items, MList)
    assert (items.item_line(0), items.item_line(1)) == (4, 6)
    assert items[1].line == 6 and items[1].file == "t.yaml"
    assert top.key_line("missing") == top.line


def test_duplicate_key_names_both_lines() -> None:
    doc, problems = parse("a:\n  x: 1\n  y: 2\n  x: 3\n")
    assert problems == [ConfigProblem("t.yaml", 4, "duplicate key 'x' (first at line 2)")]
    assert doc["a"]["x"] == 1  # the first one is kept; the load fails anyway


def test_merge_keys_explicit_keys_win_and_keep_marks() -> None:
    doc, problems = parse(
        "defaults: &d {timeout: 5s, module: ping}\ncheck:\n  <<: *d\n  timeout: 9s\n"
    )
    assert problems == []
    check = doc["check"]
    assert check == {"timeout": "9s", "module": "ping"}
    assert check.key_line("timeout") == 4
    assert check.key_line("module") == 1


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(LoadFailure) as caught:
        parse("a: 1\nb: [x, y\nc: 2\n")
    problem = caught.value.problem
    assert problem.file == "t.yaml" and problem.line == 3
    assert "YAML syntax error" in problem.message and "column" in problem.message


def test_several_documents_are_refused() -> None:
    with pytest.raises(LoadFailure, match="single document"):
        parse("a: 1\n---\nb: 2\n")


@pytest.mark.timeout(5)
def test_alias_bomb_is_refused_fast() -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghijk":
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    started = time.monotonic()
    with pytest.raises(LoadFailure, match="alias bomb"):
        parse("\n".join(levels) + "\n")
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(5)
def test_wide_alias_expansion_is_refused() -> None:
    big = "[" + ", ".join(str(i) for i in range(2000)) + "]"
    text = f"a: &a {big}\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    with pytest.raises(LoadFailure, match="expand to more than"):
        parse(text)


@pytest.mark.timeout(5)
def test_long_strings_repeated_through_aliases_are_refused() -> None:
    text = "big: &big " + "x" * 100_000 + "\nmany: [" + ", ".join(["*big"] * 200) + "]\n"
    with pytest.raises(LoadFailure, match="repeat more than"):
        parse(text)


def test_modest_aliases_are_fine() -> None:
    doc, problems = parse("hosts: &web [web1, web2]\nother: *web\nmore: [*web, *web]\n")
    assert problems == []
    assert doc["other"] == ["web1", "web2"] and doc["more"] == [["web1", "web2"]] * 2
    assert MAX_ALIAS_USES >= 1000


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(LoadFailure, match="recursive alias"):
        parse("a: &a [1, *a]\n")


def test_empty_document_is_none() -> None:
    assert parse("# nothing\n") == (None, [])


# --------------------------------------------------------------------------- files


@pytest.mark.timeout(5)
def test_yaml_bomb_fixture_is_refused_with_its_file() -> None:
    problems = load_problems(FIXTURES / "yaml-bomb.yaml")
    assert len(problems) == 1
    assert problems[0].file.endswith("yaml-bomb.yaml") and "alias bomb" in problems[0].message


def test_default_include_is_conf_d_sorted(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "survivor.yaml").write_text(INSTANCE)
    (tmp_path / "conf.d" / "b.yaml").write_text("hosts: {b: {}}\n")
    (tmp_path / "conf.d" / "a.yaml").write_text("hosts: {a: {}}\n")
    (tmp_path / "conf.d" / "notes.txt").write_text("not yaml: [\n")
    raw = read_sources(tmp_path / "survivor.yaml")
    assert raw.problems == []
    assert [p.name for p in raw.files] == ["survivor.yaml", "a.yaml", "b.yaml"]
    assert list(raw.sections["hosts"]) == ["a", "b"]


def test_explicit_includes_in_order_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "survivor.yaml").write_text(
        INSTANCE + 'include: ["x/2*.yaml", "x/*.yaml", "nothing/*.yaml", "*.yaml"]\n'
    )
    for name in ("1.yaml", "2.yaml", "3.yaml"):
        (tmp_path / "x" / name).write_text(f"hosts: {{h{name[0]}: {{}}}}\n")
    raw = read_sources(tmp_path / "survivor.yaml")
    assert raw.problems == []
    assert [p.name for p in raw.files] == ["survivor.yaml", "2.yaml", "1.yaml", "3.yaml"]


def test_include_inside_included_file_and_instance_there_are_errors(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "survivor.yaml").write_text(INSTANCE)
    (tmp_path / "conf.d" / "a.yaml").write_text(
        "hosts: {a: {}}\ninclude: [more/*.yaml]\ninstance: {name: x}\n"
    )
    raw = read_sources(tmp_path / "survivor.yaml")
    messages = [(Path(p.file).name, p.line, p.message.split(":")[0]) for p in raw.problems]
    assert messages == [("a.yaml", 2, "include"), ("a.yaml", 3, "instance")]


def test_same_name_in_two_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "survivor.yaml").write_text(INSTANCE + "checks:\n  ping: {module: ping}\n")
    (tmp_path / "conf.d" / "a.yaml").write_text("# more\nchecks:\n  ping: {module: pong}\n")
    problems = load_problems(tmp_path / "survivor.yaml")
    dup = [p for p in problems if "defined twice" in p.message]
    assert len(dup) == 1
    assert Path(dup[0].file).name == "a.yaml" and dup[0].line == 3
    assert f"{tmp_path / 'survivor.yaml'}:3" in dup[0].message


def test_unparsable_include_is_reported_with_its_path_and_the_rest_still_checked(
    tmp_path: Path,
) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "survivor.yaml").write_text(INSTANCE + "hosts: {a: {adress: x}}\n")
    (tmp_path / "conf.d" / "bad.yaml").write_text("checks:\n  ping: {module: [\n")
    (tmp_path / "conf.d" / "latin1.yaml").write_bytes(b"hosts:\n  caf\xe9: {}\n")
    problems = load_problems(tmp_path / "survivor.yaml")
    where = sorted((Path(p.file).name, p.line) for p in problems)
    assert where == [("bad.yaml", 3), ("latin1.yaml", 2), ("survivor.yaml", 2)]
    assert any("YAML syntax error" in p.message for p in problems if p.file.endswith("bad.yaml"))


def test_missing_instance_file(tmp_path: Path) -> None:
    problems = load_problems(tmp_path / "nope.yaml")
    assert len(problems) == 1
    assert problems[0].file.endswith("nope.yaml") and "cannot read" in problems[0].message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "survivor.yaml").write_text("- a\n- b\n")
    problems = load_problems(tmp_path / "survivor.yaml")
    assert [p.message for p in problems] == ["the file must be a YAML mapping"]
