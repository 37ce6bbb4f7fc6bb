"""Workflow parameters: sets read from ``--params FILE`` / ``--param KEY=VALUE``, given to the script.

A parameters file (YAML or JSON) holds one set (a mapping) or a sweep (a list of mappings). ``--param`` values
are YAML scalars (``steps=1000`` is an int, ``name=run-a`` a string) and override the file's in every set.
The set a script runs with is written as JSON to a file named by ``SCALEMS_LIKE_PARAMETERS``; the script reads
it with :func:`load_parameters`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scalems_like.errors import ConfigError

VARIABLE = "SCALEMS_LIKE_PARAMETERS"
"""Names the JSON file holding the running script's parameter set."""


def _check_set(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{where}: a parameter set must be a mapping of names to values, not {value!r}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: a parameter value cannot be recorded ({error})") from None
    return dict(value)


def read_sets(path: Path) -> list[dict[str, Any]]:
    """The parameter sets of a file: one for a mapping, one per item for a list (a sweep)."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"--params {str(path)!r}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"--params {str(path)!r}: not YAML or JSON: {error}") from None
    if isinstance(loaded, list):
        if not loaded:
            raise ConfigError(f"--params {str(path)!r}: the sweep is empty")
        return [_check_set(item, f"--params {str(path)!r} item {number}") for number, item in enumerate(loaded)]
    return [_check_set(loaded, f"--params {str(path)!r}")]


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["steps=1000", "name=a"]`` → ``{"steps": 1000, "name": "a"}``; errors name the item."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            overrides[key.strip()] = text
    return overrides


def parameter_sets(file: str | None, overrides: Sequence[str]) -> list[dict[str, Any]]:
    """The sets to run: the file's (or one empty set), each updated with the overrides."""
    sets = read_sets(Path(file)) if file else [{}]
    extra = _check_set(parse_overrides(overrides), f"--param {' '.join(overrides)!r}")
    return [{**each, **extra} for each in sets]


def write_set(parameters: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(dict(parameters), indent=2, sort_keys=True) + "\n")
    return path


def load_parameters(default: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameter set this workflow script runs with (``scalems-like run/submit --params/--param``).

    Outside such a run, ``default`` (a copy), or ``{}``. The keys of ``default`` missing from the set are filled
    in from it, so a script can name its defaults once::

        parameters = sl.load_parameters({"members": 10, "steps": 1000})
    """
    base = dict(default or {})
    path = os.environ.get(VARIABLE)
    if not path:
        return base
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{VARIABLE}={path!r}: cannot read the parameter set: {error}") from None
    return {**base, **_check_set(loaded, f"{VARIABLE}={path!r}")}
