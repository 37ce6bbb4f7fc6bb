"""Process limits the agent needs at scale: one open file per node connection of the master.

The default soft limit of open files is 1 024 on many compute nodes; a master with more node connections than that
would silently leave the rest of the nodes out (ZeroMQ cannot accept them). The agent raises its soft limit up to
the hard limit, which an unprivileged process may do, and says so when even the hard limit is too low.
"""

from __future__ import annotations

import resource

SPARE_FILES = 256
"""Open files the agent needs besides its node connections (journal, sockets to the client, ZeroMQ's own)."""


def open_files_needed(connections: int) -> int:
    """The open files a master of ``connections`` node connections needs."""
    return connections + SPARE_FILES


def raise_open_files_limit(needed: int) -> str | None:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit if it is below ``needed``; returns a warning
    text when the hard limit is below ``needed`` too (None when all is well)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (f"the open-file limit (RLIMIT_NOFILE) is {soft} (its hard limit): the master needs about {needed} "
                "for its node connections, and nodes beyond it cannot connect; raise the hard limit (limits.conf, "
                "or ask the site's administrators) or run fewer nodes per pilot")
    return None
