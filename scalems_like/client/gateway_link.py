"""The client's end of a remote session: the gateway on the login node, reached through the session's ssh master.

:class:`GatewayLink` (one per remote resource and session) starts the gateway (:mod:`scalems_like.remote.gateway`:
its sandbox and the client's wheel sent in one transfer, the bootstrap's steps run over ssh), forwards two
sockets through the master (``-L``: the gateway's control socket to one here; ``-R``: a socket on the login node
to the engine's loopback socket, where the gateway relays the agents), and keeps a local mirror of each pilot
sandbox from what the gateway sends (``SESSION_DIRECTORY/mirror/SESSION/PILOT``: the bootstrap feedback, logs and the
agent's journal, read there as a local sandbox is). :class:`GatewayAdapter` is the batch adapter of the
resource: psij runs in the gateway.

Nothing connects to the client: every byte goes over the ssh connection the client opened. Losing it (the master
killed, the network gone) detaches: requests fail with the ssh error, the gateway and the pilots go on, and
:meth:`GatewayLink.attach` (a reattaching client) connects again.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import posixpath
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalems_like.adapters.base import BatchAdapter, JobEvent, JobState, PilotJob
from scalems_like.client import environment
from scalems_like.client.pilot_job import write_bootstrap
from scalems_like.errors import ScalemsError, SubmitError
from scalems_like.paths import make_private_directory, write_private_file
from scalems_like.remote.connection import ControlMaster, session_master, short_link
from scalems_like.remote.gateway import CONFIG_FILE, READY_FILE
from scalems_like.remote.transfer import Item, Transport
from scalems_like.resources import ResourceConfig
from scalems_like.staging.directives import Directive

log = logging.getLogger("scalems_like.remote")

GATEWAY = "gateway"
BOOTSTRAP_TIMEOUT = 1800.0
"""Seconds the gateway's bootstrap may take (building the venv the first time: pip downloads)."""
REQUEST_TIMEOUT = 120.0
LOGIN_SHELL = ["sh", "-c", 'if command -v bash >/dev/null 2>&1; then exec bash -lc "$@"; else exec sh -c "$@"; fi',
               "sh"]
"""Runs a command (and its $0, $1...) in the cluster's login shell (bash -l where there is bash: ``module`` and
the site's variables as a batch job has them), as a pilot's bootstrap runs: the gateway's bootstrap and the
sandbox's expansion."""


