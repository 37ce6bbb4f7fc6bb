"""Throughput of a 2-core local pilot, beside this machine's own limits measured in the same run.

    python benchmarks/throughput.py [--executables 2000] [--functions 20000] [--slurm] [--json]

Prints: pilot start time (submit → ACTIVE, first and reused), executable and function tasks/s, and the
limits: a bare subprocess.Popen loop of /bin/true, and a bare pyzmq DEALER/ROUTER pipelined round trip with
messages of the same size as a task on the wire. Targets: executables ≥ 70 % of the Popen limit, functions
≥ 10 000/s, pilot start ≤ 2 s with a reused environment.

Also: how long after a bootstrap step failed the client knows it (target ≤ 2 s), and with ``--venv`` the
pilot start when its venv is built (``six``, with uv or pip) and when a later pilot reuses it.

With ``--slurm`` (the test cluster of tests/cluster/slurm-cluster.sh running): a 2-node pilot on the ``slurm``
resource, submit → ACTIVE, and executable tasks/s across both nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time

import zmq

import scalems_like as sl
from scalems_like import protocol
from scalems_like.protocol.curve import INSECURE_VARIABLE


def square(x: int) -> int:
    return x * x


def popen_limit(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        subprocess.Popen(["/bin/true"]).wait()
    return count / (time.perf_counter() - start)


def zmq_limit(count: int, size: int) -> float:
    """Pipelined DEALER → ROUTER → DEALER round trips of ``size``-byte messages, on loopback TCP."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    for sock in (router, dealer):  # no high-water mark: a ROUTER drops what it cannot queue
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * size

    def echo() -> None:
        for _ in range(count):
            router.send_multipart(router.recv_multipart())

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(count):
        dealer.send(payload)
    for _ in range(count):
        dealer.recv()
    elapsed = time.perf_counter() - start
    thread.join()
    dealer.close()
    router.close()
    context.term()
    return count / elapsed


def run_tasks(session: sl.Session, descriptions: list[sl.TaskDescription]) -> float:
    start = time.perf_counter()
    tasks = session.submit_tasks(descriptions)
    session.wait_tasks(tasks)
    elapsed = time.perf_counter() - start
    bad = [task for task in tasks if task.state is not sl.TaskState.DONE]
    if bad:
        raise SystemExit(f"{len(bad)} tasks did not succeed, e.g. {bad[0]}: {bad[0].reason}")
    return len(tasks) / elapsed


def pilot_start(session: sl.Session, resource: str = "local", **shape: int) -> tuple[sl.Pilot, float]:
    start = time.perf_counter()
    pilot = session.submit_pilot(sl.PilotDescription(resource=resource, runtime=3600, **(shape or {"cores": 2})))
    pilot.wait("ACTIVE")
    return pilot, time.perf_counter() - start


