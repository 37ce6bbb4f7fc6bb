import sys
from random import Random
from typing import Any

from scalems_like.overlay.scheduler import Scheduler
from scalems_like.overlay.slots import without


def task(uid: str, cores: int = 1, gpus: int = 0, ranks: int = 1) -> dict[str, Any]:
    return {"uid": uid, "cores": cores, "gpus": gpus, "ranks": ranks}


def scheduler_with(nodes: dict[str, tuple[int, int]], width: int = 1, **options: Any) -> Scheduler:
    """A scheduler whose nodes have every worker (``cores // width`` of them, ``width`` cores each) ready."""
    scheduler = Scheduler(width=width, **options)
    for name, (cores, gpus) in nodes.items():
        scheduler.add_node(name, cores, gpus)
        for index in range(cores // width):
            scheduler.add_worker(f"{name}.w{index}", name)
    return scheduler


def held(scheduler: Scheduler) -> dict[str, str]:
    return {uid: worker.held_by for uid, worker in scheduler.workers.items() if worker.held_by is not None}


def submit_and_schedule(scheduler: Scheduler, *tasks: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    scheduler.submit(tasks)
    return scheduler.schedule()


def uids(assignments: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {worker: [t["uid"] for t in tasks] for worker, tasks in assignments.items()}


def test_simple_tasks_are_pipelined_up_to_the_depth_round_robin() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=2)
    scheduler.submit(task(f"t{i}") for i in range(6))
    assert uids(scheduler.schedule()) == {"n1.w0": ["t0", "t2"], "n1.w1": ["t1", "t3"]}
    assert scheduler.pending_count == 2
    scheduler.finished("t0")
    assert uids(scheduler.schedule()) == {"n1.w0": ["t4"]}


def test_a_task_arriving_alone_goes_to_an_idle_worker_not_behind_another() -> None:
    """With a deep pipeline (short tasks seen so far), tasks that arrive one by one still spread out."""
    scheduler = scheduler_with({"n1": (3, 0)}, initial_depth=8)
    assert uids(submit_and_schedule(scheduler, task("a"))) == {"n1.w0": ["a"]}
    assert uids(submit_and_schedule(scheduler, task("b"))) == {"n1.w1": ["b"]}
    assert uids(submit_and_schedule(scheduler, task("c"))) == {"n1.w2": ["c"]}
    assert uids(submit_and_schedule(scheduler, task("d"))) == {"n1.w0": ["d"]}


def test_no_pipelining_until_every_worker_said_hello() -> None:
    scheduler = Scheduler(width=1, initial_depth=8)
    scheduler.add_node("n1", 2, 0)
    scheduler.add_worker("n1.w0", "n1")
    assert uids(submit_and_schedule(scheduler, task("a"), task("b"), task("c"))) == {"n1.w0": ["a"]}
    scheduler.add_worker("n1.w1", "n1")
    assert uids(scheduler.schedule()) == {"n1.w1": ["b"], "n1.w0": ["c"]}  # the idle one first


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
        "the largest node of this pilot offers 4 cores and 0 GPUs, its 2 node(s) together 8 cores and 0 GPUs")


def test_multi_node_task_reserves_across_nodes() -> None:
    scheduler = scheduler_with({"n1": (2, 0), "n2": (2, 0)})
    scheduler.submit([task("a")])
    scheduler.schedule()
    scheduler.submit([task("wide", cores=2, ranks=2), task("b")])
    assert scheduler.schedule() == {}  # wide holds all four workers; b may not start
    scheduler.finished("a")
    assert uids(scheduler.schedule()) == {"n1.w0": ["wide"]}


# -- reservations are returned (cancel, drain, reject) -------------------------------------------------------------
def test_cancel_of_a_reserved_pending_task_returns_its_workers() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=1)
    scheduler.submit([task("small")])
    scheduler.schedule()
    scheduler.submit([task("big", cores=2)])
    assert scheduler.schedule() == {}
    assert held(scheduler) == {"n1.w0": "big", "n1.w1": "big"}
    assert scheduler.cancel("big") == "pending"
    assert held(scheduler) == {}
    scheduler.submit([task("after")])
    assert uids(scheduler.schedule()) == {"n1.w1": ["after"]}  # n1.w1 was reserved for big


