"""Launch methods: how the agent starts worker processes on the nodes of its allocation.

*Getting an allocation* is the batch system's job (see :mod:`scalems_like.adapters`); *starting processes inside
it* is this package's. Each method builds the command line(s) and starts them; the master watches the processes.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from scalems_like.agent.nodes import Node

WORKER_MODULE = "scalems_like.overlay.worker"


def worker_command(address: str, uid: str) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, address, uid]


@dataclasses.dataclass(frozen=True)
class Launched:
    """A started process and the workers it runs: (uid, node) each, the uid as the worker will say hello;
    ``output``: the file its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    prefix: str
    workers: tuple[tuple[str, str], ...]
    output: Path


@dataclasses.dataclass
class WorkerLauncher:
    """How this agent starts its workers: all of them at the start, and one more on a node to replace one lost
    (with the same method: forked here, ssh to the node, a one-task srun or mpiexec step on the node)."""

    method: str
    nodes: list[Node]
    per_node: int
    width: int
    address: str
    uid_prefix: str
    log_directory: Path
    environment: dict[str, str]
    ssh_command: str = "ssh -o BatchMode=yes"
    replacements: int = 0

    def start(self) -> list[Launched]:
        """Start ``per_node`` workers on every node (see :func:`start_workers`)."""
        return start_workers(self.method, self.nodes, self.per_node, self.width, self.address, self.uid_prefix,
                             self.log_directory, self.environment, self.ssh_command)

    def replace(self, node: str) -> Launched:
        """Start one worker on ``node`` (raises OSError if its launcher cannot start)."""
        self.replacements += 1
        prefix = f"{self.uid_prefix}.r{self.replacements:04d}"
        target = next(item for item in self.nodes if item.name == node)
        if self.method == "fork" or (self.method == "ssh" and target == self.nodes[0]):
            return _fork(target, prefix, self.address, self.log_directory, self.environment)
        if self.method == "ssh":
            return _ssh(target, prefix, 1, self.address, self.log_directory, self.environment, self.ssh_command)
        return _step([target], 1, self.width, self.method, self.address, prefix, self.log_directory,
                     self.environment)


def start_workers(method: str, nodes: list[Node], per_node: int, width: int, address: str,
                  uid_prefix: str, log_directory: Path, environment: dict[str, str],
                  ssh_command: str = "ssh -o BatchMode=yes") -> list[Launched]:
    """Start ``per_node`` workers on every node.

    Returns the processes to watch, each with the workers it runs: one process per worker for ``fork``; one per
    node for ``ssh`` (the first node forks); one for all workers for ``srun``/``mpiexec`` (which append the rank
    to the prefix; ranks fill the nodes in order).
    """
    log_directory.mkdir(parents=True, exist_ok=True)
    if method in ("fork", "ssh"):
        processes = [_fork(nodes[0], f"{uid_prefix}.{index:04d}", address, log_directory, environment)
                     for index in range(per_node)]
        if method == "ssh":
            processes += [_ssh(node, f"{uid_prefix}.n{number}", per_node, address, log_directory, environment,
                               ssh_command) for number, node in enumerate(nodes[1:], 1)]
        return processes
    if method not in ("srun", "mpiexec"):
        raise ValueError(f"unknown launch method {method!r}")
    return [_step(nodes, per_node, width, method, address, uid_prefix, log_directory, environment)]


def step_command(method: str, nodes: list[Node], per_node: int, width: int, address: str, prefix: str
                 ) -> list[str]:
    """The srun or mpiexec line that starts ``per_node`` workers on each of ``nodes``."""
    if method == "srun":
        placement = [f"--nodelist={','.join(node.name for node in nodes)}"] if len(nodes) == 1 else []
        return ["srun", f"--nodes={len(nodes)}", *placement, f"--ntasks={len(nodes) * per_node}",
                f"--ntasks-per-node={per_node}", f"--cpus-per-task={width}", "--overlap",
                "--kill-on-bad-exit=0", "--export=ALL", *worker_command(address, prefix)]
    hosts = ",".join(f"{node.name}:{per_node}" for node in nodes)
    return ["mpiexec", "-n", str(len(nodes) * per_node), "--host", hosts, *worker_command(address, prefix)]


