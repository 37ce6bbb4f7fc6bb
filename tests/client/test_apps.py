"""Apps with futures as arguments: dependencies resolved on the client, files passed between stages, bulk maps,
failures that name the input that failed."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest

import scalems_like as sl


@pytest.fixture(autouse=True)
def workflow_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test is a workflow of its own directory: its cache starts empty."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@sl.function_app
def square(x: int) -> int:
    return x * x


@sl.function_app
def total(*values: int) -> int:
    return sum(values)


@sl.executable_app(outputs=["sum.txt"])
def add(a: int, b: int) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( {a} + {b} )) > sum.txt"]


@sl.executable_app(outputs=["doubled.txt"])
def double_file(name: str) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( $(cat {name}) * 2 )) > doubled.txt"]


@sl.function_app
def read_number(path: str) -> int:
    with open(path) as handle:
        return int(handle.read())


@sl.function_app
def explode() -> None:
    raise ValueError("exploded")


def test_dependencies_and_files_flow_between_stages(session: sl.Session, local_pilot: sl.Pilot) -> None:
    first = add(square(3), square(4))                      # executable, waits for two functions
    second = double_file(first.outputs["sum.txt"])          # the file is linked into its sandbox
    number = read_number(second.outputs["doubled.txt"])     # a function gets the file's path
    assert number.result(timeout=60) == 50
    assert first.result() == 0 and first.outputs["sum.txt"].path().read_text() == "25\n"
    assert second.task is not None and second.task.sandbox is not None
    assert (second.task.sandbox / "sum.txt").read_text() == "25\n"
    assert isinstance(first, concurrent.futures.Future)


def test_a_failed_input_fails_its_consumers_without_submitting_them(session: sl.Session,
                                                                   local_pilot: sl.Pilot) -> None:
    broken = explode()
    consumer = square(broken)
    downstream = total(consumer, square(2))
    with pytest.raises(sl.DependencyFailed, match=r"its input explode \(task\.\d+\) did not end DONE: exploded"):
        consumer.result(timeout=60)
    with pytest.raises(sl.DependencyFailed, match=r"its input square \(never submitted\) did not end DONE"):
        downstream.result(timeout=60)
    assert consumer.task is None and downstream.task is None
    assert len(session.tasks) == 2  # explode and square(2): nothing else was submitted


def test_map_submits_in_bulk_and_mixes_with_futures(session: sl.Session, local_pilot: sl.Pilot) -> None:
    squares = square.map(range(200))
    assert all(future.task is not None for future in squares)  # submitted at once
    assert total(*squares).result(timeout=120) == sum(i * i for i in range(200))
    chained = square.map([square(2), 3])
    assert [future.result(timeout=60) for future in chained] == [16, 9]


def test_app_futures_are_awaitable(session: sl.Session, local_pilot: sl.Pilot) -> None:
    async def workflow() -> int:
        return await total(square(1), square(2))

    assert asyncio.run(workflow()) == 5


def test_apps_need_a_session() -> None:
    with pytest.raises(sl.ScalemsError, match="no current session"):
        square(2)


def test_a_call_that_ran_before_comes_from_the_cache(workflow_directory: Path) -> None:
    for run in range(2):
        with sl.Session() as session:
            session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
            first = add(square(5), 1)
            assert read_number(first.outputs["sum.txt"]).result(timeout=60) == 26
            assert (first.task is None) == (run == 1) and first.outputs["sum.txt"].path().read_text() == "26\n"
            assert len(session.tasks) == (0 if run else 3)
    assert len(list((workflow_directory / ".scalems-like-cache").glob("*/entry.json"))) == 3
    uncached = sl.function_app(cache=False)(square.function)
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
        assert uncached(5).result(timeout=60) == 25 and len(session.tasks) == 1