def test_drain_returns_the_reservation_of_a_pending_task() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=1)
    scheduler.submit([task("small")])
    scheduler.schedule()
    scheduler.submit([task("big", cores=2)])
    scheduler.schedule()
    assert held(scheduler) == {"n1.w0": "big", "n1.w1": "big"}
    assert [t["uid"] for t in scheduler.drain_pending()] == ["big"]
    assert held(scheduler) == {}
    scheduler.submit([task("after")])
    assert uids(scheduler.schedule()) == {"n1.w1": ["after"]}


def test_drain_keeps_the_workers_of_a_running_placed_task() -> None:
    scheduler = scheduler_with({"n1": (3, 0)}, initial_depth=1)
    scheduler.submit([task("running", cores=2), task("waiting", cores=3)])
    assert uids(scheduler.schedule()) == {"n1.w0": ["running"]}
    assert [t["uid"] for t in scheduler.drain_pending()] == ["waiting"]
    assert held(scheduler) == {"n1.w0": "running", "n1.w1": "running"}


# -- width > 1: workers of several cores -------------------------------------------------------------------------
def test_width_is_known_before_any_worker_says_hello() -> None:
    scheduler = Scheduler(width=2)
    scheduler.add_node("n1", 4, 0)
    two_cores = task("two", cores=2)
    assert scheduler.unsatisfiable_reason(two_cores) is None
    scheduler.submit([two_cores])  # before any worker: one 2-core worker runs it, no placement
    scheduler.add_worker("n1.w0", "n1")
    scheduler.add_worker("n1.w1", "n1")
    assert uids(scheduler.schedule()) == {"n1.w0": ["two"]}
    assert "placement" not in two_cores and held(scheduler) == {}


def test_wide_workers_run_tasks_up_to_their_width_and_place_wider_ones() -> None:
    scheduler = scheduler_with({"n1": (8, 0)}, width=2, initial_depth=1)
    assert len(scheduler.workers) == 4
    scheduler.submit([task("a", cores=2), task("b", cores=3), task("c", cores=1), task("d", cores=2)])
    assignments = scheduler.schedule()
    assert uids(assignments) == {"n1.w0": ["b"], "n1.w2": ["a"], "n1.w3": ["c"]}  # 2 cores fit one worker
    assert assignments["n1.w0"][0]["placement"] == [["n1", 1]]
    assert held(scheduler) == {"n1.w0": "b", "n1.w1": "b"}  # 3 cores = 2 workers of 2 cores
    assert "placement" not in assignments["n1.w2"][0] and scheduler.pending_count == 1


def test_ranks_of_wide_workers_span_nodes() -> None:
    scheduler = scheduler_with({"n1": (4, 0), "n2": (4, 0)}, width=2)
    scheduler.submit([task("mpi", cores=2, ranks=3)])
    (placed,) = [t for tasks in scheduler.schedule().values() for t in tasks]
    assert placed["placement"] == [["n1", 2], ["n2", 1]]
    assert sorted(held(scheduler)) == ["n1.w0", "n1.w1", "n2.w0"]


# -- capacity: workers x width, not node cores -------------------------------------------------------------------
def test_capacity_is_workers_times_width_not_node_cores() -> None:
    scheduler = Scheduler(width=2)
    scheduler.add_node("n1", 5, 0, workers=2)  # 5 cores, but 2 workers of 2 cores: 4 usable
    assert scheduler.unsatisfiable_reason(task("four", cores=4)) is None
    assert scheduler.unsatisfiable_reason(task("five", cores=5)) == (
        "needs 5 cores and 0 GPUs on one node; the largest node of this pilot offers 4 cores and 0 GPUs")


def test_capacity_counts_workers_not_cores_when_fewer_workers_run() -> None:
    scheduler = Scheduler(width=1)
    scheduler.add_node("n1", 8, 0, workers=2)  # workers_per_node: 2 on an 8-core node
    assert scheduler.unsatisfiable_reason(task("three", cores=3)) == (
        "needs 3 cores and 0 GPUs on one node; the largest node of this pilot offers 2 cores and 0 GPUs")


def test_placed_task_that_can_no_longer_be_placed_is_rejected_and_the_queue_goes_on() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=1)
    scheduler.submit([task("small")])
    scheduler.schedule()
    scheduler.submit([task("big", cores=2), task("after")])
    assert scheduler.schedule() == {}  # big reserves both workers
    assert scheduler.remove_worker("n1.w1") == []
    assert uids(scheduler.schedule()) == {}  # n1.w0 still runs small
    (rejected, reason), = scheduler.take_rejected()
    assert rejected["uid"] == "big"
    assert reason == ("needs 2 cores and 0 GPUs on one node; the largest node of this pilot offers 1 cores and 0 GPUs"
                      " (1 of its workers were lost)")
    assert scheduler.take_rejected() == [] and scheduler.pending_count == 1
    scheduler.finished("small")
    assert uids(scheduler.schedule()) == {"n1.w0": ["after"]}