def _step(nodes: list[Node], per_node: int, width: int, method: str, address: str, prefix: str,
          log_directory: Path, environment: dict[str, str]) -> Launched:
    command = step_command(method, nodes, per_node, width, address, prefix)
    workers = tuple((f"{prefix}.{rank:04d}", nodes[rank // per_node].name) for rank in range(len(nodes) * per_node))
    output = log_directory / f"{prefix}.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())
    return Launched(process, prefix, workers, output)


def _fork(node: Node, uid: str, address: str, log_directory: Path, environment: dict[str, str]) -> Launched:
    env = {**environment, "SCALEMS_NODE": node.name, "SCALEMS_WORKER_DIE_WITH_PARENT": "1"}
    output = log_directory / f"{uid}.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(worker_command(address, uid), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Launched(process, uid, ((uid, node.name),), output)


FORWARDED = ("PATH", "PYTHONPATH", "PYTHONNOUSERSITE", "VIRTUAL_ENV")
"""Variables an ``ssh`` launch passes to the remote workers, with every SCALEMS_* one."""


def ssh_script(node: Node, prefix: str, per_node: int, address: str, log_directory: Path,
               environment: dict[str, str]) -> str:
    """The remote shell line that starts a node's workers in the background and waits for them."""
    forwarded = {key: value for key, value in environment.items()
                 if key in FORWARDED or key.startswith("SCALEMS_")}
    forwarded["SCALEMS_NODE"] = node.name
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(forwarded.items()))
    starts = [f"{exports} {shlex.join(worker_command(address, f'{prefix}.{index:04d}'))} "
              f">{shlex.quote(str(log_directory / f'{prefix}.{index:04d}.log'))} 2>&1 &" for index in range(per_node)]
    return " ".join([*starts, "wait"])


def _ssh(node: Node, prefix: str, per_node: int, address: str, log_directory: Path, environment: dict[str, str],
         ssh_command: str) -> Launched:
    argv = [*shlex.split(ssh_command), node.name, ssh_script(node, prefix, per_node, address, log_directory,
                                                              environment)]
    output = log_directory / f"{prefix}.ssh.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    workers = tuple((f"{prefix}.{index:04d}", node.name) for index in range(per_node))
    return Launched(process, prefix, workers, output)


STEP_VARIABLES = (
    "SLURM_STEP", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_TASKS_PER_NODE", "SLURM_CPUS_PER_TASK",
    "SLURM_DISTRIBUTION", "SLURM_SRUN_COMM", "SLURM_NNODES", "SLURM_NODELIST", "SLURM_PROCID", "SLURM_LOCALID",
    "SLURM_NODEID", "SLURM_TASK_PID", "SLURM_GTIDS", "SLURM_LAUNCH_NODE_IPADDR", "SLURM_CPU_BIND", "SLURM_MEM_PER",
    "PMI_", "PMIX_", "OMPI_COMM_WORLD",
)
"""Variables of the launcher step that started a worker; tasks must not inherit them (a nested srun would
obey the worker step's task counts)."""


def task_environment(environment: dict[str, str]) -> dict[str, str]:
    """The environment tasks start from: the worker's, without its launcher step's variables."""
    return {key: value for key, value in environment.items() if not key.startswith(STEP_VARIABLES)}


def mpi_command(launcher: str, task: dict[str, Any]) -> list[str]:
    """The command line prefix that starts ``task["ranks"]`` ranks where the scheduler placed them."""
    ranks, placement = task["ranks"], task.get("placement") or []
    nodes = [str(node) for node, _ in placement]
    if launcher == "srun":
        command = ["srun", "--overlap", f"--ntasks={ranks}", f"--cpus-per-task={task['cores']}",
                   "--kill-on-bad-exit=1"]
        if nodes:
            command += [f"--nodes={len(nodes)}", f"--nodelist={','.join(nodes)}"]
        if task["gpus"]:
            command.append(f"--gpus-per-task={task['gpus']}")
        return command
    if launcher in ("mpiexec", "mpirun"):
        command = [launcher, "-n", str(ranks)]
        if nodes:
            command += ["--host", ",".join(f"{node}:{count}" for node, count in placement)]
        return command
    if launcher == "ibrun":
        return ["ibrun", "-n", str(ranks)]
    return []
