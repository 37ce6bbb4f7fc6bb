"""A remote session's gateway on the login node: ``python -m scalems_like.remote.gateway SANDBOX``.

Started by the client over its ssh connection (the bootstrap's steps in ``SANDBOX``, the session's
``gateway`` directory, build or reuse the venv, then exec this), it

- prints one JSON line (its agents' address, its control socket, its pid), then leaves ssh and runs on in the
  background (its log: ``SANDBOX/gateway.log``; ``SANDBOX/gateway.ready`` holds that line for a client that
  reattaches);
- relays the agents' connections to the client (:mod:`scalems_like.remote.relay`; CurveZMQ end to end);
- answers the client's requests on its control socket (a unix socket in a 0700 directory of the user, reached by
  the client through ``ssh -O forward -L``), JSON lines: ``submit`` a rendered pilot job with psij here,
  ``cancel`` it, ``attach`` to one it submitted, ``watch`` a pilot sandbox, ``relay`` to a newly forwarded
  socket, ``write`` a file (``client.json`` of a reattached client), ``stop``;
- tells the client each job state change and every byte appended to the files it follows in the pilot
  sandboxes (:data:`WATCHED`: bootstrap feedback, logs, the agent's journal), from the offsets the client says it
  has: the client keeps a local mirror of each sandbox, and reads it as it reads a local one.

While no client is attached (the laptop slept, the connection dropped), the jobs run on and the gateway keeps
their last states; the client that attaches next gets them, and the files from where its mirror ends.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalems_like.adapters.base import JobEvent, JobState, PilotJob
from scalems_like.adapters.psij_adapter import PsijAdapter
from scalems_like.errors import SubmitError
from scalems_like.remote.relay import Relay

log = logging.getLogger("scalems_like.remote.gateway")

CONFIG_FILE = "gateway.json"
READY_FILE = "gateway.ready"
LOG_FILE = "gateway.log"
WATCH_INTERVAL = 0.5
"""Seconds between two looks at the followed files (an Event wait: a stop ends it at once)."""
WATCHED = ("bootstrap/events", "bootstrap/sandbox.log", "bootstrap/hooks.log", "bootstrap/environment.log",
           "bootstrap/agent.log", "agent.log", "job.out", "job.err", "agent.journal", "agent.alive", "agent.stopped")
"""Files of a pilot sandbox the client mirrors (relative to the sandbox)."""


class Gateway:
    """The gateway's state: jobs, followed sandboxes, the attached client (one at a time)."""

    def __init__(self, sandbox: Path, settings: dict[str, Any], relay: Relay) -> None:
        self.sandbox = sandbox
        self.session_sandbox = sandbox.parent
        self.adapter = PsijAdapter(str(settings["scheduler"]), sandbox / "batch", float(settings["polling"]))
        self.relay = relay
        self.idle = float(settings["idle"])
        """Seconds without a client and without a running job after which the gateway stops."""
        self.lock = threading.Lock()
        self.sending = threading.Lock()
        """Held while a file's new bytes are read and sent (see :meth:`send_new`)."""
        self.jobs: dict[str, dict[str, Any]] = {}
        """native id → the last job event (as sent)."""
        self.submitted: set[str] = set()
        """The jobs this gateway submitted (psij follows them already)."""
        self.sandboxes: dict[str, Path] = {}
        """pilot uid → its sandbox."""
        self.sent: dict[tuple[str, str], tuple[int, int]] = {}
        """(pilot, file) → (offset, mtime_ns) the attached client has."""
        self.client: socket.socket | None = None
        self.stopping = threading.Event()

    # -- to the client -------------------------------------------------------------------------------
    def tell(self, message: dict[str, Any], client: socket.socket | None = None) -> None:
        with self.lock:
            target = client or self.client
            if target is None:
                return
            try:
                target.sendall(json.dumps(message).encode() + b"\n")
            except OSError:
                if target is self.client:
                    self.client = None

    def on_job_event(self, native_id: str, pilot: str | None = None) -> Callable[[JobEvent], None]:
        def report(event: JobEvent) -> None:
            message = {"event": "job", "native_id": native_id, "state": event.state.value, "time": event.time,
                       "exit_code": event.exit_code, "message": event.message}
            with self.lock:
                self.jobs[native_id] = message
                sandbox = self.sandboxes.get(pilot) if pilot is not None else None
            if event.state.is_final and pilot is not None and sandbox is not None:
                for name in WATCHED:  # what the job left goes first: the client explains its end with it
                    self.send_new(pilot, sandbox, name)
            self.tell(message)
        return report

    # -- requests ------------------------------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        operation = request.get("op")
        handler = getattr(self, f"handle_{operation}", None)
        if not isinstance(operation, str) or handler is None:
            return {"error": f"unknown request op = {operation!r}"}
        result: dict[str, Any] = handler(request)
        return result

    def handle_submit(self, request: dict[str, Any]) -> dict[str, Any]:
        fields = dict(request["job"])
        for key in ("directory", "stdout", "stderr"):
            fields[key] = Path(fields[key])
        fields["arguments"] = tuple(fields["arguments"])
        job = PilotJob(**fields)
        pilot = str(request["pilot"])
        self.follow(pilot, job.directory)
        holder: list[str] = []
        early: list[JobEvent] = []
        order = threading.Lock()

        def report(event: JobEvent) -> None:  # psij may report before submit() returns the id
            with order:
                if not holder:
                    early.append(event)
                    return
            self.on_job_event(holder[0], pilot)(event)
        try:
            native_id = self.adapter.submit(job, report)
        except SubmitError as error:
            return {"error": str(error), "transient": error.transient}
        with order:
            holder.append(native_id)
        with self.lock:
            self.submitted.add(native_id)
        for event in early:
            self.on_job_event(native_id, pilot)(event)
        return {"native_id": native_id}

    def handle_cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        self.adapter.cancel(str(request["native_id"]))
        return {}

    def handle_attach(self, request: dict[str, Any]) -> dict[str, Any]:
        """A reattached client follows a job again: its last state is sent again."""
        native_id = str(request["native_id"])
        with self.lock:
            last = self.jobs.get(native_id)
            mine = native_id in self.submitted
        known = last is not None or mine or self.adapter.attach(native_id, self.on_job_event(native_id))
        if last is not None:
            self.tell(last)
        return {"known": known}

    def handle_watch(self, request: dict[str, Any]) -> dict[str, Any]:
        pilot = str(request["pilot"])
        self.follow(pilot, Path(request["sandbox"]))
        with self.lock:
            for name, offset in dict(request.get("offsets", {})).items():
                self.sent[(pilot, name)] = (int(offset), 0)
        for name in WATCHED:  # all there is now, before the answer: the client reads its mirror once answered
            self.send_new(pilot, Path(request["sandbox"]), name)
        return {}

    def handle_relay(self, request: dict[str, Any]) -> dict[str, Any]:
        self.relay.retarget(str(request["path"]))
        return {}

    def handle_write(self, request: dict[str, Any]) -> dict[str, Any]:
        target = Path(request["path"])
        if not target.resolve().is_relative_to(self.session_sandbox.resolve()):
            return {"error": f"write path = {str(target)!r}: outside the session sandbox {self.session_sandbox}"}
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(base64.b64decode(request["data"]))
        os.replace(temporary, target)
        return {}

    def handle_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stopping.set()
        return {}

    def follow(self, pilot: str, sandbox: Path) -> None:
        with self.lock:
            self.sandboxes[pilot] = sandbox

    # -- the attached client -------------------------------------------------------------------------
    def serve(self, control: socket.socket) -> None:
        """Take clients on ``control``, one at a time (a new one replaces the old); their requests are
        answered in order."""
        while not self.stopping.is_set():
            try:
                client, _ = control.accept()
            except OSError:
                return
            with self.lock:
                old, self.client = self.client, client
                self.sent.clear()  # a new client says what its mirror has (watch)
            if old is not None:
                old.close()
            threading.Thread(target=self.converse, args=(client,), name="control", daemon=True).start()

    def converse(self, client: socket.socket) -> None:
        with client.makefile("rb") as lines:
            for line in lines:
                request: Any = None
                try:
                    request = json.loads(line)
                    answer = self.handle(request)
                except Exception as error:  # a bad request is answered; the gateway goes on
                    log.exception("request %r", line[:200])
                    answer = {"error": f"{type(error).__name__}: {error}"}
                answer["reply"] = request.get("id") if isinstance(request, dict) else None
                self.tell(answer, client)
                if self.stopping.is_set():
                    return
        with self.lock:
            if self.client is client:
                self.client = None

    def watch(self) -> None:
        """Send what the followed files gained since the client's offsets; stop once no client was attached
        and no job ran for the idle time (the session was left for good: its pilots have ended)."""
        idle_since = time.monotonic()
        while not self.stopping.wait(WATCH_INTERVAL):
            with self.lock:
                attached = self.client is not None
                sandboxes = dict(self.sandboxes)
                running = any(not JobState(job["state"]).is_final for job in self.jobs.values())
            if attached or running:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle:
                log.info("no client and no job for %g s: stopping", self.idle)
                self.stopping.set()
            if attached:
                for pilot, sandbox in sandboxes.items():
                    for name in WATCHED:
                        self.send_new(pilot, sandbox, name)

    def send_new(self, pilot: str, sandbox: Path, name: str) -> None:
        """What ``name`` gained since the client's offset (all of it, rewritten, if it shrank). One sender at a
        time (the watcher, a job's end): a chunk read earlier is never sent after a later one."""
        with self.sending:
            try:
                status = os.stat(sandbox / name)
            except OSError:
                return
            with self.lock:
                offset, mtime = self.sent.get((pilot, name), (0, 0))
            if status.st_size == offset and status.st_mtime_ns == mtime:
                return
            rewritten = status.st_size < offset
            if rewritten:
                offset = 0
            with open(sandbox / name, "rb") as handle:
                handle.seek(offset)
                data = handle.read(status.st_size - offset)
            self.tell({"event": "file", "pilot": pilot, "name": name, "offset": offset, "truncate": rewritten,
                       "data": base64.b64encode(data).decode(), "mtime": status.st_mtime_ns})
            with self.lock:
                self.sent[(pilot, name)] = (offset + len(data), status.st_mtime_ns)


