"""Launch methods: how the agent starts worker processes on the nodes of its allocation.

*Getting an allocation* is the batch system's job (see :mod:`scalems_like.adapters`); *starting processes inside
it* is this package's. Each method builds the command line(s) and starts them; the master watches the processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scalems_like.agent.nodes import Node

WORKER_MODULE = "scalems_like.overlay.worker"


def worker_command(address: str, uid: str) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, address, uid]


def start_workers(method: str, nodes: list[Node], per_node: int, width: int, address: str,
                  uid_prefix: str, log_directory: Path, environment: dict[str, str]
                  ) -> list[tuple[subprocess.Popen[bytes], str]]:
    """Start ``per_node`` workers on every node.

    Returns the processes to watch, each with the uid (prefix) of the workers it runs: one process per worker
    for ``fork``, one for all workers for ``srun``/``mpiexec`` (which append the rank to the prefix).
    """
    log_directory.mkdir(parents=True, exist_ok=True)
    if method == "fork":
        processes = []
        for index in range(per_node):
            uid = f"{uid_prefix}.{index:04d}"
            env = {**environment, "SCALEMS_NODE": nodes[0].name, "SCALEMS_WORKER_DIE_WITH_PARENT": "1"}
            with open(log_directory / f"{uid}.log", "wb") as log:
                processes.append((subprocess.Popen(worker_command(address, uid), env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), uid))
        return processes
    if method == "srun":
        command = ["srun", f"--nodes={len(nodes)}", f"--ntasks={len(nodes) * per_node}",
                   f"--ntasks-per-node={per_node}", f"--cpus-per-task={width}", "--overlap",
                   "--kill-on-bad-exit=0", "--export=ALL", *worker_command(address, uid_prefix)]
    elif method == "mpiexec":
        hosts = ",".join(f"{node.name}:{per_node}" for node in nodes)
        command = ["mpiexec", "-n", str(len(nodes) * per_node), "--host", hosts,
                   *worker_command(address, uid_prefix)]
    else:
        raise ValueError(f"unknown launch method {method!r}")
    with open(log_directory / f"{uid_prefix}.log", "wb") as log:
        return [(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd()), uid_prefix)]


def mpi_prefix(mpi_launcher: str) -> list[str]:
    """Command prefix (before ``-n RANKS``) that launches a ranks > 1 task."""
    return {"none": [], "srun": ["srun", "--overlap"], "mpiexec": ["mpiexec"], "mpirun": ["mpirun"]}[mpi_launcher]
