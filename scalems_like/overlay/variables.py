"""What the agent tells a node manager or a worker in environment variables, read in one place.

``SCALEMS_PILOT_SANDBOX`` (where the agent's keys are), ``SCALEMS_INSECURE``, ``SCALEMS_HEARTBEAT_INTERVAL`` and
``SCALEMS_HEARTBEAT_TIMEOUT``, ``SCALEMS_NODE``; a launcher's rank (srun, mpiexec) is appended to the uid, and the
node is SLURM's node name, ``SCALEMS_NODE`` or this host's name.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from pathlib import Path

from scalems_like.errors import ConfigError
from scalems_like.protocol.curve import AgentKeys

RANK_VARIABLES = ("SLURM_PROCID", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclasses.dataclass(frozen=True)
class AgentVariables:
    uid: str
    node: str
    heartbeat_interval: float
    heartbeat_timeout: float
    keys: AgentKeys | None
    """The agent's CurveZMQ keys (None: the pilot is insecure)."""

    @classmethod
    def read(cls, uid: str, environ: Mapping[str, str], who: str) -> AgentVariables:
        """The variables of ``environ`` for ``who`` (named in the error when the keys cannot be found)."""
        insecure = environ.get("SCALEMS_INSECURE") == "1"
        if not insecure and "SCALEMS_PILOT_SANDBOX" not in environ:
            raise ConfigError(f"SCALEMS_PILOT_SANDBOX is not set: {who} cannot find the agent's keys")
        rank = next((environ[name] for name in RANK_VARIABLES if name in environ), None)
        return cls(
            uid if rank is None else f"{uid}.{rank.zfill(4)}",
            environ.get("SLURMD_NODENAME") or environ.get("SCALEMS_NODE") or socket.gethostname(),
            heartbeat_interval=float(environ.get("SCALEMS_HEARTBEAT_INTERVAL", "1")),
            heartbeat_timeout=float(environ.get("SCALEMS_HEARTBEAT_TIMEOUT", "10")),
            keys=None if insecure else AgentKeys.read(Path(environ["SCALEMS_PILOT_SANDBOX"])),
        )
