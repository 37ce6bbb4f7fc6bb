"""Parameter sets: files (one set or a sweep), --param overrides, load_parameters() in the script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like.errors import ConfigError
from scalems_like.launcher.parameters import VARIABLE, parameter_sets, parse_overrides, write_set


def test_a_list_is_a_sweep_and_overrides_apply_to_every_set(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text("- {temperature: 300}\n- {temperature: 310}\n- {temperature: 320}\n")
    sets = parameter_sets(str(tmp_path / "sweep.yaml"), ["steps=500", "label=run a"])
    assert sets == [{"temperature": t, "steps": 500, "label": "run a"} for t in (300, 310, 320)]


def test_a_mapping_is_one_set_and_no_file_is_one_empty_set(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text('{"members": 4}')
    assert parameter_sets(str(tmp_path / "one.json"), []) == [{"members": 4}]
    assert parameter_sets(None, ["x=1.5"]) == [{"x": 1.5}]


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "the sweep is empty"),
    ("- 3\n", "item 0: a parameter set must be a mapping"),
    ("[unclosed", "not YAML or JSON"),
])
def test_bad_files_are_named_with_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parameter_sets(str(path), [])


def test_bad_overrides_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--param 'steps': expected KEY=VALUE"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="a parameter value cannot be recorded"):
        parameter_sets(None, ["day=2024-01-01"])  # YAML reads a date: not JSON, so not recordable
    with pytest.raises(ConfigError, match=r"--params .*missing\.yaml"):
        parameter_sets(str(tmp_path / "missing.yaml"), [])


def test_load_parameters_reads_the_set_and_fills_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sl.load_parameters({"members": 10}) == {"members": 10}  # outside a run: the defaults
    monkeypatch.setenv(VARIABLE, str(write_set({"members": 3}, tmp_path / "p.json")))
    assert sl.load_parameters({"members": 10, "steps": 7}) == {"members": 3, "steps": 7}
    (tmp_path / "p.json").write_text("not json")
    with pytest.raises(ConfigError, match=VARIABLE):
        sl.load_parameters()
    assert json.loads(write_set({"b": 1, "a": [1, 2]}, tmp_path / "q.json").read_text()) == {"a": [1, 2], "b": 1}