class GatewayLink:
    """One remote resource of one session. The constructor does no I/O; :meth:`start` does."""

    def __init__(self, config: ResourceConfig, session_uid: str, session_directory: Path) -> None:
        self.config = config
        self.session_uid = session_uid
        self.session_directory = session_directory
        self.master: ControlMaster | None = None
        self.owned = False
        self.transport: Transport | None = None
        self.remote_root = ""
        """The resource sandbox on the cluster."""
        self.agent_address = ""
        """Where agents connect: the gateway's relay."""
        self.ready: dict[str, Any] = {}
        self.control: socket.socket | None = None
        self.lock = threading.Lock()
        self.numbers = itertools.count(1)
        self.pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self.listeners: dict[str, Callable[[JobEvent], object]] = {}
        self.forwards: list[tuple[str, str]] = []
        self.local_control = ""
        self.sent_wheels: set[str] = set()
        """This side's end of the control socket's forward (removed on detach)."""
        self.leaving = False
        """This client detaches (the connection's end is not a loss)."""
        self.lost = False
        """The connection to the gateway ended under this client (the master killed, the network gone)."""
        self.adapter = GatewayAdapter(self)

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def remote_session(self) -> str:
        return posixpath.join(self.remote_root, self.session_uid)

    @property
    def staging(self) -> Path:
        """The local staging copy of the resource sandbox (what goes to the cluster is written here first)."""
        return self.session_directory / "staging" / self.config.name

    def mirror(self, pilot_uid: str) -> Path:
        """The local mirror of a pilot sandbox (what ``Pilot.sandbox`` is for a remote pilot)."""
        return self.session_directory / "mirror" / self.session_uid / pilot_uid

    def remote_sandbox(self, pilot_uid: str) -> str:
        return posixpath.join(self.remote_session, pilot_uid)

    # -- life ----------------------------------------------------------------------------------------
    def start(self, engine_address: str, pilots: Sequence[str] = ()) -> None:
        """Connect, start the gateway (or find it running: a reattach), and attach to it; the mirrors of
        ``pilots`` (those of a reattached session) are brought up to date before this returns."""
        self.master, self.owned = session_master(self.config, self.session_directory)
        self.master.open()
        self.transport = Transport(self.master, self.config.transfer)
        self.remote_root = self.resolve(self.config.sandbox)
        ready = self.master.run(["cat", posixpath.join(self.remote_session, GATEWAY, READY_FILE)])
        alive = ready.exit_code == 0 and self.master.run(
            ["kill", "-0", str(json.loads(ready.stdout)["pid"])]).exit_code == 0
        self.ready = json.loads(ready.stdout) if alive else self.start_gateway()
        self.agent_address = str(self.ready["address"])
        self.attach(engine_address)
        for pilot in pilots:
            self.watch(pilot)

    def resolve(self, sandbox: str) -> str:
        """The resource's sandbox on the cluster: ``~``, ``{data_dir}`` (``~/.local/share/scalems_like``) and
        ``$VARIABLES`` (``$SCRATCH``) as the cluster's login shell has them."""
        assert self.master is not None
        text = sandbox.replace("{data_dir}", "$HOME/.local/share/scalems_like")
        if text == "~" or text.startswith("~/"):
            text = "$HOME" + text[1:]
        result = self.master.run([*LOGIN_SHELL, 'eval "printf %s \\"$1\\""', "sh", text])
        expanded = result.stdout.decode(errors="replace").splitlines()[-1:] if result.exit_code == 0 else []
        if not expanded or not posixpath.isabs(expanded[0]):
            raise ScalemsError(f"resource config {self.config.name!r}: sandbox = {sandbox!r} is "
                               f"{(expanded or ['nothing'])[0]!r} on the cluster: expected an absolute path "
                               f"{result.stderr.decode(errors='replace').strip()}".rstrip())
        return posixpath.normpath(expanded[0])

    def start_gateway(self) -> dict[str, Any]:
        """Write the gateway's sandbox here, send it and the wheel in one transfer, run its bootstrap."""
        assert self.master is not None and self.transport is not None
        local = make_private_directory(self.staging / self.session_uid / GATEWAY)
        remote = posixpath.join(self.remote_session, GATEWAY)
        spec = environment.parse(None, self.config)
        write_bootstrap(local, session_uid=self.session_uid, uid=GATEWAY, spec=spec, resource=self.config,
                        remote=Path(remote), role="gateway")
        settings = {"scheduler": self.config.scheduler, "polling": self.config.status_polling_interval,
                    "listen": self.config.client_address, "idle": self.config.client_grace_period}
        write_private_file(local / CONFIG_FILE, json.dumps(settings))
        self.send_items([Item(local, remote)])
        log.info("resource %s: starting the session's gateway on %s (its environment is built there the first "
                 "time: this can take minutes)", self.config.name, self.master.destination)
        script = posixpath.join(remote, "bootstrap.sh")
        started = self.master.run([*LOGIN_SHELL, 'exec sh "$1" "$2"', "sh", script, remote], timeout=BOOTSTRAP_TIMEOUT)
        lines = started.stdout.decode(errors="replace").strip().splitlines()
        if started.exit_code != 0 or not lines:
            raise ScalemsError(f"resource {self.config.name!r} ({self.master.destination}): the gateway did not "
                               f"start: {self.explain_bootstrap(remote, started.stderr)}")
        return dict(json.loads(lines[-1]))

    def send_pilot(self, pilot_uid: str) -> None:
        """A rendered pilot's staging copy to the cluster (with the wheel its bootstrap installs)."""
        self.send_items([Item(self.staging / self.session_uid / pilot_uid, self.remote_sandbox(pilot_uid))])

    def send_items(self, items: list[Item]) -> None:
        """Staging copies to the cluster, with a wheel staged since the last (once per client version)."""
        assert self.transport is not None
        wheels = sorted((self.staging / "wheels").glob("*.whl"))
        new = [wheel for wheel in wheels if wheel.name not in self.sent_wheels]
        self.transport.upload([*items, *(Item(wheel, posixpath.join(self.remote_root, "wheels", wheel.name))
                                         for wheel in new)])
        self.sent_wheels.update(wheel.name for wheel in new)

    def explain_bootstrap(self, remote: str, stderr: bytes) -> str:
        """Which bootstrap step of the gateway failed, and the end of its output (read over ssh)."""
        assert self.master is not None
        events = self.master.run(["cat", posixpath.join(remote, "bootstrap", "events")]).stdout.decode()
        failed = [line.split("\t") for line in events.splitlines() if line.split("\t")[2:3] == ["failed"]]
        if not failed:
            return stderr.decode(errors="replace").strip() or "it printed nothing"
        step, code = failed[-1][1], failed[-1][3]
        tail = self.master.run(["tail", "-n", "20", posixpath.join(remote, "bootstrap", f"{step}.log")])
        return (f"bootstrap step '{step}' failed with exit code {code}; its output ends with:\n"
                f"{tail.stdout.decode(errors='replace').rstrip()}")

    def attach(self, engine_address: str) -> None:
        """Forward the gateway's control socket here and a socket there to ``engine_address`` (tcp://IP:PORT on
        loopback), and have the gateway relay the agents to it."""
        assert self.master is not None
        number = os.urandom(4).hex()  # (a socket a lost connection left behind keeps its name: never reused)
        local = str(short_link(self.master.directory) / f"g{number}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local)
        self.add_forward("-L", f"{local}:{self.ready['control']}")
        self.local_control = local
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.connect(local)
        self.control = control
        threading.Thread(target=self.read, args=(control,), name="gateway-link", daemon=True).start()
        relay = posixpath.join(str(self.ready["runtime"]), f"c{number}")
        host_port = engine_address.removeprefix("tcp://")
        self.add_forward("-R", f"{relay}:{host_port}")
        self.request({"op": "relay", "path": relay})

    def add_forward(self, kind: str, spec: str) -> None:
        assert self.master is not None
        self.master.forward(kind, spec)
        self.forwards.append((kind, spec))

    def detach(self) -> None:
        """Leave the gateway running (the pilots go on); close what this client holds."""
        self.leaving = True
        with self.lock:
            control, self.control = self.control, None
        if control is not None:
            with contextlib.suppress(OSError):
                control.shutdown(socket.SHUT_RDWR)
            control.close()
        if self.master is not None:
            if self.master.check():
                for kind, spec in self.forwards:
                    self.master.forward(kind, spec, cancel=True)
            self.forwards.clear()
            if self.owned:
                self.master.close()
        if self.local_control:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.local_control)

    def close(self) -> None:
        """Bring the mirrors up to date a last time, stop the gateway (its pilots have ended), then detach."""
        if self.control is not None:
            mirrors = self.session_directory / "mirror" / self.session_uid
            with contextlib.suppress(ScalemsError):
                for pilot in sorted(path.name for path in mirrors.iterdir()) if mirrors.is_dir() else []:
                    self.watch(pilot)
                self.request({"op": "stop"}, timeout=30)
        self.detach()

    # -- requests and what the gateway sends -----------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        """Send a request, wait for its answer; ScalemsError if the gateway is not reachable or says no."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self.lock:
            control = self.control
            if control is None:
                raise ScalemsError(f"resource {self.config.name!r}: not connected to the gateway (detached)")
            number = next(self.numbers)
            self.pending[number] = future
            try:
                control.sendall(json.dumps({**message, "id": number}).encode() + b"\n")
            except OSError as error:
                self.pending.pop(number, None)
                raise ScalemsError(f"resource {self.config.name!r}: the gateway's connection is lost: {error}") \
                    from None
        try:
            answer = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ScalemsError(f"resource {self.config.name!r}: the gateway did not answer {message['op']!r} "
                               f"within {timeout:g} s") from None
        if "error" in answer:
            raise ScalemsError(f"resource {self.config.name!r}: the gateway: {answer['error']}")
        return answer

    def read(self, control: socket.socket) -> None:
        """(its own thread) what the gateway sends, until the connection ends."""
        with contextlib.suppress(OSError), control.makefile("rb") as lines:
            for line in lines:
                self.dispatch(json.loads(line))
        with self.lock:
            pending, self.pending = self.pending, {}
            if self.control is control:
                self.control = None
            if not self.leaving:
                self.lost = True
                log.warning("resource %s: the connection to the gateway was lost: the session is detached from "
                            "its pilots there (they run on; `scalems-like reattach %s` collects what they do)",
                            self.config.name, self.session_uid)
        for future in pending.values():
            future.set_exception(ScalemsError(f"resource {self.config.name!r}: the connection to the gateway "
                                              "was lost"))

    def dispatch(self, message: dict[str, Any]) -> None:
        if "reply" in message:
            with self.lock:
                future = self.pending.pop(message["reply"], None)
            if future is not None:
                future.set_result(message)
        elif message.get("event") == "job":
            listener = self.listeners.get(str(message["native_id"]))
            if listener is not None:
                listener(JobEvent(JobState(message["state"]), float(message["time"]), message["exit_code"],
                                  message["message"]))
        elif message.get("event") == "file":
            self.mirror_write(message)

    def mirror_write(self, message: dict[str, Any]) -> None:
        """Bytes of a followed file into the mirror, at their offset (cut there first: the file was rewritten)."""
        target = self.mirror(str(message["pilot"])) / str(message["name"])
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        offset = int(message["offset"])
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "r+b") as handle:
            if message.get("truncate"):
                handle.truncate(offset)
            handle.seek(offset)
            handle.write(base64.b64decode(message["data"]))
        mtime = int(message["mtime"])
        os.utime(target, ns=(mtime, mtime))

    # -- pilots --------------------------------------------------------------------------------------
    def watch(self, pilot_uid: str) -> None:
        """Have the gateway send a pilot sandbox's followed files, from where the mirror ends."""
        mirror = self.mirror(pilot_uid)
        offsets = {str(path.relative_to(mirror)): path.stat().st_size
                   for path in mirror.rglob("*") if path.is_file()} if mirror.is_dir() else {}
        self.request({"op": "watch", "pilot": pilot_uid, "sandbox": self.remote_sandbox(pilot_uid),
                      "offsets": offsets})

    def write(self, pilot_uid: str, name: str, data: bytes) -> None:
        """Write a file into a pilot sandbox on the cluster (and into its mirror)."""
        write_private_file(make_private_directory(self.mirror(pilot_uid)) / name, data)
        self.request({"op": "write", "path": posixpath.join(self.remote_sandbox(pilot_uid), name),
                      "data": base64.b64encode(data).decode()})

    def read_head(self, path: str, limit: int) -> tuple[bytes, int] | None:
        """The first ``limit`` bytes of a file on the cluster and its size (None if it cannot be read)."""
        assert self.master is not None
        result = self.master.run(["sh", "-c", 'stat -c %s "$1" && head -c "$2" "$1"', "sh", path, str(limit)])
        if result.exit_code != 0:
            return None
        size, _, head = result.stdout.partition(b"\n")
        return head, int(size)

    def stage(self, directives: Sequence[Directive], client_root: Path, pilot_uid: str | None = None) -> list[str]:
        """Directives between client:// and the cluster's scopes (a pilot's, with ``pilot_uid``), in one
        transfer per kind."""
        assert self.transport is not None
        roots = {"session": self.remote_session, "resource": self.remote_root}
        if pilot_uid is not None:
            roots["pilot"] = self.remote_sandbox(pilot_uid)
        return self.transport.stage(directives, client_root, roots)


