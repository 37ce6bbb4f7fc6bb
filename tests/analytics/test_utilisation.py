"""Utilisation and time split of a known schedule, to the exact number."""

from __future__ import annotations

import pytest

from scalems_like.analytics.utilisation import (
    Interval,
    busy_core_seconds,
    busy_steps,
    time_split,
    utilisation,
    utilisation_curve,
)

# 2 cores over [0, 10): w0 runs A [0, 4) and C [5, 9); w1 runs B [2, 6). 12 busy core-seconds of 20.
SCHEDULE = [Interval(0, 4, "w0", uid="A"), Interval(2, 6, "w1", uid="B"), Interval(5, 9, "w0", uid="C")]


def test_busy_steps_change_only_where_a_task_starts_or_ends() -> None:
    assert busy_steps(SCHEDULE) == [(0, 1), (2, 2), (4, 1), (5, 2), (6, 1), (9, 0)]


def test_a_task_ending_when_another_starts_is_no_step() -> None:
    back_to_back = [Interval(0, 1, "w0"), Interval(1, 2, "w0")]
    assert busy_steps(back_to_back) == [(0, 1), (2, 0)]


def test_busy_core_seconds_and_utilisation_of_the_window() -> None:
    assert busy_core_seconds(SCHEDULE, 0, 10) == 12
    assert utilisation(SCHEDULE, 2, 0, 10) == pytest.approx(0.6)
    assert busy_core_seconds(SCHEDULE, 3, 8) == 1 + 3 + 3  # clipped to the window
    assert utilisation(SCHEDULE, 2, 5, 5) == 0.0  # an empty window


def test_a_task_of_several_cores_counts_them_all() -> None:
    wide = [*SCHEDULE, Interval(10, 12, "w0", cores=2)]
    assert busy_steps(wide)[-2:] == [(10, 2), (12, 0)]
    assert utilisation(wide, 2, 0, 12) == pytest.approx(16 / 24)


def test_utilisation_curve_is_a_step_function_over_the_window() -> None:
    times, fractions = utilisation_curve(SCHEDULE, 2, 0, 10)
    assert times == [0, 2, 4, 5, 6, 9, 10]
    assert fractions == [0.5, 1.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    times, fractions = utilisation_curve(SCHEDULE, 2, 3, 7)  # starts inside a busy period
    assert (times, fractions) == ([3, 4, 5, 6, 7], [1.0, 0.5, 1.0, 0.5, 0.5])


def test_time_split_adds_up_to_the_pilots_core_time() -> None:
    split = time_split(SCHEDULE, 2, bootstrapping=-2, active=0, shutdown=10, end=11)
    assert split == {"bootstrap": 4, "busy": 12, "idle": 8, "shutdown": 2}
    assert sum(split.values()) == 2 * (11 - -2)


def test_time_split_of_a_pilot_that_never_became_active_or_was_never_asked_to_stop() -> None:
    assert time_split([], 4, bootstrapping=0, active=None, shutdown=None, end=3) == {
        "bootstrap": 12, "busy": 0, "idle": 0, "shutdown": 0}
    assert time_split(SCHEDULE, 2, bootstrapping=0, active=0, shutdown=None, end=10) == {
        "bootstrap": 0, "busy": 12, "idle": 8, "shutdown": 0}
