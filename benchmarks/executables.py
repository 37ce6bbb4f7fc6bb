"""A node's launch path: executable tasks (``/bin/true``) beside two bare ``Popen`` loops measured in the same run.

    python benchmarks/executables.py [--tasks 4000] [--chunk 250] [--json]

Three measures, taken in alternating chunks of ``--chunk`` launches (so that all three see the same load of this
shared machine) until each has made ``--tasks``:

- ``pilot``: executables on a 2-core local pilot (2 workers; the client and the agent share the two cores);
- ``launch path``: two processes that each start tasks one after the other with the code a worker runs for each
  (its sandbox, its files, the spawn, the pidfd, the reaping and the final update), in sandboxes on the file system
  of the pilots' sandboxes;
- ``two bare Popen loops``: two processes that each loop ``subprocess.Popen(["/bin/true"]).wait()``: the limit of
  this machine's two cores.

Each is printed in launches/s (launches over the wall time of its chunks) and as a ratio to the two bare loops
(target ≥ 60 %), and in CPU µs per launch (every process involved, its launches included: on a shared machine, the
ratio of these is what the launch rates on two idle cores would be) with that ratio too. The pilot's first tasks
warm it up and are not counted. With ``SCALEMS_LIKE_PROFILE_AGENT=1`` the agent writes ``PILOT_SANDBOX/agent.prof``,
with ``SCALEMS_LIKE_PROFILE_WORKER=1`` each worker ``PILOT_SANDBOX/workers/UID.prof`` (cProfile).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from throughput import pilot_start, run_tasks

import scalems_like as sl


def bare_launcher() -> Callable[[int], None]:
    return lambda _number: subprocess.Popen(["/bin/true"]).wait()


def engine_launcher(directory: str) -> Callable[[int], None]:
    """Start and end task ``number`` as a worker does (the worker's own code, its sandbox under ``directory``)."""
    from scalems_like.agent.launch import task_environment
    from scalems_like.overlay import execution

    environment = task_environment(dict(os.environ))
    if hasattr(execution, "Launcher"):
        start = execution.Launcher("none", environment).start
    else:  # (a commit before the Launcher, for comparisons)
        def start(task: dict[str, Any]) -> Any:
            return execution.start_executable(task, "none", environment)

    def launch(number: int) -> None:
        running = start({"uid": f"task.{number:06d}", "executable": "/bin/true", "arguments": [], "ranks": 1,
                         "sandbox": f"{directory}/task.{number:06d}", "stdout": "stdout", "stderr": "stderr",
                         "stdin": None, "timeout": None, "environment": {}})
        update: dict[str, Any] = {}
        running.finish(update)
        if update["state"] != "DONE":
            raise SystemExit(f"a task of the launch path failed: {update}")
    return launch


def cpu_seconds(times: os.times_result) -> float:
    """CPU seconds of a process and its reaped children."""
    return times.user + times.system + times.children_user + times.children_system


def serve_loop(kind: str, directory: str) -> None:
    """One loop process: reads a count per line from stdin, launches that many, answers with the CPU seconds it
    and its launches took."""
    launch = bare_launcher() if kind == "bare" else engine_launcher(directory)
    number = 0
    for line in sys.stdin:
        before = cpu_seconds(os.times())
        for _ in range(int(line)):
            launch(number)
            number += 1
        sys.stdout.write(f"{cpu_seconds(os.times()) - before}\n")
        sys.stdout.flush()


class TwoLoops:
    """Two loop processes (see :func:`serve_loop`), told together to make a chunk of launches."""

    def __init__(self, kind: str, directory: str) -> None:
        self.processes = [subprocess.Popen([sys.executable, __file__, "--serve", kind, directory], text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]

    def chunk(self, count: int) -> tuple[float, float]:
        """Seconds and CPU seconds the two loops took to make ``count`` launches between them."""
        start = time.perf_counter()
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{count // 2}\n")
            process.stdin.flush()
        cpu = 0.0
        for process in self.processes:
            assert process.stdout is not None
            answer = process.stdout.readline()
            if not answer:
                raise SystemExit("a loop process failed")
            cpu += float(answer)
        return time.perf_counter() - start, cpu

    def close(self) -> None:
        for process in self.processes:
            process.communicate()


def pilot_processes(sandbox: str) -> list[int]:
    """The pids of the local agent of the pilot whose sandbox is ``sandbox`` and of its workers."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
        except OSError:
            continue
        if b"scalems_like.agent" in words and sandbox.encode() in words:
            children = []
            for thread in os.listdir(f"/proc/{entry}/task"):
                with open(f"/proc/{entry}/task/{thread}/children") as handle:
                    children += [int(pid) for pid in handle.read().split()]
            return [int(entry), *children]
    raise SystemExit(f"no agent process of {sandbox}")


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and its reaped children, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pilot_chunk(session: sl.Session, pids: list[int], count: int) -> tuple[float, float]:
    """Seconds and CPU seconds (client, agent, workers and tasks) that ``count`` executables took on the pilot."""
    before = cpu_seconds(os.times()) + sum(map(process_cpu, pids))
    seconds = count / run_tasks(session, [sl.TaskDescription(executable="/bin/true") for _ in range(count)])
    return seconds, cpu_seconds(os.times()) + sum(map(process_cpu, pids)) - before


def measure(session: sl.Session, sandbox: str, tasks: int, chunk: int) -> dict[str, float]:
    pids = pilot_processes(sandbox)
    seconds = {"pilot": 0.0, "launch_path": 0.0, "two_popen_loops": 0.0}
    cpu = dict.fromkeys(seconds, 0.0)
    with tempfile.TemporaryDirectory(dir=sandbox) as directory:  # (the sandboxes' file system)
        loops = {"launch_path": TwoLoops("engine", directory), "two_popen_loops": TwoLoops("bare", directory)}
        for pair in loops.values():
            pair.chunk(20)  # interpreters up, imports done
        for _ in range(tasks // chunk):
            for name in seconds:
                spent = pilot_chunk(session, pids, chunk) if name == "pilot" else loops[name].chunk(chunk)
                seconds[name] += spent[0]
                cpu[name] += spent[1]
        for pair in loops.values():
            pair.close()
    done = tasks // chunk * chunk
    results = {f"{name}_per_s": done / spent for name, spent in seconds.items()}
    results.update({f"{name}_cpu_us": 1e6 * spent / done for name, spent in cpu.items()})
    for name in ("pilot", "launch_path"):
        results[f"{name}_ratio"] = results[f"{name}_per_s"] / results["two_popen_loops_per_s"]
        results[f"{name}_cpu_ratio"] = results["two_popen_loops_cpu_us"] / results[f"{name}_cpu_us"]
    return results


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--tasks", type=int, default=4000)
    options.add_argument("--chunk", type=int, default=250)
    options.add_argument("--json", action="store_true")
    options.add_argument("--serve", nargs=2, metavar=("KIND", "DIRECTORY"), help=argparse.SUPPRESS)
    arguments = options.parse_args()
    if arguments.serve:
        serve_loop(*arguments.serve)
        return
    load = os.getloadavg()[0]
    with sl.Session() as session:
        pilot, _ = pilot_start(session)
        run_tasks(session, [sl.TaskDescription(executable="/bin/true") for _ in range(200)])  # warm up
        results = measure(session, str(pilot.sandbox), arguments.tasks, arguments.chunk)
    results["load_before"], results["load_after"] = load, os.getloadavg()[0]
    if arguments.json:
        print(json.dumps({"tasks": arguments.tasks, "chunk": arguments.chunk, **results}, indent=2))
        return
    print(f"{'':22s}{'launches/s':>11s}{'% of bare':>10s}{'CPU µs each':>12s}{'% of bare':>10s}")
    for name, label in (("two_popen_loops", "two bare Popen loops"), ("launch_path", "launch path"),
                        ("pilot", "2-core local pilot")):
        ratio = f"{100 * results[f'{name}_ratio']:9.0f}%" if name != "two_popen_loops" else " " * 10
        cpu_ratio = f"{100 * results[f'{name}_cpu_ratio']:9.0f}%" if name != "two_popen_loops" else ""
        print(f"{label:22s}{results[f'{name}_per_s']:11.0f}{ratio}{results[f'{name}_cpu_us']:12.0f}{cpu_ratio}")
    print(f"({arguments.tasks} launches each, in alternating chunks of {arguments.chunk}; target ≥ 60 % of two bare "
          f"Popen loops; load average {results['load_before']:.1f} before, {results['load_after']:.1f} after)")

if __name__ == "__main__":
    main()