class GatewayAdapter(BatchAdapter):
    """The batch adapter of a remote resource: psij runs in the gateway (same contract as the psij adapter)."""

    def __init__(self, link: GatewayLink) -> None:
        self.link = link

    @property
    def reachable(self) -> bool:
        return not self.link.lost

    def submit(self, job: PilotJob, on_event: Callable[[JobEvent], object]) -> str:
        fields = {key: (str(value) if isinstance(value, Path) else value)
                  for key, value in dataclasses.asdict(job).items()}
        fields["custom_attributes"] = dict(job.custom_attributes)
        fields["environment"] = dict(job.environment)
        try:
            answer = self.link.request({"op": "submit", "pilot": job.directory.name, "job": fields})
        except ScalemsError as error:
            raise SubmitError(str(error), transient=True) from None
        native_id = str(answer["native_id"])
        self.link.listeners[native_id] = on_event
        self.link.request({"op": "attach", "native_id": native_id})  # events psij sent before the id was known
        return native_id

    def attach(self, native_id: str, on_event: Callable[[JobEvent], object]) -> bool:
        self.link.listeners[native_id] = on_event
        return bool(self.link.request({"op": "attach", "native_id": native_id})["known"])

    def cancel(self, native_id: str) -> None:
        self.link.request({"op": "cancel", "native_id": native_id})
