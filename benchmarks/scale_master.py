"""The real master for benchmarks/scale.py, in its own process, built as the agent builds it (scalems_like/agent/
main.py) but launching no workers: emulated node managers connect to it instead.

    python benchmarks/scale_master.py PILOT_SANDBOX [--profile]

Reads ``PILOT_SANDBOX/agent.json`` (``nodes`` nodes named ``node00000``... of ``cores`` cores, one worker per
core) and the agent's keys, raises its open-file limit for the node connections, binds its worker socket and
prints the address node managers connect to, connects to the client and runs until the client shuts it down.
Logs go to ``PILOT_SANDBOX/agent.log`` as the agent's do; with ``--profile``, a cProfile of the loop goes to
``PILOT_SANDBOX/agent.prof``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # (benchmarks/profile.py would shadow the standard library's profile, which cProfile imports)

import cProfile

import zmq

from scalems_like.agent.config import AgentConfig
from scalems_like.agent.limits import open_files_needed, raise_open_files_limit
from scalems_like.agent.nodes import Node
from scalems_like.overlay.master import Master


def node_name(index: int) -> str:
    return f"node{index:05d}"


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("sandbox", type=Path)
    options.add_argument("--profile", action="store_true")
    options.add_argument("--backlog", type=int, help="ZMQ_BACKLOG of the master's node socket (default: the master's)")
    arguments = options.parse_args()
    sandbox: Path = arguments.sandbox
    logging.basicConfig(filename=sandbox / "agent.log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = AgentConfig.read(sandbox)
    warning = raise_open_files_limit(open_files_needed(config.nodes))
    if warning:
        print(f"master: {warning}", file=sys.stderr)
    assert config.cores is not None
    nodes = [Node(node_name(index), config.cores, 0) for index in range(config.nodes)]
    master = Master.open(config, nodes, config.cores, 1)
    if arguments.backlog:
        master.workers.setsockopt(zmq.BACKLOG, arguments.backlog)
    print(master.bind_workers(), flush=True)
    master.connect_client()
    if arguments.profile:
        with cProfile.Profile() as profile:
            state, _reason = master.run()
        profile.dump_stats(sandbox / "agent.prof")
    else:
        state, _reason = master.run()
    return 0 if state == "DONE" else 1


if __name__ == "__main__":
    sys.exit(main())
