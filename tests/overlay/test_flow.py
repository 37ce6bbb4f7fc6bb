"""The task window (flow control): how many unfinished tasks an agent takes, by workers and task duration."""

from __future__ import annotations

from scalems_like.overlay.flow import (
    CEILING,
    FLOOR,
    INITIAL_PER_WORKER,
    MAX_PER_WORKER,
    MIN_PER_WORKER,
    RATE_DECAY,
    RATE_FACTOR,
    WINDOW_SECONDS,
    StartRate,
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
    started_fast_enough = workers  # (per second: every worker's task started within a second)
    for mean_duration in (None, 1e-5, 1.0, 3600.0):  # (before the first end too: not 16 per worker)
        assert task_window(workers, mean_duration, started_fast_enough) == workers + CEILING


def test_the_start_rate_bounds_the_window_to_what_it_keeps_busy_and_at_least_the_floor() -> None:
    workers = 4096 * 128
    assert task_window(workers, None) == FLOOR  # nothing started yet: the slow start's first step
    # tasks that end at once, started at 40 000 per second: twice a second's worth, not 540 672
    assert task_window(workers, 1e-5, 40_000) == round(RATE_FACTOR * 40_000 * (1e-5 + WINDOW_SECONDS))
    # tasks of 10 s started at 20 000 per second: 200 000 run at a time, the window twice that and a second ahead
    assert task_window(workers, 10.0, 20_000) == RATE_FACTOR * 20_000 * 11
    # a slow start: each measured rate opens the window to twice what it kept busy, until the workers bound it
    window, steps = task_window(workers, 3600.0), 0
    while window < workers + CEILING:
        window, steps = task_window(workers, 3600.0, started_per_second := window), steps + 1
        assert window >= 2 * started_per_second or window == workers + CEILING
    assert steps <= 4
    assert task_window(2, None, 0.0) == 2 * MIN_PER_WORKER + 2 * INITIAL_PER_WORKER  # small pilots: below the floor


def test_the_start_rate_is_a_peak_that_decays_slowly() -> None:
    rate = StartRate(now=100.0)
    rate.started = 5000
    assert rate.measure(101.0) == 5000.0
    rate.started = 500  # a slow second (a long pass, a client pause): the rate kept falls by at most the decay
    assert rate.measure(102.0) == 5000.0 * RATE_DECAY
    rate.started = 20_000  # it rises at once
    assert rate.measure(102.5) == 40_000.0
    assert rate.measure(102.5) == 40_000.0  # (no time passed: nothing measured)


def test_a_new_window_is_announced_when_it_changed_enough() -> None:
    assert worth_announcing(4, 0)
    assert not worth_announcing(1100, 1000) and not worth_announcing(900, 1000)
    assert worth_announcing(1250, 1000) and worth_announcing(800, 1000)