def test_a_gpu_task_asking_more_gpus_than_the_pilot_has_is_rejected_at_the_head() -> None:
    scheduler = scheduler_with({"n1": (2, 1)})
    scheduler.submit([task("greedy", gpus=2), task("fine", gpus=1)])
    assignments = scheduler.schedule()
    assert [t["uid"] for tasks in assignments.values() for t in tasks] == ["fine"]
    ((rejected, reason),) = scheduler.take_rejected()
    assert rejected["uid"] == "greedy" and reason.startswith("needs 1 cores and 2 GPUs on one node; ")
    assert reason.endswith("offers 2 cores and 1 GPUs")


def test_simple_tasks_are_rejected_when_every_worker_was_lost() -> None:
    scheduler = scheduler_with({"n1": (1, 0)}, initial_depth=1)
    scheduler.submit([task("a"), task("b")])
    assert uids(scheduler.schedule()) == {"n1.w0": ["a"]}
    assert scheduler.remove_worker("n1.w0") == ["a"]
    assert scheduler.schedule() == {}
    assert [t["uid"] for t, _ in scheduler.take_rejected()] == ["b"]
    assert scheduler.pending_count == 0


def test_workers_not_yet_started_count_but_lost_ones_do_not() -> None:
    scheduler = Scheduler(width=1)
    scheduler.add_node("n1", 2, 0)
    assert scheduler.unsatisfiable_reason(task("two", cores=2)) is None  # no hello yet: 2 workers expected
    scheduler.add_worker("n1.w0", "n1")
    scheduler.add_worker("n1.w1", "n1")
    scheduler.remove_worker("n1.w1")
    assert scheduler.unsatisfiable_reason(task("two", cores=2)) == (
        "needs 2 cores and 0 GPUs on one node; the largest node of this pilot offers 1 cores and 0 GPUs "
        "(1 of its workers were lost)")


# -- GPUs come back when a worker goes -----------------------------------------------------------------------------
def test_removed_worker_returns_the_gpus_of_its_placed_task() -> None:
    scheduler = scheduler_with({"n1": (2, 2)})
    scheduler.submit([task("g", gpus=2)])
    (worker,) = scheduler.schedule()
    assert scheduler.nodes["n1"].free_gpus == []
    assert scheduler.remove_worker(worker) == ["g"]
    assert sorted(scheduler.nodes["n1"].free_gpus) == [0, 1]
    scheduler.submit([task("next", gpus=2)])
    (placed,) = [t for tasks in scheduler.schedule().values() for t in tasks]
    assert sorted(placed["gpu_ids"]) == [0, 1]


def test_removed_worker_of_a_multi_worker_task_returns_the_other_workers() -> None:
    scheduler = scheduler_with({"n1": (3, 0)}, initial_depth=1)
    scheduler.submit([task("pair", cores=2)])
    (primary,) = scheduler.schedule()
    assert len(held(scheduler)) == 2
    assert scheduler.remove_worker(primary) == ["pair"]
    assert held(scheduler) == {}
    scheduler.submit([task("x"), task("y")])
    assert sorted(uids(scheduler.schedule())) == sorted(scheduler.workers)


# -- workers that heal: replacements count, requeued tasks go first, a node taken out counts nothing ---------------
def test_a_replacement_keeps_the_capacity_and_requeued_tasks_run_first() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=2)
    scheduler.submit([task("a"), task("b"), task("c"), task("d"), task("e")])
    assert uids(scheduler.schedule()) == {"n1.w0": ["a", "c"], "n1.w1": ["b", "d"]}
    assert scheduler.remove_worker("n1.w0") == ["a", "c"]
    scheduler.expect_worker("n1")  # its replacement started
    assert scheduler.unsatisfiable_reason(task("two", cores=2)) is None
    scheduler.requeue([task("a"), task("c")])
    scheduler.add_worker("n1.r1", "n1")
    assert uids(scheduler.schedule()) == {"n1.r1": ["a", "c"]}  # ahead of e
    scheduler.remove_worker("n1.w1")
    scheduler.expect_worker("n1")
    assert scheduler.nodes["n1"].worker_capacity == 2 and scheduler.nodes["n1"].starting
    scheduler.worker_never_came("n1")  # that replacement died before its hello: n1.r1 is left
    assert scheduler.nodes["n1"].worker_capacity == 1 and not scheduler.nodes["n1"].starting


