"""One OpenSSH ControlMaster per session (or per ``scalems-like login``): every remote command and transfer goes
through it, so that the user authenticates once (keys, agent, password or MFA, ProxyJump: as ``~/.ssh/config``
says) and nothing else ever opens a connection or waits on a prompt.

The system's ``ssh`` does the work: ``ssh -M -S SOCKET -o ControlPersist=yes -N DESTINATION`` opens the master
(it goes to the background once authenticated); ``ssh -S SOCKET -O check|exit`` asks it whether it runs and
stops it; commands, rsync and sftp run as its multiplexed clients with ``ControlMaster=no``, ``BatchMode=yes``
and ``ProxyCommand=false``: a client whose master is gone fails at once instead of opening a connection of its
own (or asking for a password).

The control socket lives in a 0700 directory of its owner (the session directory, or the user's data directory
for a login); since a unix socket's path is limited to 108 bytes (104 on macOS, and ssh adds 17 while creating
it), ssh is given a short path to it: ``/tmp/scalems-like-UID/HASH/m``, where ``HASH`` (12 hex digits of the
directory's path) is a symlink to that directory, in a 0700 directory of the user.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import select
import shlex
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from scalems_like import paths
from scalems_like.errors import CommandError, ConfigError
from scalems_like.remote.diagnosis import Failure, Peer, classify, explain
from scalems_like.resources import ResourceConfig

SOCKET_NAME = "m"
SHORT_ROOT = Path("/tmp")
MASTER_LOG = "master.log"
DEFAULTS = {"connecttimeout": ("none", "ConnectTimeout=30"),
            "serveraliveinterval": ("0", "ServerAliveInterval=15")}
"""ssh settings the master gets when neither the resource's ssh_options nor ~/.ssh/config set them."""


@dataclasses.dataclass(frozen=True)
class RemoteResult:
    """What a remote command did: its argv, exit code and output (bytes)."""

    argv: list[str]
    exit_code: int
    stdout: bytes
    stderr: bytes

    def check(self) -> RemoteResult:
        """This result, or :class:`CommandError` if the command exited non-zero."""
        if self.exit_code != 0:
            raise CommandError(self.argv, self.exit_code, self.stdout.decode(errors="replace"),
                               self.stderr.decode(errors="replace"))
        return self


def short_link(directory: Path, *, make: bool = True) -> Path:
    """A short path that reaches ``directory``: ``/tmp/scalems-like-UID/HASH``, a symlink (made if missing and
    ``make``; only the path otherwise).

    ``/tmp/scalems-like-UID`` must be a directory of this user that nobody else can enter (it is made so).
    """
    root = SHORT_ROOT / f"scalems-like-{os.getuid()}"
    if not make:
        return root / hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]
    root.mkdir(mode=0o700, exist_ok=True)
    status = root.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ConfigError(f"{root}: expected a directory of user {os.getuid()} with mode 0700 (it holds the "
                          "links to ssh control sockets); remove it, it is made again")
    target = directory.resolve()
    link = root / hashlib.sha256(str(target).encode()).hexdigest()[:12]
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        temporary = root / f".{link.name}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        os.replace(temporary, link)
    return link