def failure_latency(session: sl.Session) -> float:
    """Seconds from a failed bootstrap step (its own timestamp) to the client seeing the pilot FAILED."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, pre_bootstrap=["exit 3"]))
    seen: list[float] = []
    pilot.add_callback(lambda _pilot, state: seen.append(time.time()) if state is sl.PilotState.FAILED else None)
    pilot.wait()
    while not seen:  # the callback runs on the session's thread right after the state change
        time.sleep(0.001)
    failed = next(event for event in pilot.bootstrap_events if event.state == "failed")
    return seen[0] - failed.time


def venv_starts(session: sl.Session) -> tuple[float, float]:
    spec = {"requirements": ["six"], "mode": "recreate"}
    built = pilot_start_with(session, spec)
    reused = pilot_start_with(session, {**spec, "mode": "reuse"})
    return built, reused


def pilot_start_with(session: sl.Session, environment: dict[str, object]) -> float:
    start = time.perf_counter()
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, environment=environment))
    pilot.wait("ACTIVE")
    elapsed = time.perf_counter() - start
    pilot.cancel()
    pilot.wait()
    return elapsed


def functions_in_new_session(count: int, *, insecure: bool) -> float:
    """Function tasks/s on a new pilot of a new (journaled) session, with or without CurveZMQ."""
    if insecure:
        os.environ[INSECURE_VARIABLE] = "1"
    try:
        with sl.Session() as session:
            pilot_start(session)
            return run_tasks(session, [sl.TaskDescription(function=square, args=(i,)) for i in range(count)])
    finally:
        os.environ.pop(INSECURE_VARIABLE, None)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--executables", type=int, default=2000)
    options.add_argument("--functions", type=int, default=20000)
    options.add_argument("--slurm", action="store_true", help="also measure a 2-node SLURM pilot")
    options.add_argument("--venv", action="store_true", help="also measure building and reusing a venv")
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    wire_size = len(protocol.encode(protocol.SubmitTasks([session_task_example()])))
    results: dict[str, float] = {}
    with sl.Session() as session:
        first, results["pilot_start_first_s"] = pilot_start(session)
        first.cancel()
        first.wait()
        _, results["pilot_start_s"] = pilot_start(session)
        results["executables_per_s"] = run_tasks(
            session, [sl.TaskDescription(executable="/bin/true") for _ in range(arguments.executables)])
        results["functions_per_s"] = run_tasks(
            session, [sl.TaskDescription(function=square, args=(i,)) for i in range(arguments.functions)])
        results["failure_known_after_s"] = failure_latency(session)
        if arguments.venv:
            results["venv_built_start_s"], results["venv_reused_start_s"] = venv_starts(session)
    # what CurveZMQ costs: the same function tasks in fresh sessions with and without it, alternately, best of 2
    secure, insecure = [results["functions_per_s"]], []
    for _ in range(2):
        insecure.append(functions_in_new_session(arguments.functions, insecure=True))
        secure.append(functions_in_new_session(arguments.functions, insecure=False))
    results["functions_per_s"], results["functions_insecure_per_s"] = max(secure), max(insecure)
    if arguments.slurm:
        with sl.Session() as session:
            _, results["slurm_2_node_start_s"] = pilot_start(session, "slurm", nodes=2)
            results["slurm_2_node_executables_per_s"] = run_tasks(
                session, [sl.TaskDescription(executable="/bin/true") for _ in range(arguments.executables)])
    results["popen_limit_per_s"] = popen_limit(arguments.executables)
    results["zmq_round_trips_per_s"] = zmq_limit(arguments.functions, wire_size)
    results["executables_vs_popen"] = results["executables_per_s"] / results["popen_limit_per_s"]
    results["functions_vs_zmq"] = results["functions_per_s"] / results["zmq_round_trips_per_s"]
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"pilot start (submit → ACTIVE)   first {results['pilot_start_first_s']:.2f} s, "
          f"reused environment {results['pilot_start_s']:.2f} s   (target ≤ 2 s)")
    print(f"executable tasks                {results['executables_per_s']:8.0f} /s   "
          f"{100 * results['executables_vs_popen']:.0f} % of the Popen limit (target ≥ 70 %)")
    print(f"function tasks                  {results['functions_per_s']:8.0f} /s   (target ≥ 10 000/s; "
          f"{100 * results['functions_vs_zmq']:.0f} % of the zmq round-trip limit)")
    cost = 1 - results["functions_per_s"] / results["functions_insecure_per_s"]
    print(f"  the same without CurveZMQ     {results['functions_insecure_per_s']:8.0f} /s   (best of 3 and 2, "
          f"alternated: CurveZMQ costs {100 * cost:.0f} %)")
    print(f"bootstrap failure known after   {results['failure_known_after_s']:.3f} s   (target ≤ 2 s)")
    if arguments.venv:
        print(f"pilot start, venv built         {results['venv_built_start_s']:.2f} s; "
              f"venv reused {results['venv_reused_start_s']:.2f} s")
    if arguments.slurm:
        print(f"SLURM 2-node pilot start        {results['slurm_2_node_start_s']:.2f} s (sbatch → agent connected)")
        print(f"SLURM 2-node executable tasks   {results['slurm_2_node_executables_per_s']:8.0f} /s   "
              f"{100 * results['slurm_2_node_executables_per_s'] / results['popen_limit_per_s']:.0f} % of the "
              "Popen limit (8 workers on 2 real cores)")
    print(f"limit: bare Popen of /bin/true  {results['popen_limit_per_s']:8.0f} /s")
    print(f"limit: pyzmq round trips        {results['zmq_round_trips_per_s']:8.0f} /s   ({wire_size}-byte messages)")


def session_task_example() -> dict[str, object]:
    """A function task as it travels on the wire (for the zmq message size)."""
    import cloudpickle

    return {"uid": "task.000000", "name": None, "kind": "function", "environment": {}, "working_directory": None,
            "cores": 1, "gpus": 0, "ranks": 1, "stdin": None, "stdout": "stdout", "stderr": "stderr",
            "timeout": None, "retries": 0, "tags": {}, "function": cloudpickle.dumps(square),
            "call_arguments": cloudpickle.dumps(((1,), {}))}


if __name__ == "__main__":
    main()
