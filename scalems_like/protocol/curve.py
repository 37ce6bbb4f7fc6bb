"""Authenticated, encrypted channels: CurveZMQ keys per session, and who may connect.

Every session has two key pairs, made when it opens:

* the **client** pair: the client's socket is the CURVE server agents connect to. Its secret key never leaves the
  client (``SESSION_DIR/keys.json``, 0600, kept for ``reattach``); agents get its public key.
* the **agent** pair: the agents of the session (CURVE clients of the client; CURVE servers of their workers) and
  their workers (CURVE clients of the agent). It is written into each pilot sandbox as ``keys/agent.json`` (0600,
  in a 0700 directory); pilot sandboxes are private to the user, so the workers on other nodes can read it.

Each server socket has a ZAP handler (:func:`start_authenticator`) that accepts only the session's agent key: a
peer without keys fails the CURVE handshake, and one with other keys is refused by ZAP, both before any of its
messages reaches the application. ``SCALEMS_LIKE_INSECURE=1`` (``scalems-like --insecure``) turns all of it off,
for debugging only, and says so loudly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.auth.thread

from scalems_like.errors import ConfigError
from scalems_like.paths import write_private_file

log = logging.getLogger("scalems_like.security")

INSECURE_VARIABLE = "SCALEMS_LIKE_INSECURE"
KEYS_DIRECTORY = "keys"
AGENT_KEYS_FILE = "agent.json"
SESSION_KEYS_FILE = "keys.json"


def insecure_requested(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    return environ.get(INSECURE_VARIABLE, "") not in ("", "0")


def warn_insecure(who: str) -> None:
    message = (f"INSECURE: {who} runs WITHOUT authentication or encryption ({INSECURE_VARIABLE} is set): anyone "
               "who can reach its ports can run code as you and read your data. Use this only to debug.")
    log.warning(message)
    print(f"\n!!! {message}\n", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class AgentKeys:
    """What an agent and its workers hold: the client's public key and the agent pair (Z85 bytes)."""

    client_public: bytes
    agent_public: bytes
    agent_secret: bytes

    def write(self, pilot_sandbox: Path) -> Path:
        directory = pilot_sandbox / KEYS_DIRECTORY
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
        return _write_keys(directory / AGENT_KEYS_FILE, self)

    @classmethod
    def read(cls, pilot_sandbox: Path) -> AgentKeys:
        return cls(**_read_keys(pilot_sandbox / KEYS_DIRECTORY / AGENT_KEYS_FILE, cls))


@dataclasses.dataclass(frozen=True)
class SessionKeys:
    """The client's view: both pairs (the client secret stays here)."""

    client_public: bytes
    client_secret: bytes
    agent_public: bytes
    agent_secret: bytes

    @classmethod
    def generate(cls) -> SessionKeys:
        client_public, client_secret = zmq.curve_keypair()
        agent_public, agent_secret = zmq.curve_keypair()
        return cls(client_public, client_secret, agent_public, agent_secret)

    @property
    def for_agent(self) -> AgentKeys:
        return AgentKeys(self.client_public, self.agent_public, self.agent_secret)

    def write(self, session_directory: Path) -> Path:
        return _write_keys(session_directory / SESSION_KEYS_FILE, self)

    @classmethod
    def read(cls, session_directory: Path) -> SessionKeys:
        return cls(**_read_keys(session_directory / SESSION_KEYS_FILE, cls))


def _write_keys(target: Path, keys: AgentKeys | SessionKeys) -> Path:
    """A key file: the dataclass's fields as Z85 text, written atomically, 0600."""
    write_private_file(target, json.dumps({key: value.decode() for key, value in dataclasses.asdict(keys).items()}))
    return target


def _read_keys(path: Path, cls: type[AgentKeys] | type[SessionKeys]) -> dict[str, bytes]:
    names = tuple(field.name for field in dataclasses.fields(cls))
    try:
        mode = path.stat().st_mode & 0o777
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the session keys {path}: {error}") from error
    if mode & 0o077:
        raise ConfigError(f"{path}: permissions {mode:o} let others read the session keys; they must be 600")
    if not isinstance(data, dict) or any(not isinstance(data.get(name), str) or len(data[name]) != 40
                                         for name in names):
        raise ConfigError(f"{path}: not a key file (expected 40-character Z85 keys {', '.join(names)})")
    return {name: data[name].encode() for name in names}


# -- sockets ------------------------------------------------------------------------------------------------
def serve(sock: zmq.Socket[bytes], public: bytes, secret: bytes) -> None:
    """Make ``sock`` a CURVE server (before it binds); its context needs :func:`start_authenticator`."""
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.zap_domain = b"scalems_like"


def connect_as(sock: zmq.Socket[bytes], server_public: bytes, public: bytes, secret: bytes) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is ``server_public`` (before it connects)."""
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


class _OnlyKnownKeys:
    def __init__(self, allowed: set[bytes], where: str) -> None:
        self.allowed = allowed
        self.where = where

    def callback(self, _domain: str, key: bytes) -> bool:
        if key in self.allowed:
            return True
        log.warning("%s refused a peer with an unknown key %s…", self.where, key[:8].decode(errors="replace"))
        return False


def start_authenticator(context: zmq.Context[zmq.Socket[bytes]], allowed: set[bytes],
                        where: str) -> zmq.auth.thread.ThreadAuthenticator:
    """A ZAP handler on ``context`` accepting only the CURVE public keys in ``allowed`` (stop it before
    terminating the context)."""
    authenticator = zmq.auth.thread.ThreadAuthenticator(context, log=logging.getLogger("scalems_like.zap"))
    authenticator.start()
    authenticator.configure_curve_callback("scalems_like", _OnlyKnownKeys(allowed, where))
    return authenticator
