from pathlib import Path, PurePosixPath

import pytest

import scalems_like as sl


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of executable= or function="),
        ({"executable": "/bin/true", "function": square}, "exactly one of"),
        ({"executable": "/bin/true", "cores": 0}, r"TaskDescription.cores = 0: expected an integer >= 1"),
        ({"executable": "/bin/true", "arguments": "a b"}, r"TaskDescription.arguments = 'a b'"),
        ({"executable": "/bin/true", "timeout": -1}, r"TaskDescription.timeout = -1"),
        ({"executable": "/bin/true", "environment": {"A": True}},
         r"TaskDescription.environment\['A'\] = True: expected a variable name"),
        ({"executable": "/bin/true", "environment": {"A=B": "c"}}, r"TaskDescription.environment\['A=B'\] = 'c'"),
        ({"executable": "/bin/true", "environment": {1: "c"}}, r"TaskDescription.environment\[1\] = 'c'"),
        ({"executable": "/bin/true", "environment": "A=1"}, r"TaskDescription.environment = 'A=1': expected a mapping"),
        ({"function": square, "ranks": 2}, r"TaskDescription.ranks = 2"),
        ({"function": 3}, r"TaskDescription.function = 3: expected a callable"),
        ({"executable": "/bin/true", "args": (1,)}, r"TaskDescription.args"),
    ],
)
def test_bad_task_descriptions_name_field_and_value(kwargs: dict, match: str) -> None:
    with pytest.raises(sl.ConfigError, match=match):
        sl.TaskDescription(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cores": 0}, r"PilotDescription.cores = 0"),
        ({"runtime": 0}, r"PilotDescription.runtime = 0"),
        ({"nodes": "2"}, r"PilotDescription.nodes = '2'"),
        ({"pre_bootstrap": "module load x"}, r"PilotDescription.pre_bootstrap = 'module load x'"),
        ({"resource": ""}, r"PilotDescription.resource = ''"),
    ],
)
def test_bad_pilot_descriptions_name_field_and_value(kwargs: dict, match: str) -> None:
    with pytest.raises(sl.ConfigError, match=match):
        sl.PilotDescription(**kwargs)


def test_valid_descriptions_keep_their_values() -> None:
    task = sl.TaskDescription(function=square, args=[3], name="sq", retries=2)
    assert task.kind == "function" and task.args == (3,) and task.retries == 2
    pilot = sl.PilotDescription(cores=2, pre_bootstrap=["export A=1"])
    assert pilot.pre_bootstrap == ("export A=1",) and pilot.resource == "local"


def test_arguments_take_numbers_and_paths_as_strings(tmp_path: Path) -> None:
    """As RP and Parsl do: ``arguments=[1, 2.5, Path(...)]`` is ``["1", "2.5", "..."]``."""
    task = sl.TaskDescription(executable="/bin/echo", arguments=["-n", 1, 2.5, tmp_path / "x", PurePosixPath("a/b")])
    assert task.arguments == ("-n", "1", "2.5", f"{tmp_path}/x", "a/b")


def test_environment_takes_numbers_and_paths_as_strings(tmp_path: Path) -> None:
    """As ``arguments`` does: ``environment={"OMP_NUM_THREADS": 4}`` is ``"4"`` (a variable's value is a string)."""
    task = sl.TaskDescription(executable="/bin/true", environment={"N": 4, "X": 0.5, "P": tmp_path, "S": "s"})
    assert task.environment == {"N": "4", "X": "0.5", "P": str(tmp_path), "S": "s"}


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ([1, None], r"TaskDescription.arguments = \[1, None\]: item 1 = None: expected a string"),
        ([True], r"TaskDescription.arguments = \[True\]: item 0 = True: expected a string \(numbers and paths"),
        ([b"x"], r"item 0 = b'x'"),
        ([["nested"]], r"item 0 = \['nested'\]"),
    ],
)
def test_arguments_of_other_types_are_refused_naming_the_item(arguments: list, match: str) -> None:
    with pytest.raises(sl.ConfigError, match=match):
        sl.TaskDescription(executable="/bin/echo", arguments=arguments)


@pytest.mark.parametrize(
    ("description", "kwargs", "message"),
    [
        (sl.TaskDescription, {"executable": "x", "cpus": 2}, "TaskDescription got an unexpected field 'cpus': "
                                                             "did you mean 'cores'?"),
        (sl.TaskDescription, {"executable": "x", "threads": 2}, "did you mean 'cores'?"),
        (sl.TaskDescription, {"executable": "x", "gpu": 1}, "did you mean 'gpus'?"),
        (sl.TaskDescription, {"executable": "x", "env": {}}, "did you mean 'environment'?"),
        (sl.TaskDescription, {"executable": "x", "cwd": "d"}, "did you mean 'working_directory'?"),
        (sl.TaskDescription, {"executable": "x", "walltime": 5}, "did you mean 'timeout'?"),
        (sl.TaskDescription, {"executable": "x", "enviroment": {}}, "did you mean 'environment'?"),
        (sl.TaskDescription, {"executable": "x", "Cores": 2}, "did you mean 'cores'?"),
        (sl.PilotDescription, {"cpus": 4}, "PilotDescription got an unexpected field 'cpus': did you mean 'cores'?"),
        (sl.PilotDescription, {"walltime": 60}, "did you mean 'runtime'?"),
        (sl.PilotDescription, {"partition": "debug"}, "did you mean 'queue'?"),
        (sl.PilotDescription, {"node": 2}, "did you mean 'nodes'?"),
        (sl.PilotDescription, {"worker_init": "module load x"}, "did you mean 'pre_bootstrap'?"),
        (sl.PilotDescription, {"colour": "red"}, "PilotDescription got an unexpected field 'colour'; its fields: "
                                                 "resource, cores, gpus, nodes, runtime, "),
        (sl.TaskDescription, {"executable": "x", "cpus": 2, "gpu": 1}, "TaskDescription got unexpected fields "
                                                                      "'cpus' (did you mean 'cores'?), 'gpu' "
                                                                      "(did you mean 'gpus'?)"),
    ],
)
def test_a_near_miss_field_gets_a_suggestion(description: type, kwargs: dict, message: str) -> None:
    with pytest.raises(sl.ConfigError) as raised:
        description(**kwargs)
    assert message in str(raised.value)


def test_positional_arguments_are_refused_with_the_spelling_to_use() -> None:
    with pytest.raises(sl.ConfigError, match=r"TaskDescription takes fields by name: TaskDescription\(executable=..."):
        sl.TaskDescription("/bin/true")  # type: ignore[misc]
    with pytest.raises(sl.ConfigError, match=r"TaskDescription.args = \(1,\): .*\(use arguments=\)"):  # (as it was)
        sl.TaskDescription(executable="/bin/true", args=(1,))
