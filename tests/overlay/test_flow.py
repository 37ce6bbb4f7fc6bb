"""The task window (flow control): how many unfinished tasks an agent takes, by workers and task duration."""

from __future__ import annotations

from scalems_like.overlay.flow import (
    CEILING,
    INITIAL_PER_WORKER,
    MAX_PER_WORKER,
    MIN_PER_WORKER,
    WINDOW_SECONDS,
    task_window,
    worth_announcing,
)


def test_the_window_holds_a_task_per_worker_and_about_a_second_of_work_ahead_within_bounds() -> None:
    assert task_window(2, None) == 2 * MIN_PER_WORKER + 2 * INITIAL_PER_WORKER  # before any task ended
    assert task_window(2, 60.0) == 2 * MIN_PER_WORKER + 2  # long tasks: one ahead per worker
    assert task_window(2, WINDOW_SECONDS / 10) == 2 * MIN_PER_WORKER + 2 * 10
    assert task_window(2, 1e-5) == 2 * MIN_PER_WORKER + 2 * MAX_PER_WORKER  # tiny tasks
    assert task_window(1000, 1e-5) == 1000 * MIN_PER_WORKER + CEILING  # many workers, tiny tasks: the ceiling
    assert task_window(0, 1.0) == MIN_PER_WORKER + 1  # every worker lost (its tasks are rejected)


def test_at_4096_nodes_of_128_workers_the_window_is_one_task_per_worker_and_a_bounded_queue() -> None:
    workers = 4096 * 128
    assert MIN_PER_WORKER == 1
    for mean_duration in (None, 1e-5, 1.0, 3600.0):  # (before the first end too: not 16 per worker)
        assert task_window(workers, mean_duration) == workers + CEILING


def test_a_new_window_is_announced_when_it_changed_enough() -> None:
    assert worth_announcing(4, 0)
    assert not worth_announcing(1100, 1000) and not worth_announcing(900, 1000)
    assert worth_announcing(1250, 1000) and worth_announcing(800, 1000)
