"""The master at scale: the real agent master against emulated node managers, on one machine.

    python benchmarks/scale.py --nodes 16,256,1024,4096 --cores-per-node 128 --tasks 1000000 [--duration 0]
                               [--managers-per-process 1024] [--profile] [--json]

For each node count: the real :class:`~scalems_like.overlay.master.Master` runs in its own process
(benchmarks/scale_master.py: the agent's configuration, CurveZMQ keys, scheduler and flow control, no workers
launched); emulated node managers (benchmarks/scale_managers.py: up to ``--managers-per-process`` DEALERs per
process, one poll loop) connect with CurveZMQ, say NodeHello for one worker per core and complete each task at
once (or after a duration drawn around ``--duration`` seconds). This process is the client: a CurveZMQ ROUTER
the master connects to, speaking the client's protocol (Hello, TaskWindow credit, SubmitTasks in chunks,
TaskUpdates, Acknowledge, Heartbeat, Shutdown).

Reported per node count (``--json``: one JSON object per line): ``nodes``, ``cores``, ``tasks``, ``joined_s`` (the
managers' start until the master's NodesReady reports show every core of every node serving), ``tasks_per_s``
(first submission to last final update), ``master_cpu_us_per_task`` (the master process's CPU time over that
span, per task), ``master_rss_mb`` (its VmHWM), ``done`` and ``failed`` (tasks DONE, and not). Then this
machine's limits, measured in the same run: CurveZMQ handshakes (as many DEALERs as the largest node count
connecting to one ROUTER with a ZAP handler, with ZeroMQ's default listen backlog and with one as large) and
pipelined pyzmq round trips of a task-sized message. Ratios, never asserted times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq
from agent_memory import status_kib
from rich.console import Console
from rich.table import Table
from scale_limits import curve_joins_per_s
from throughput import zmq_limit

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig
from scalems_like.client.engine_loop import CHUNK
from scalems_like.client.task_wire import to_wire
from scalems_like.descriptions import TaskDescription
from scalems_like.protocol import curve
from scalems_like.protocol.curve import SessionKeys

HERE = Path(__file__).resolve().parent
FINAL = {"DONE", "FAILED", "CANCELED"}
PATIENCE = 600.0
"""Seconds without any message from the master before the run is called stuck."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """The client's side of one run: the ROUTER the master connects to, the credit, the counts."""

    def __init__(self, sandbox: Path, keys: SessionKeys, tasks: int) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 0)
        curve.serve(self.router, keys.client_public, keys.client_secret)
        self.authenticator = curve.start_authenticator(self.context, {keys.agent_public}, "the benchmark's client")
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.agent: bytes | None = None
        self.window = 0
        self.outstanding = 0
        self.sent = 0
        self.total = tasks
        self.finished = 0
        self.done = 0
        self.failed: list[dict[str, Any]] = []
        self.readiness: dict[str, tuple[int, int]] = {}
        self.all_ready_at: float | None = None
        self.stopping: protocol.AgentStopping | None = None
        self.last_final = 0.0
        self.last_heartbeat = 0.0
        self.submitting = False
        """Tasks are sent (once every node joined: the join is measured alone)."""
        self.base = to_wire(TaskDescription(executable="/bin/true"), sandbox, {})
        """A task as the client sends it (its uid added; the master sets its sandbox)."""

    def receive(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the master, then handle every message it sent."""
        if not self.router.poll(timeout * 1000):
            return
        while True:
            try:
                identity, data = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.agent = identity
            self.handle(protocol.decode(data))

    def handle(self, message: protocol.Message) -> None:
        if isinstance(message, protocol.TaskWindow):
            self.window = message.size
        elif isinstance(message, protocol.NodesReady):
            for name, ready, cores, _out in message.nodes:
                self.readiness[name] = (ready, cores)
            if self.all_ready_at is None and self.readiness and all(
                    ready == cores for ready, cores in self.readiness.values()):
                self.all_ready_at = message.time
        elif isinstance(message, protocol.TaskUpdates):
            ended = [update for update in message.updates if update["state"] in FINAL]
            if ended:
                self.finished += len(ended)
                self.outstanding -= len(ended)
                not_done = [update for update in ended if update["state"] != "DONE"]
                self.failed += not_done
                self.done += len(ended) - len(not_done)
                self.last_final = time.time()
                self.send(protocol.Acknowledge([update["uid"] for update in ended]))
        elif isinstance(message, protocol.AgentStopping):
            self.stopping = message

    def progress(self) -> tuple[int, int, int, bool]:
        """What changes while the run goes on: tasks ended, cores serving, the window, the stop."""
        serving = sum(ready for ready, _cores in self.readiness.values())
        return self.finished, serving, self.window, self.stopping is not None

    def send(self, message: protocol.Message) -> None:
        assert self.agent is not None
        self.router.send_multipart([self.agent, protocol.encode(message)])

    def dispatch(self) -> None:
        """Send tasks while the credit lasts (the window minus the tasks sent and not final)."""
        while self.submitting and self.sent < self.total and self.window - self.outstanding > 0:
            count = min(CHUNK, self.window - self.outstanding, self.total - self.sent)
            batch = [{**self.base, "uid": f"task.{self.sent + index:07d}"} for index in range(count)]
            self.send(protocol.SubmitTasks(batch))
            self.sent += count
            self.outstanding += count

    def heartbeat(self) -> None:
        now = time.time()
        if self.agent is not None and now - self.last_heartbeat >= 1.0:
            self.last_heartbeat = now
            self.send(protocol.Heartbeat(now))

    def close(self) -> None:
        self.router.close()
        self.authenticator.stop()
        self.context.term()


def start_managers(address: str, sandbox: Path, nodes: int, cores: int, per_process: int,
                   duration: float) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, str(HERE / "scale_managers.py"), address, str(sandbox), str(first),
                              str(min(per_process, nodes - first)), str(cores), "--duration", str(duration)])
            for first in range(0, nodes, per_process)]


def waited(client: Client, master: subprocess.Popen[bytes], until: Any, what: str) -> None:
    """Serve the client's side until ``until()``; fail if the master ends or stays silent past :data:`PATIENCE`."""
    last = time.time()
    while not until():
        before = client.progress()
        client.receive(1.0)
        client.heartbeat()
        client.dispatch()
        if client.progress() != before:
            last = time.time()
        if master.poll() is not None:
            client.receive(0.0)  # (what it sent before it ended)
            if until():
                return
            raise SystemExit(f"the master ended (exit code {master.returncode}) while waiting for {what}")
        if time.time() - last > PATIENCE:
            raise SystemExit(f"nothing happened for {PATIENCE:g} s while waiting for {what}")


def measure(nodes: int, cores: int, tasks: int, options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scalems-like-scale-") as directory:
        sandbox = Path(directory)
        keys = SessionKeys.generate()
        keys.for_agent.write(sandbox)
        client = Client(sandbox, keys, tasks)
        AgentConfig(pilot_uid="pilot.0000", session_uid="session.scale", client_address=f"tcp://127.0.0.1:"
                    f"{client.port}", pilot_sandbox=str(sandbox), runtime=24 * 3600, nodes=nodes,
                    cores=cores, heartbeat_timeout=options.heartbeat_timeout).write(sandbox)
        command = [sys.executable, str(HERE / "scale_master.py"), str(sandbox)] + (["--profile"] * options.profile)
        command += ["--backlog", str(options.backlog)] if options.backlog else []
        master = subprocess.Popen(command, stdout=subprocess.PIPE)
        managers: list[subprocess.Popen[bytes]] = []
        try:
            assert master.stdout is not None
            address = master.stdout.readline().decode().strip()
            waited(client, master, lambda: client.readiness, "the master's greeting")
            start = time.time()
            managers = start_managers(address, sandbox, nodes, cores, options.managers_per_process, options.duration)
            waited(client, master, lambda: client.all_ready_at is not None, "every node to join")
            assert client.all_ready_at is not None
            joined = client.all_ready_at - start
            cpu_before, submitted = cpu_seconds(master.pid), time.time()
            client.submitting = True
            waited(client, master, lambda: client.finished >= tasks, "every task to end")
            cpu = cpu_seconds(master.pid) - cpu_before
            elapsed = client.last_final - submitted
            rss_mb = status_kib(master.pid, "VmHWM") / 1024
            client.send(protocol.Shutdown("the benchmark is done"))
            waited(client, master, lambda: client.stopping is not None, "the master to stop")
            master.wait(timeout=60)
            for process in managers:
                process.wait(timeout=60)
            if options.profile:
                summarize_profile(sandbox / "agent.prof", nodes)
        except BaseException:
            shutil.copy(sandbox / "agent.log", Path(tempfile.gettempdir()) / f"scale-agent-{nodes}.log")
            print(f"the master's log: {Path(tempfile.gettempdir()) / f'scale-agent-{nodes}.log'}", file=sys.stderr)
            raise
        finally:
            for process in [master, *managers]:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            client.close()
    return {"nodes": nodes, "cores": nodes * cores, "tasks": tasks, "joined_s": round(joined, 2),
            "tasks_per_s": round(tasks / elapsed), "master_cpu_us_per_task": round(cpu / tasks * 1e6, 1),
            "master_rss_mb": round(rss_mb), "done": client.done, "failed": len(client.failed)}


def summarize_profile(path: Path, nodes: int) -> None:
    import pstats

    print(f"-- the master's profile at {nodes} nodes ({path}): the 25 functions of most own time", file=sys.stderr)
    pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(25)


def node_counts(text: str) -> Iterator[int]:
    for item in text.split(","):
        yield int(item)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--nodes", default="16,256,1024,4096", help="node counts, comma-separated")
    options.add_argument("--cores-per-node", type=int, default=128)
    options.add_argument("--tasks", type=int, default=1_000_000)
    options.add_argument("--duration", type=float, default=0.0, help="mean task duration in s (0: none)")
    options.add_argument("--managers-per-process", type=int, default=1024)
    options.add_argument("--profile", action="store_true", help="cProfile the master; its top functions to stderr")
    options.add_argument("--backlog", type=int, help="set the ZMQ_BACKLOG of the master's node socket (ZeroMQ's "
                         "default: 100) before it binds")
    options.add_argument("--heartbeat-timeout", type=float, default=10.0,
                         help="the resource key heartbeat_timeout of the master (default: the agent's, 10 s)")
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    results = []
    for nodes in node_counts(arguments.nodes):
        result = measure(nodes, arguments.cores_per_node, arguments.tasks, arguments)
        results.append(result)
        if arguments.json:
            print(json.dumps(result), flush=True)
    connections = max(result["nodes"] for result in results)
    task = {**to_wire(TaskDescription(executable="/bin/true"), Path.cwd(), {}), "uid": "task.0000000"}
    limits = {"curve_joins_per_s": round(curve_joins_per_s(connections)),
              "curve_joins_per_s_backlog": round(curve_joins_per_s(connections, backlog=connections)),
              "zmq_round_trips_per_s": round(zmq_limit(20000, len(protocol.encode(protocol.RunTasks([task])))))}
    if arguments.json:
        print(json.dumps({"limits": limits, "connections": connections}), flush=True)
        return
    show(results, limits, connections)


def show(results: list[dict[str, Any]], limits: dict[str, Any], connections: int) -> None:
    table = Table(title="the master against emulated node managers")
    for column in ("nodes", "cores", "tasks", "joined (s)", "tasks/s", "vs first", "master CPU µs/task",
                   "master RSS (MB)", "not DONE"):
        table.add_column(column, justify="right")
    first = results[0]["tasks_per_s"]
    for result in results:
        table.add_row(str(result["nodes"]), str(result["cores"]), str(result["tasks"]), f"{result['joined_s']:.1f}",
                      str(result["tasks_per_s"]), f"{100 * result['tasks_per_s'] / first:.0f} %",
                      f"{result['master_cpu_us_per_task']:.1f}", str(result["master_rss_mb"]), str(result["failed"]))
    console = Console()
    console.print(table)
    console.print(f"this machine: {connections} DEALERs joining one CurveZMQ ROUTER with ZAP: "
                  f"{limits['curve_joins_per_s']}/s with ZeroMQ's default listen backlog (100), "
                  f"{limits['curve_joins_per_s_backlog']}/s with a backlog of {connections}; "
                  f"{limits['zmq_round_trips_per_s']} pyzmq round trips/s of a task-sized message")


if __name__ == "__main__":
    main()
