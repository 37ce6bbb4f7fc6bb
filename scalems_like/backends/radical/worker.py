"""The raptor worker class of the ``radical`` backend (loaded by RP's ``radical-pilot-raptor-worker`` from this
file: ``raptor_file``/``raptor_class``).

RP 1.103.2's ``DefaultWorker`` connects to its master's request queue in ``__init__`` before it has made the lock
and the resource table its request callback uses: requests already queued (function tasks submitted with the
worker, as a workflow does) reach the callback first, which raises ``AttributeError: ... '_rlock'`` and kills the
listener, and the tasks never run. This worker holds requests back until its ``__init__`` is done.
"""

from __future__ import annotations

import threading
from typing import Any

from radical.pilot.raptor import DefaultWorker


class ScalemsWorker(DefaultWorker):  # type: ignore[misc]  # (RP has no type hints)
    def __init__(self, raptor_id: str) -> None:
        self._initialised = threading.Event()
        super().__init__(raptor_id)
        self._initialised.set()

    def _request_cb(self, tasks: Any) -> Any:
        self._initialised.wait()
        return super()._request_cb(tasks)