def test_a_node_taken_out_offers_nothing_and_says_so() -> None:
    scheduler = scheduler_with({"n1": (2, 0), "n2": (2, 0)}, initial_depth=1)
    assert scheduler.close_node("n1") == ["n1.w0", "n1.w1"]
    for worker in ("n1.w0", "n1.w1"):
        scheduler.remove_worker(worker)
    assert not scheduler.nodes["n1"].starting and scheduler.nodes["n1"].worker_capacity == 0
    assert scheduler.unsatisfiable_reason(task("two", cores=2)) is None  # n2 still fits it
    assert scheduler.unsatisfiable_reason(task("wide", ranks=3)) == (
        "needs 3 cores and 0 GPUs for 3 ranks across 2 node(s); the largest node of this pilot offers 2 cores and "
        "0 GPUs, its 2 node(s) together 2 cores and 0 GPUs (1 of its 2 node(s) out of the schedule: n1)")


# -- a long task holds up nothing queued behind it ------------------------------------------------------------------
def test_tasks_given_back_by_a_busy_worker_go_to_the_head_and_it_gets_no_more_until_idle() -> None:
    scheduler = scheduler_with({"n1": (2, 0)}, initial_depth=4)
    scheduler.submit(task(f"t{i}") for i in range(8))
    assert uids(scheduler.schedule()) == {"n1.w0": ["t0", "t2", "t4", "t6"], "n1.w1": ["t1", "t3", "t5", "t7"]}
    assert scheduler.give_back("n1.w0", ["t2", "t4", "t6", "unknown"]) == ["t2", "t4", "t6"]  # t0 runs long
    scheduler.requeue([task("t2"), task("t4"), task("t6")])
    for uid in ("t1", "t3", "t5", "t7"):
        scheduler.finished(uid)
    assert uids(scheduler.schedule()) == {"n1.w1": ["t2", "t4", "t6"]}  # not to n1.w0, busy with t0
    assert scheduler.cancel("t2") == "n1.w1" and scheduler.give_back("n1.w1", ["t0"]) == []  # (not its task)
    scheduler.finished("t0")  # n1.w0 is idle again: it takes tasks
    scheduler.submit([task("t8")])
    assert uids(scheduler.schedule()) == {"n1.w0": ["t8"]}


def test_capacity_follows_workers_lost_replaced_and_nodes_closed() -> None:
    scheduler = scheduler_with({"n1": (2, 0), "n2": (2, 0)})
    assert scheduler.capacity == 4
    scheduler.remove_worker("n1.w0")
    assert scheduler.capacity == 3
    scheduler.expect_worker("n1")
    assert scheduler.capacity == 4
    for worker in scheduler.close_node("n2"):
        scheduler.remove_worker(worker)
    assert scheduler.capacity == 2


# -- at scale: buckets and counters instead of scans, small per-worker records ---------------------------------------
def check_counters(scheduler: Scheduler) -> None:
    """What the scheduler keeps as it goes equals what a scan of every node and worker finds."""
    assert scheduler.capacity == sum(node.worker_capacity for node in scheduler.nodes.values())
    assert scheduler._starting == {node.name for node in scheduler.nodes.values() if node.starting}
    assert scheduler._open.levels() == {uid: len(worker.queue) for uid, worker in scheduler.workers.items()
                                        if worker.held_by is None and not worker.busy_long}


