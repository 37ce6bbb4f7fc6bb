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
        ({"executable": "/bin/true", "environment": {"A": 1}}, r"TaskDescription.environment"),
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
