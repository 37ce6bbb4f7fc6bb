"""Launch methods: how the agent starts its node managers (which fork the workers) on the nodes of its allocation.

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

MANAGER_MODULE = "scalems_like.overlay.node_manager"


def manager_command(address: str, uid: str, workers: int, log_directory: Path) -> list[str]:
    """The command line of a node manager that forks ``workers`` workers and logs them to ``log_directory``."""
    return [sys.executable, "-m", MANAGER_MODULE, address, uid, str(workers), str(log_directory)]


@dataclasses.dataclass(frozen=True)
class Launched:
    """A started process and the node managers it runs: (uid, node) each, the uid as the manager connects (srun
    and mpiexec run one per node in one process, appending the rank); ``output``: the file its stdout and stderr
    go to."""

    process: subprocess.Popen[bytes]
    prefix: str
    managers: tuple[tuple[str, str], ...]
    output: Path


@dataclasses.dataclass
class WorkerLauncher:
    """How this agent starts its node managers, one per node (each forks its node's ``per_node`` workers): forked
    here, ssh to the node, or one srun/mpiexec step with one task per node."""

    method: str
    nodes: list[Node]
    per_node: int
    width: int
    address: str
    uid_prefix: str
    log_directory: Path
    environment: dict[str, str]
    ssh_command: str = "ssh -o BatchMode=yes"

    def start(self) -> list[Launched]:
        """Start a node manager on every node (see :func:`start_managers`)."""
        return start_managers(self.method, self.nodes, self.per_node, self.width, self.address, self.uid_prefix,
                              self.log_directory, self.environment, self.ssh_command)


def start_managers(method: str, nodes: list[Node], per_node: int, width: int, address: str,
                   uid_prefix: str, log_directory: Path, environment: dict[str, str],
                   ssh_command: str = "ssh -o BatchMode=yes") -> list[Launched]:
    """Start one node manager per node, each forking ``per_node`` workers.

    Returns the processes to watch, each with the managers it runs: for ``fork`` one manager here (the first
    node's); for ``ssh`` that one and one ssh per other node; for ``srun``/``mpiexec`` one step with one task per
    node (the rank, appended to the prefix, tells the managers apart; ranks follow the nodes' order).
    """
    log_directory.mkdir(parents=True, exist_ok=True)
    if method in ("fork", "ssh"):
        processes = [_fork(nodes[0], f"{uid_prefix}.n0000", per_node, address, log_directory, environment)]
        if method == "ssh":
            processes += [_ssh(node, f"{uid_prefix}.n{number:04d}", per_node, address, log_directory, environment,
                               ssh_command) for number, node in enumerate(nodes[1:], 1)]
        return processes
    if method not in ("srun", "mpiexec"):
        raise ValueError(f"unknown launch method {method!r}")
    return [_step(nodes, per_node, width, method, address, uid_prefix, log_directory, environment)]


def step_command(method: str, nodes: list[Node], per_node: int, width: int, address: str, prefix: str,
                 log_directory: Path) -> list[str]:
    """The srun or mpiexec line that starts one node manager on each of ``nodes``."""
    command = manager_command(address, prefix, per_node, log_directory)
    if method == "srun":
        placement = [f"--nodelist={','.join(node.name for node in nodes)}"] if len(nodes) == 1 else []
        return ["srun", f"--nodes={len(nodes)}", *placement, f"--ntasks={len(nodes)}", "--ntasks-per-node=1",
                f"--cpus-per-task={per_node * width}", "--overlap", "--kill-on-bad-exit=0", "--export=ALL",
                *command]
    hosts = ",".join(f"{node.name}:1" for node in nodes)
    return ["mpiexec", "-n", str(len(nodes)), "--host", hosts, *command]


def _step(nodes: list[Node], per_node: int, width: int, method: str, address: str, prefix: str,
          log_directory: Path, environment: dict[str, str]) -> Launched:
    command = step_command(method, nodes, per_node, width, address, prefix, log_directory)
    managers = tuple((f"{prefix}.{rank:04d}", node.name) for rank, node in enumerate(nodes))
    output = log_directory / f"{prefix}.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())
    return Launched(process, prefix, managers, output)


def _fork(node: Node, uid: str, per_node: int, address: str, log_directory: Path,
          environment: dict[str, str]) -> Launched:
    env = {**environment, "SCALEMS_NODE": node.name, "SCALEMS_WORKER_DIE_WITH_PARENT": "1"}
    output = log_directory / f"{uid}.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(manager_command(address, uid, per_node, log_directory), env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Launched(process, uid, ((uid, node.name),), output)


FORWARDED = ("PATH", "PYTHONPATH", "PYTHONNOUSERSITE", "VIRTUAL_ENV")
"""Variables an ``ssh`` launch passes to the remote node manager, with every SCALEMS_* one."""


def ssh_script(node: Node, uid: str, per_node: int, address: str, log_directory: Path,
               environment: dict[str, str]) -> str:
    """The remote shell line that runs a node's manager (ssh waits for it)."""
    forwarded = {key: value for key, value in environment.items()
                 if key in FORWARDED or key.startswith("SCALEMS_")}
    forwarded["SCALEMS_NODE"] = node.name
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(forwarded.items()))
    return f"{exports} exec {shlex.join(manager_command(address, uid, per_node, log_directory))}"


def _ssh(node: Node, uid: str, per_node: int, address: str, log_directory: Path, environment: dict[str, str],
         ssh_command: str) -> Launched:
    argv = [*shlex.split(ssh_command), node.name, ssh_script(node, uid, per_node, address, log_directory,
                                                             environment)]
    output = log_directory / f"{uid}.ssh.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Launched(process, uid, ((uid, node.name),), output)


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
