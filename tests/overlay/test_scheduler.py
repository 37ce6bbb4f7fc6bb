from typing import Any

from scalems_like.overlay.scheduler import Scheduler


def task(uid: str, cores: int = 1, gpus: int = 0, ranks: int = 1) -> dict[str, Any]:
    return {"uid": uid, "cores": cores, "gpus": gpus, "ranks": ranks}


def scheduler_with(nodes: dict[str, tuple[int, int]], **options: Any) -> Scheduler:
    scheduler = Scheduler(**options)
    for name, (cores, gpus) in nodes.items():
        scheduler.add_node(name, cores, gpus)
        for index in range(cores):
            scheduler.add_worker(f"{name}.w{index}", name, 1)
    return scheduler


def uids(assignments: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {worker: [t["uid"] for t in tasks] for worker, tasks in assignments.items()}


def test_simple_tasks_are_pipelined_up_to_the_depth_round_robin() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=2)
    scheduler.submit(task(f"t{i}") for i in range(6))
    assert uids(scheduler.schedule()) == {"n1.w0": ["t0", "t2"], "n1.w1": ["t1", "t3"]}
    assert scheduler.pending_count == 2
    scheduler.finished("t0")
    assert uids(scheduler.schedule()) == {"n1.w0": ["t4"]}


def test_depth_adapts_to_task_duration() -> None:
    scheduler = scheduler_with({"n1": (1, 0)}, target_queue_seconds=0.02)
    for _ in range(50):
        scheduler.observe_duration(0.0001)
    assert scheduler.depth > 100
    for _ in range(100):
        scheduler.observe_duration(10.0)
    assert scheduler.depth == 1


def test_multi_core_task_waits_for_idle_workers_and_reserves_them() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=1)
    scheduler.submit([task("small")])
    assert uids(scheduler.schedule()) == {"n1.w0": ["small"]}
    scheduler.submit([task("big", cores=2), task("after")])
    # big cannot start while small runs; it reserves both workers, so "after" must not take n1.w1
    assert scheduler.schedule() == {}
    scheduler.finished("small")
    assert uids(scheduler.schedule()) == {"n1.w0": ["big"]}
    assert scheduler.schedule() == {}  # n1.w1 is held by big
    scheduler.finished("big")
    assert uids(scheduler.schedule()) == {"n1.w0": ["after"]}


def test_gpu_tasks_get_distinct_gpu_ids_and_give_them_back() -> None:
    scheduler = scheduler_with({"n1": (4, 2)})
    scheduler.submit([task("g0", gpus=1), task("g1", gpus=1), task("g2", gpus=1)])
    assigned = [t for tasks in scheduler.schedule().values() for t in tasks]
    assert sorted(t["uid"] for t in assigned) == ["g0", "g1"]
    assert sorted(t["gpu_ids"][0] for t in assigned) == [0, 1]
    scheduler.finished("g0")
    (third,) = [t for tasks in scheduler.schedule().values() for t in tasks]
    assert third["uid"] == "g2" and third["gpu_ids"] == [next(t["gpu_ids"][0] for t in assigned if t["uid"] == "g0")]


def test_placed_task_reserves_the_best_node_while_others_backfill() -> None:
    scheduler = scheduler_with({"n1": (2, 0), "n2": (2, 0)}, initial_depth=1)
    scheduler.submit([task("a"), task("b"), task("c")])
    assert uids(scheduler.schedule()) == {"n1.w0": ["a"], "n1.w1": ["b"], "n2.w0": ["c"]}
    scheduler.submit([task("big", cores=2), task("d")])
    assert scheduler.schedule() == {}  # big reserved n2 (the idlest node); d may not take n2.w1
    scheduler.finished("a")
    assert uids(scheduler.schedule()) == {"n1.w0": ["d"]}  # backfill on n1
    scheduler.finished("c")
    assert uids(scheduler.schedule()) == {"n2.w0": ["big"]}


def test_unsatisfiable_task_is_explained() -> None:
    scheduler = scheduler_with({"n1": (2, 1)})
    assert scheduler.unsatisfiable_reason(task("ok", cores=2, gpus=1)) is None
    reason = scheduler.unsatisfiable_reason(task("huge", cores=3))
    assert reason == "needs 3 cores and 0 GPUs on one node; the largest node of this pilot offers 2 cores and 1 GPUs"


def test_cancel_pending_and_assigned() -> None:
    scheduler = scheduler_with({"n1": (1, 0)}, initial_depth=1)
    scheduler.submit([task("a"), task("b")])
    scheduler.schedule()
    assert scheduler.cancel("b") == "pending"
    assert scheduler.cancel("a") == "n1.w0"
    scheduler.finished("a")
    assert scheduler.schedule() == {} and scheduler.pending_count == 0


def test_removed_worker_returns_its_tasks() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=2)
    scheduler.submit(task(f"t{i}") for i in range(4))
    scheduler.schedule()
    assert scheduler.remove_worker("n1.w0") == ["t0", "t2"]
    assert list(scheduler.workers) == ["n1.w1"]


def test_ranks_fill_one_node_when_they_fit() -> None:
    scheduler = scheduler_with({"n1": (4, 0), "n2": (4, 0)})
    scheduler.submit([task("mpi", cores=2, ranks=2)])
    (placed,) = [t for tasks in scheduler.schedule().values() for t in tasks]
    assert placed["placement"] == [["n1", 2]]
    assert sum(1 for w in scheduler.workers.values() if w.held_by == "mpi") == 4


def test_ranks_span_nodes_when_one_node_is_too_small() -> None:
    scheduler = scheduler_with({"n1": (4, 0), "n2": (4, 0)})
    assert scheduler.unsatisfiable_reason(task("wide", cores=4, ranks=2)) is None
    scheduler.submit([task("wide", cores=4, ranks=2), task("after")])
    assignments = scheduler.schedule()
    assert uids(assignments) == {"n1.w0": ["wide"]}
    assert assignments["n1.w0"][0]["placement"] == [["n1", 1], ["n2", 1]]
    scheduler.finished("wide")
    assert uids(scheduler.schedule()) == {"n1.w0": ["after"]}


def test_too_many_ranks_are_explained() -> None:
    scheduler = scheduler_with({"n1": (4, 0), "n2": (4, 0)})
    assert scheduler.unsatisfiable_reason(task("huge", cores=3, ranks=3)) == (
        "needs 9 cores and 0 GPUs for 3 ranks across 2 node(s); "
        "the largest node of this pilot offers 4 cores and 0 GPUs")


def test_multi_node_task_reserves_across_nodes() -> None:
    scheduler = scheduler_with({"n1": (2, 0), "n2": (2, 0)})
    scheduler.submit([task("a")])
    scheduler.schedule()
    scheduler.submit([task("wide", cores=2, ranks=2), task("b")])
    assert scheduler.schedule() == {}  # wide holds all four workers; b may not start
    scheduler.finished("a")
    assert uids(scheduler.schedule()) == {"n1.w0": ["wide"]}
