"""Discover the nodes (names, cores, GPUs) of the allocation the agent runs in."""

from __future__ import annotations

import dataclasses
import os
import re
import socket


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    cores: int
    gpus: int


def expand_hostlist(expression: str) -> list[str]:
    """Expand a SLURM host list such as ``n[1-3,5],gpu01`` into names."""
    names: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", expression):
        match = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not match:
            names.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for item in ranges.split(","):
            low, _, high = item.partition("-")
            for number in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{number:0{len(low)}d}{suffix}")
    return names


def discover(cores: int | None, gpus: int, nodes: int) -> list[Node]:
    """The allocation's nodes: from SLURM or PBS variables, else this machine alone."""
    environment = os.environ
    if "SLURM_JOB_NODELIST" in environment:
        names = expand_hostlist(environment["SLURM_JOB_NODELIST"])
        per_node = cores or int(environment.get("SLURM_CPUS_ON_NODE", "0")) or os.cpu_count() or 1
        return [Node(name, per_node, gpus) for name in names]
    if "PBS_NODEFILE" in environment:
        with open(environment["PBS_NODEFILE"]) as handle:
            entries = [line.strip() for line in handle if line.strip()]
        names = list(dict.fromkeys(entries))
        return [Node(name, cores or entries.count(name), gpus) for name in names]
    return [Node(socket.gethostname(), cores or os.cpu_count() or 1, gpus)][:nodes]