def listen(address: str) -> tuple[socket.socket, str]:
    """The agents' listener on ``address`` (an IP, or "hostname": every interface, advertised by name)."""
    listener = socket.create_server(("" if address == "hostname" else address, 0), backlog=128)
    host = socket.gethostname() if address == "hostname" else address
    return listener, f"tcp://{host}:{listener.getsockname()[1]}"


def daemonize(log_path: Path) -> None:
    """Leave the ssh session: a new session, stdio to /dev/null and the log."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    output = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(null)
    os.close(output)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m scalems_like.remote.gateway SANDBOX", file=sys.stderr)
        return 2
    sandbox = Path(argv[0])
    settings = json.loads((sandbox / CONFIG_FILE).read_text())
    runtime = Path(tempfile.mkdtemp(prefix="scalems-gateway-"))  # 0700, and short: a unix socket's path
    listener, address = listen(str(settings["listen"]))
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(runtime / "control"))
    control.listen(4)
    child = os.fork()
    if child:
        ready = json.dumps({"address": address, "control": str(runtime / "control"), "runtime": str(runtime),
                            "pid": child})
        descriptor, temporary = tempfile.mkstemp(dir=sandbox, prefix=f".{READY_FILE}.")
        with os.fdopen(descriptor, "w") as handle:
            handle.write(ready)
        os.replace(temporary, sandbox / READY_FILE)
        print(ready, flush=True)
        return 0
    daemonize(sandbox / LOG_FILE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    relay = Relay(listener)
    gateway = Gateway(sandbox, settings, relay)
    relay.start()
    threading.Thread(target=gateway.watch, name="watch", daemon=True).start()
    threading.Thread(target=gateway.serve, args=(control,), name="serve", daemon=True).start()
    log.info("gateway for %s: agents at %s, control at %s", sandbox.parent.name, address, runtime / "control")
    gateway.stopping.wait()
    log.info("stopping (asked by the client)")
    listener.close()
    control.close()
    for path in runtime.iterdir():
        path.unlink(missing_ok=True)
    runtime.rmdir()
    (sandbox / READY_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
