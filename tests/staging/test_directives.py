from pathlib import Path

import pytest

from scalems_like.errors import ConfigError
from scalems_like.staging.directives import Location, check_client_side, for_shared_filesystem, parse, resolve


def test_string_form_is_a_copy_with_default_scopes() -> None:
    directive = parse("data/in.txt > in.txt", output=False, where="input_staging")
    assert directive.source == Location("client", "data/in.txt")
    assert directive.target == Location("task", "in.txt")
    assert (directive.action, directive.create_parents, directive.skip_if_same) == ("copy", True, False)
    output = parse("out.txt > results/out.txt", output=True, where="output_staging")
    assert (output.source, output.target, output.when) == (
        Location("task", "out.txt"), Location("client", "results/out.txt"), "success")


def test_mapping_form_and_resource_targets_reuse_by_checksum() -> None:
    directive = parse({"source": "client:///big.dat", "target": "resource:///cache/big.dat", "action": "link"},
                      output=False, where="input_staging")
    assert directive.action == "link" and directive.skip_if_same is True
    assert str(directive.target) == "resource:///cache/big.dat"


@pytest.mark.parametrize(
    ("directive", "output", "match"),
    [
        ("task:///../../etc/passwd > x", False, r"'task:///../../etc/passwd' escapes the task scope with '..'"),
        ("in > pilot:///a/../../b", False, "escapes the pilot scope"),
        ("ftp://host/x > y", False, "unknown scope 'ftp'"),
        ("file://relative/x > y", False, "file:// takes an absolute path"),
        ("just-a-name", False, "expected 'SOURCE > TARGET'"),
        ({"source": "a", "target": "b", "action": "rsync"}, False, "action = 'rsync': expected one of copy, link"),
        ({"source": "a", "target": "b", "when": "failure"}, False, "'when' applies to output directives only"),
        ({"source": "a", "target": "b", "when": "sometimes"}, True, "when = 'sometimes'"),
        ({"source": "a", "target": "b", "mode": "x"}, False, r"unknown key\(s\) \['mode'\]"),
        ({"source": "a", "target": "b", "skip_if_same": "yes"}, False, "skip_if_same = 'yes': expected true or false"),
        ({"source": 3, "target": "b"}, False, "source and target must be strings"),
    ],
)
def test_bad_directives_name_themselves(directive: object, output: bool, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        parse(directive, output=output, where="TaskDescription.input_staging")  # type: ignore[arg-type]
    assert "TaskDescription.input_staging" in str(raised.value)


def test_client_side_checks(tmp_path: Path) -> None:
    (tmp_path / "present.txt").write_text("x")
    check_client_side(parse("present.txt > a", output=False, where="w"), tmp_path, "w")
    with pytest.raises(ConfigError, match=r"source .*missing\.txt does not exist"):
        check_client_side(parse("missing.txt > a", output=False, where="w"), tmp_path, "w")
    with pytest.raises(ConfigError, match=r"present\.txt is a file"):
        check_client_side(parse("a > client:///present.txt/sub/b", output=True, where="w"), tmp_path, "w")


def test_resolution_and_shared_filesystem_transport(tmp_path: Path) -> None:
    directive = for_shared_filesystem(parse("data/x > x", output=False, where="w"), tmp_path)
    assert directive.source == Location("file", f"{tmp_path}/data/x")
    roots = {"task": tmp_path / "task"}
    assert resolve(directive.target, roots) == tmp_path / "task" / "x"
    assert resolve(directive.source, roots) == tmp_path / "data" / "x"


# The defaults, every combination (docs/staging.md): which scope a path without one means.
@pytest.mark.parametrize(
    ("sandbox", "output", "source_scope", "target_scope"),
    [
        ("task", False, "client", "task"),    # TaskDescription.input_staging
        ("task", True, "task", "client"),     # TaskDescription.output_staging
        ("pilot", False, "client", "pilot"),  # PilotDescription.input_staging
        ("pilot", True, "pilot", "client"),   # PilotDescription.output_staging
    ],
)
def test_unscoped_paths_take_the_documented_scopes(sandbox: str, output: bool, source_scope: str,
                                                   target_scope: str) -> None:
    directive = parse("a/x > b/y", output=output, where="w", sandbox=sandbox)
    assert (directive.source, directive.target) == (Location(source_scope, "a/x"), Location(target_scope, "b/y"))
    absolute = parse("/data/in/x > /scratch/me/results/y", output=output, where="w", sandbox=sandbox)
    assert (absolute.source, absolute.target) == (Location("file", "/data/in/x"),
                                                   Location("file", "/scratch/me/results/y"))
    mapping = parse({"source": "/etc/hostname", "target": "h"}, output=output, where="w", sandbox=sandbox)
    assert mapping.source == Location("file", "/etc/hostname")


def test_an_absolute_path_is_the_file_it_names(tmp_path: Path) -> None:
    """An absolute path is never made relative to a scope (it was: '/scratch/x' became client:///scratch/x)."""
    output = parse("o.txt > /scratch/me/results/o.txt", output=True, where="w")
    assert str(output.target) == "file:///scratch/me/results/o.txt"
    assert resolve(output.target, {"client": tmp_path}) == Path("/scratch/me/results/o.txt")
    assert parse("//etc//hostname > h", output=False, where="w").source == Location("file", "/etc/hostname")
    shared = for_shared_filesystem(parse("/etc/hostname > h", output=False, where="w"), tmp_path)
    assert resolve(shared.source, {}) == Path("/etc/hostname")


@pytest.mark.parametrize(
    ("directive", "sandbox", "match"),
    [
        ("~/results/o.txt > o", "task", r"'~/results/o.txt': '~' is not expanded; write the absolute path"),
        ("a > task:///x", "pilot", r"'task:///x': a pilot has no task scope"),
        ({"source": "task:///x", "target": "y"}, "pilot", "a pilot has no task scope"),
    ],
)
def test_paths_that_would_mean_something_else_are_refused(directive: object, sandbox: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse(directive, output=False, where="w", sandbox=sandbox)  # type: ignore[arg-type]
