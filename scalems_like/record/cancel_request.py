"""``scalems-like cancel`` of a session a live client holds: a request that client carries out itself.

The command writes ``DATA_DIR/sessions/UID/cancel.request`` (who asked, and when; atomically, ``0600``). The
session's engine looks for it every :data:`LOOK_INTERVAL` s and, on a request made after the engine started,
cancels as ``Session.close`` would on an error: tasks waiting on the client end CANCELED, every live pilot's
agent is told to stop (its tasks end CANCELED) or its batch job canceled, and each pilot ends CANCELED with the
reason naming who asked — not FAILED under the batch system's SIGTERM, as when the command canceled the jobs
behind the client's back. A request older than the engine (its client died before it looked) means nothing to a
later reattach or resume.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from scalems_like import paths

FILE_NAME = "cancel.request"
LOOK_INTERVAL = 0.5
"""Seconds between the engine's looks for a request (one ``stat`` each)."""


@dataclass(frozen=True)
class CancelRequest:
    by: str
    """Who asked: the command, its pid and host."""
    time: float

    @property
    def reason(self) -> str:
        return f"canceled by {self.by}"


def request_cancel(uid: str, command: str = "`scalems-like cancel`") -> CancelRequest:
    """Ask session ``uid``'s live client to cancel its tasks and pilots (see the module)."""
    request = CancelRequest(f"{command} (pid {os.getpid()} on {socket.gethostname()})", time.time())
    paths.write_private_file(paths.user_data_dir() / "sessions" / uid / FILE_NAME,
                             json.dumps({"by": request.by, "time": request.time}) + "\n")
    return request


def read_request(uid: str, since: float) -> CancelRequest | None:
    """The request for session ``uid`` made at ``since`` or later; None if there is none (or it is unreadable)."""
    try:
        fields = json.loads((paths.user_data_dir() / "sessions" / uid / FILE_NAME).read_text())
        request = CancelRequest(str(fields["by"]), float(fields["time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return request if request.time >= since else None
