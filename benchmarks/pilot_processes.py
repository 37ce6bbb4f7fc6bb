"""Shared by the benchmarks: the processes of a local pilot, found in /proc."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return sorted(found)


def worker_pids(agent: int) -> list[int]:
    """The worker processes of a local pilot's agent: agent → node manager → its fork server → workers."""
    return sorted(worker for manager in children(agent) for spawner in children(manager)
                  for worker in children(spawner))


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB (PSS: its private pages plus its share of the pages it shares), 0s if gone."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(" ")
            if key in values:
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["Rss:"], values["Pss:"]
