"""What went wrong on an ssh connection, in one line: read from ssh's (or rsync's, sftp's) own message.

Every :class:`~scalems_like.errors.SshError` is made here, so that each failure reads the same wherever it
is met: ``resource 'NAME' (DESTINATION): WHAT (ssh: SSH'S OWN MESSAGE); WHAT TO DO``.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from scalems_like.errors import SshError


class Failure(enum.Enum):
    """The failures of a remote connection the client tells apart (``SshError.kind`` is the value)."""

    HOST_KEY_UNKNOWN = "host-key-unknown"
    HOST_KEY_CHANGED = "host-key-changed"
    AUTHENTICATION = "authentication"
    UNREACHABLE = "unreachable"
    NOT_CONNECTED = "not-connected"
    CONNECTION_LOST = "connection-lost"
    TIMEOUT = "timeout"
    NO_PYTHON = "no-python"
    DISK_FULL = "disk-full"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Peer:
    """Who the connection is to, for the messages: the resource, the destination and ssh's view of the host."""

    resource: str
    destination: str
    hostname: str = ""
    port: int = 22
    known_hosts: str = "~/.ssh/known_hosts"

    def error(self, failure: Failure, message: str) -> SshError:
        return SshError(self.resource, self.destination, failure.value, message)


# (pattern in ssh's output, failure), first match wins: a lost connection also prints "Broken pipe", etc.
PATTERNS: tuple[tuple[str, Failure], ...] = (
    (r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed", Failure.HOST_KEY_CHANGED),
    (r"host key is known for|Host key verification failed", Failure.HOST_KEY_UNKNOWN),
    (r"Permission denied|Too many authentication failures|Authentication failed", Failure.AUTHENTICATION),
    (r"No space left on device|Disk quota exceeded", Failure.DISK_FULL),
    (r"Could not resolve hostname|Connection refused|Connection timed out|No route to host|Network is unreachable"
     r"|Name or service not known", Failure.UNREACHABLE),
    (r"Control socket connect|Connection closed by UNKNOWN|kex_exchange_identification", Failure.NOT_CONNECTED),
    (r"Broken pipe|Connection reset|Connection closed|connection unexpectedly closed|mux_client|closed by remote"
     r"|Killed by signal|Connection to .* closed|error in rsync protocol data stream", Failure.CONNECTION_LOST),
)

NOISE = re.compile(r"^(Warning: Permanently added|Pseudo-terminal will not be allocated|\*\*|@@)")


def ssh_message(output: bytes | str) -> str:
    """ssh's own message as one line: its lines joined with ``; ``, banners and warnings left out."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    kept = [line for line in lines if line and not NOISE.match(line)]
    return "; ".join(kept[-6:]) or "(ssh said nothing)"


def classify(output: bytes | str) -> Failure:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    for pattern, failure in PATTERNS:
        if re.search(pattern, text):
            return failure
    return Failure.FAILED


def explain(peer: Peer, output: bytes | str, doing: str, failure: Failure | None = None) -> SshError:
    """The error for ``doing`` (e.g. "opening the connection") that failed with ``output`` on stderr."""
    failure = failure or classify(output)
    said = f"(ssh: {ssh_message(output)})"
    host = f"[{peer.hostname}]:{peer.port}" if peer.port != 22 else peer.hostname
    keyscan = f"ssh-keyscan{f' -p {peer.port}' if peer.port != 22 else ''} {peer.hostname}"
    advice = {
        Failure.HOST_KEY_UNKNOWN: f"the host key of {host} is not known, and unknown host keys are refused {said}; "
                                  f"check its fingerprint against the one the site publishes, then add it: "
                                  f"`{keyscan} >> {peer.known_hosts}` (or `ssh {peer.destination}` once, "
                                  "answering yes after checking)",
        Failure.HOST_KEY_CHANGED: f"the host key of {host} is not the one in {peer.known_hosts} {said}; if the "
                                  f"site announced a new key, remove the old one with `ssh-keygen -R {host}` and "
                                  "add the new one; otherwise do not connect",
        Failure.AUTHENTICATION: f"authentication failed while {doing} {said}; load your key into ssh-agent, or "
                                f"open the connection with `scalems-like login {peer.resource}` (password, MFA)",
        Failure.UNREACHABLE: f"the host cannot be reached while {doing} {said}",
        Failure.NOT_CONNECTED: f"no open ssh connection while {doing} {said}; open it with "
                               f"`scalems-like login {peer.resource}` or reopen the session",
        Failure.CONNECTION_LOST: f"the ssh connection was lost while {doing} {said}; what was transferred before "
                                 "stays, run it again to send the rest",
        Failure.DISK_FULL: f"the remote disk is full while {doing} {said}; free space (or raise the quota) and "
                           "run it again: what was transferred before stays",
        Failure.TIMEOUT: f"no answer while {doing} {said}",
        Failure.NO_PYTHON: f"no usable Python on the remote host {said}; load it in pre_bootstrap "
                           "(`module load python`) or name it in the resource's `python`",
        Failure.FAILED: f"{doing} failed {said}",
    }[failure]
    return peer.error(failure, advice)
