"""The agent: started by the bootstrap as ``python -m scalems_like.agent PILOT_SANDBOX``.

It reads ``agent.json``, discovers its nodes, binds the worker socket, starts the workers through the
resource's launch method, connects to the client and runs the master loop until shutdown or runtime end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from scalems_like.agent import launch
from scalems_like.agent.config import AgentConfig, node_heartbeat_interval
from scalems_like.agent.limits import open_files_needed, raise_open_files_limit
from scalems_like.agent.nodes import discover
from scalems_like.overlay.master import Master
from scalems_like.protocol.curve import warn_insecure
from scalems_like.states import PilotState

log = logging.getLogger("scalems_like.agent")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m scalems_like.agent PILOT_SANDBOX", file=sys.stderr)
        return 2
    sandbox = Path(argv[0])
    logging.basicConfig(
        filename=sandbox / "agent.log", level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = AgentConfig.read(sandbox)
    if config.insecure:
        warn_insecure(f"agent of pilot {config.pilot_uid}")
    nodes = discover(config.cores, config.gpus, config.nodes)
    per_node = config.workers_per_node or nodes[0].cores
    width = max(1, nodes[0].cores // per_node)
    log.info("pilot %s: %d node(s) %s, %d worker(s) per node of %d core(s)", config.pilot_uid, len(nodes),
             [node.name for node in nodes], per_node, width)
    master = Master.open(config, nodes, per_node, width)
    too_low = raise_open_files_limit(open_files_needed(len(nodes)))
    if too_low is not None:  # (the nodes beyond it would never join: say so where the user looks)
        log.error("%s", too_low)
        master.record("agent", master.host, "limit", "", too_low)
    address = master.bind_workers()
    log.info("workers connect to %s (%s)", address, "INSECURE" if config.insecure else "CurveZMQ")
    environment = {
        **os.environ,
        "SCALEMS_HEARTBEAT_INTERVAL": str(node_heartbeat_interval(config, len(nodes))),
        "SCALEMS_HEARTBEAT_TIMEOUT": str(config.heartbeat_timeout),
        "SCALEMS_MPI_LAUNCHER": config.mpi_launcher,
        "SCALEMS_PILOT_SANDBOX": str(sandbox),
        "SCALEMS_INSECURE": "1" if config.insecure else "0",
        "SCALEMS_AGENT_PID": str(os.getpid()),
    }
    prefix = f"{config.pilot_uid}.worker"
    master.start_workers(launch.WorkerLauncher(config.launch_method, nodes, per_node, width, address, prefix,
                                               sandbox / "workers", environment, config.ssh_command))
    signal.signal(signal.SIGTERM, lambda *_: master.request_stop(
        PilotState.FAILED, "the agent received SIGTERM: its batch job was canceled (scancel, qdel) or killed by the "
        "batch system (walltime, node failure)"))
    master.connect_client()
    if os.environ.get("SCALEMS_LIKE_PROFILE_AGENT") == "1":  # for benchmarks: PILOT_SANDBOX/agent.prof
        import cProfile

        with cProfile.Profile() as profile:
            state, reason = master.run()
        profile.dump_stats(sandbox / "agent.prof")
    else:
        state, reason = master.run()
    log.info("pilot %s ends %s: %s", config.pilot_uid, state, reason)
    return 0 if state == PilotState.DONE else 1


if __name__ == "__main__":
    sys.exit(main())