class ControlMaster:
    """The ssh connection of one session (or one ``login``) to ``destination``, held by an OpenSSH master.

    ``directory`` (made 0700) holds the control socket and the master's log. The constructor does no I/O;
    :meth:`open` connects (or finds the master already open, e.g. by ``scalems-like login``), :meth:`run` runs
    a command through it, :meth:`close` stops it.
    """

    def __init__(self, resource: str, destination: str, directory: Path, options: Sequence[str] = (), *,
                 persist: str = "yes") -> None:
        self.directory = directory
        self.options = tuple(options)
        self.persist = persist
        self.peer = Peer(resource, destination)

    @classmethod
    def for_resource(cls, config: ResourceConfig, directory: Path) -> ControlMaster:
        """The connection to a resource config's ``login``, with its ``ssh_options``."""
        if not config.login:
            raise ConfigError(f"resource config {config.name!r}: login is not set: the resource is not remote")
        return cls(config.name, config.login, directory, config.ssh_options)

    @property
    def destination(self) -> str:
        return self.peer.destination

    @property
    def socket(self) -> Path:
        """The control socket, by its short path (the file itself is in :attr:`directory`); the short link is
        made by :meth:`open`, and again when it went (a cleaner of /tmp) while the socket is there."""
        return short_link(self.directory, make=(self.directory / SOCKET_NAME).exists()) / SOCKET_NAME

    def option_arguments(self) -> list[str]:
        return [argument for option in self.options for argument in ("-o", option)]

    def client_options(self) -> list[str]:
        """ssh options of a multiplexed client: through the master only, never a prompt, never a connection of
        its own (``ProxyCommand=false``: if the master is gone, the client fails at once); no terminal and no
        ``RemoteCommand`` from ~/.ssh/config (the command is scalems_like's)."""
        return ["-o", f"ControlPath={self.socket}", "-o", "ControlMaster=no", "-o", "BatchMode=yes",
                "-o", "ProxyCommand=false", "-o", "RequestTTY=no", "-o", "RemoteCommand=none"]

    def ssh_command(self) -> list[str]:
        """``ssh`` as a multiplexed client, ready for a destination and a command (rsync's ``-e`` takes it)."""
        return ["ssh", *self.client_options()]

    def _control(self, operation: str, timeout: float = 30.0,
                 extra: Sequence[str] = ()) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ssh", "-S", str(self.socket), "-O", operation, *extra, "--", self.destination],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def check(self) -> bool:
        """True while the master runs (``ssh -O check``)."""
        if not self.directory.is_dir():
            return False
        return self._control("check").returncode == 0

    def master_pid(self) -> int | None:
        """The master's process id, or None when it does not run."""
        if not self.directory.is_dir():
            return None
        found = re.search(rb"pid=(\d+)", self._control("check").stderr)
        return int(found.group(1)) if found else None

    def _settings(self) -> dict[str, str]:
        """ssh's own view of the destination with the resource's options and ~/.ssh/config (``ssh -G``)."""
        completed = subprocess.run(["ssh", "-G", *self.option_arguments(), "--", self.destination],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if completed.returncode != 0:
            raise explain(self.peer, completed.stderr, "reading the ssh configuration", Failure.FAILED)
        settings: dict[str, str] = {}
        for line in completed.stdout.decode(errors="replace").splitlines():
            key, _, value = line.partition(" ")
            settings.setdefault(key.lower(), value)
        return settings

    def master_command(self, *, interactive: bool) -> list[str]:
        """The argv that opens the master. Unknown host keys are refused: ``StrictHostKeyChecking=yes`` unless
        the resource's ssh_options or ~/.ssh/config set it (ssh's default, ``ask``, is made ``yes``)."""
        settings = self._settings()
        self.peer = dataclasses.replace(
            self.peer, hostname=settings.get("hostname", self.destination), port=int(settings.get("port", "22")),
            known_hosts=settings.get("userknownhostsfile", "~/.ssh/known_hosts").split()[0])
        extra = [] if interactive else ["-o", "BatchMode=yes"]
        if settings.get("stricthostkeychecking", "ask") == "ask":
            extra += ["-o", "StrictHostKeyChecking=yes"]
        for key, (default, option) in DEFAULTS.items():
            if settings.get(key, default) == default:
                extra += ["-o", option]
        return ["ssh", "-M", "-S", str(self.socket), "-o", f"ControlPersist={self.persist}", "-N",
                *self.option_arguments(), *extra, "--", self.destination]

    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        short_link(self.directory)
        if self.socket.exists() and not self.check():
            self.socket.unlink()  # a master that died (killed, network lost) leaves its socket behind

    def open(self, *, interactive: bool = False, timeout: float = 60.0) -> bool:
        """Connect, unless a master already runs on this socket; returns True if it opened one.

        ``interactive``: ssh may ask on the terminal (password, MFA), with no time limit; otherwise
        ``BatchMode=yes``, stdin is /dev/null, and it gives up after ``timeout`` seconds. Raises
        :class:`~scalems_like.errors.SshError` with ssh's own message.
        """
        self._prepare()
        if self.check():
            return False
        try:
            self._connect(interactive, timeout)
        except BaseException:
            self._forget()
            raise
        return True

    def _connect(self, interactive: bool, timeout: float) -> None:
        argv = self.master_command(interactive=interactive)
        log = self.directory / MASTER_LOG
        # a file, not a pipe: the master forking into the background may hold it open after ssh returned
        with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as stderr:
            try:
                completed = subprocess.run(argv, stdin=None if interactive else subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=None if interactive else stderr,
                                           timeout=None if interactive else timeout)
            except subprocess.TimeoutExpired:
                raise explain(self.peer, log.read_bytes(), f"connecting (no answer in {timeout:g} s)",
                              Failure.TIMEOUT) from None
        if completed.returncode != 0 or not self.check():
            raise explain(self.peer, log.read_bytes() or b"see the messages above", "opening the connection")

    def _forget(self) -> None:
        """No master here: its socket file (left by one killed) and the short link go."""
        (self.directory / SOCKET_NAME).unlink(missing_ok=True)
        self.socket.parent.unlink(missing_ok=True)

    def run(self, argv: Sequence[str], *, stdin: bytes = b"", timeout: float = 60.0) -> RemoteResult:
        """Run ``argv`` on the remote host through the master (quoted for its POSIX shell); ``stdin`` is fed to
        it. A remote command that fails returns its exit code; a connection that fails raises SshError."""
        command = shlex.join(argv)
        full = [*self.ssh_command(), "--", self.destination, command]
        try:
            completed = subprocess.run(full, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise explain(self.peer, b"", f"running {command!r} (no end in {timeout:g} s)",
                          Failure.TIMEOUT) from None
        if completed.returncode == 255 and classify(completed.stderr) is not Failure.FAILED:
            raise self.failure(completed.stderr, f"running {command!r}")
        return RemoteResult(list(argv), completed.returncode, completed.stdout, completed.stderr)

    def forward(self, kind: str, spec: str, *, cancel: bool = False) -> None:
        """Add (or ``cancel``) a forward on the open master: ``kind`` "-L" (a local socket to one on the remote
        host) or "-R" (a remote socket to one here), ``spec`` as ssh takes it (``PATH:PATH``,
        ``PATH:HOST:PORT``). Raises SshError with ssh's message if the master refuses it."""
        completed = self._control("cancel" if cancel else "forward", extra=[kind, spec])
        if completed.returncode != 0 and not cancel:
            raise self.failure(completed.stderr, f"forwarding {kind} {spec}")

    def failure(self, output: bytes, doing: str) -> Exception:
        """The SshError for ``output`` of a client of this master; a master that went away under it (killed,
        network lost) makes it a lost connection."""
        kind = classify(output)
        if kind in (Failure.CONNECTION_LOST, Failure.FAILED) and not self.check():
            kind = Failure.CONNECTION_LOST
        return explain(self.peer, output, doing, kind)

    def require_python(self, interpreter: str = "python3") -> str:
        """The version of ``interpreter`` on the remote host ("3.11.2"); SshError if it is missing or older
        than 3.10 (what scalems_like needs)."""
        probe = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
        result = self.run([interpreter, "-c", probe])
        version = result.stdout.decode(errors="replace").strip()
        if result.exit_code != 0:
            raise explain(self.peer, result.stderr, f"running {interpreter}", Failure.NO_PYTHON)
        if tuple(int(part) for part in version.split(".")[:2]) < (3, 10):
            raise explain(self.peer, f"{interpreter} is Python {version}; scalems_like needs 3.10 or newer",
                          f"running {interpreter}", Failure.NO_PYTHON)
        return version

    def close(self, timeout: float = 10.0) -> None:
        """Stop the master (``ssh -O exit``) if it runs, and wait (up to ``timeout`` seconds) until its process
        has ended; the socket goes with it."""
        pid = self.master_pid()
        if pid is not None:
            self._control("exit")
            wait_for_exit(pid, timeout)
        if self.directory.is_dir():
            self._forget()


def wait_for_exit(pid: int, timeout: float) -> None:
    """Block until process ``pid`` (not a child of ours) has ended, or ``timeout`` passed: a pidfd becomes
    readable when it ends (Linux 5.3 and later; elsewhere this returns at once)."""
    if not hasattr(os, "pidfd_open"):
        return
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([descriptor], [], [], timeout)
    finally:
        os.close(descriptor)

def login_master(config: ResourceConfig) -> ControlMaster:
    """The connection ``scalems-like login RESOURCE`` opens: its socket is in the user's data directory
    (``ssh/RESOURCE``), where every later command of the user finds it."""
    return ControlMaster.for_resource(config, paths.user_data_dir() / "ssh" / config.name)


def session_master(config: ResourceConfig, session_directory: Path) -> tuple[ControlMaster, bool]:
    """The connection a session uses, and whether the session owns it (and closes it at its end): the login's
    master when it runs, otherwise one of its own (``SESSION_DIRECTORY/ssh``), opened with BatchMode by
    :meth:`ControlMaster.open`."""
    login = login_master(config)
    if login.check():
        return login, False
    return ControlMaster.for_resource(config, session_directory / "ssh"), True