def test_buckets_and_counters_follow_every_change() -> None:
    random = Random(18)
    scheduler = Scheduler(width=1, initial_depth=3)
    for node in ("n1", "n2", "n3"):
        scheduler.add_node(node, 4, 1)
    given: list[str] = []
    scheduled = 0
    for step in range(600):
        operation = random.choice(["join", "join", "submit", "finish", "finish", "lose", "replace", "give_back",
                                   "never_came", "close", "wide", "cancel"])
        node = random.choice(["n1", "n2", "n3"])
        if operation == "join" and scheduler.nodes[node].starting:
            scheduler.add_worker(f"{node}.w{step}", node)
        elif operation == "submit":
            scheduler.submit([task(f"t{step}"), task(f"u{step}")])
        elif operation == "wide":
            scheduler.submit([task(f"p{step}", cores=2, gpus=random.choice([0, 1]))])
        elif operation == "finish" and given:
            scheduler.finished(given.pop(random.randrange(len(given))))
        elif operation == "lose" and scheduler.workers:
            scheduler.remove_worker(random.choice(sorted(scheduler.workers)))
        elif operation == "replace":
            scheduler.expect_worker(node)
        elif operation == "never_came" and scheduler.nodes[node].starting:
            scheduler.worker_never_came(node)
        elif operation == "close" and step > 500:
            for worker in scheduler.close_node(node):
                scheduler.remove_worker(worker)
        elif operation == "give_back" and scheduler.workers:
            worker = scheduler.workers[random.choice(sorted(scheduler.workers))]
            scheduler.give_back(worker.uid, worker.queue[1:])
        elif operation == "cancel" and given:
            scheduler.cancel(random.choice(given))
        assigned = [t["uid"] for tasks in scheduler.schedule().values() for t in tasks]
        given += assigned
        scheduled += len(assigned)
        check_counters(scheduler)
    assert scheduled >= 50  # (the walk did schedule)


def test_a_worker_record_is_slotted_and_small() -> None:
    scheduler = scheduler_with({"n1": (2, 0)})
    worker = scheduler.workers["n1.w0"]
    assert not hasattr(worker, "__dict__") and not hasattr(scheduler.nodes["n1"], "__dict__")
    assert sys.getsizeof(worker) + sys.getsizeof(worker.queue) <= 160  # (a dataclass with a deque: 800)
    assert worker.node is scheduler.nodes["n1"].name  # one string for the node's name, not one per worker
    assert worker.queue is scheduler.workers["n1.w1"].queue == ()  # idle workers hold no queue of their own
    scheduler.submit([task("a"), task("b")])
    scheduler.schedule()
    busy = [worker for worker in scheduler.workers.values() if worker.queue]
    scheduler.finished("a")
    scheduler.finished("b")
    assert busy and all(worker.queue == () for worker in busy)


def test_a_queue_without_a_task_keeps_the_others_in_order() -> None:
    assert without(("a", "b", "c"), "a") == ("b", "c")
    assert without(("a", "b", "c"), "b") == ("a", "c")
    assert without(("a",), "z") == ("a",) and without((), "a") == ()


def test_the_least_loaded_open_worker_takes_the_next_task_in_the_order_it_became_so() -> None:
    scheduler = scheduler_with({"n1": (3, 0)}, initial_depth=3)
    assert uids(submit_and_schedule(scheduler, *(task(f"t{i}") for i in range(6)))) == {
        "n1.w0": ["t0", "t3"], "n1.w1": ["t1", "t4"], "n1.w2": ["t2", "t5"]}
    scheduler.finished("t1")
    scheduler.finished("t0")  # n1.w1 has one task since before n1.w0 has
    assert uids(submit_and_schedule(scheduler, task("a"), task("b"), task("c"))) == {
        "n1.w1": ["a"], "n1.w0": ["b"], "n1.w2": ["c"]}
    scheduler.workers["n1.w1"].held_by = "placed"  # (held: out of the buckets, and back in when returned)
    scheduler.finished("t4")
    assert submit_and_schedule(scheduler, task("d")) == {"n1.w0": [task("d")]}  # (no GPU: no "gpu_ids" key)
    scheduler.workers["n1.w1"].held_by = None
    assert uids(submit_and_schedule(scheduler, task("e"))) == {"n1.w1": ["e"]}


def test_a_reason_names_a_few_nodes_out_of_the_schedule_and_counts_the_others() -> None:
    scheduler = scheduler_with({f"n{index:02d}": (1, 0) for index in range(20)}, initial_depth=1)
    scheduler.submit([task("a"), task("b")])
    for index in range(20):
        for worker in scheduler.close_node(f"n{index:02d}"):
            scheduler.remove_worker(worker)
    assert scheduler.schedule() == {}
    reasons = {reason for _task, reason in scheduler.take_rejected()}
    assert reasons == {"needs 1 cores and 0 GPUs on one node; the largest node of this pilot offers 0 cores and 0 GPUs "
                       "(20 of its 20 node(s) out of the schedule: n00, n01, n02, n03, n04, n05, n06, n07 and 12 "
                       "more)"}
