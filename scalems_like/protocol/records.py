"""Files in the pilot sandbox through which agent and client meet outside the socket.

``client.json``    address of a client that reattached (written by the client; the agent follows it)
``agent.alive``    the agent's pid and host, written as it starts, then touched on every heartbeat (a client tells a
                   live agent from a gone one: by the age of the touch, or at once if the process is gone)
``agent.stopped``  the agent's final state and reason, written as it exits
``agent.journal``  every task update and agent event the agent sent, in order (below)

The agent's journal, ``PILOT_SANDBOX/agent.journal``: every task update and every profile event (AgentEvents) the
agent sent, in order.

Written by the agent (appended in batches, one ``write`` each), read by a client that reattaches or resumes:
results that never reached the client are taken from here, tasks that had started are told from tasks that had
not, and the session's profile gets the agent events it missed. Format: records of ``[4-byte big-endian
length][a TaskUpdates or AgentEvents message]`` — the very bytes the agent sent (packed once), so a record is
``[version, "updates", [update, ...]]``, ``[version, "agent_events", [event, ...]]`` or ``[version,
"nodes_ready", time, [node, ...]]`` (how much of the pilot serves: :func:`read_readiness`). A record cut short (the
agent was killed mid-write) ends the readable part; nothing before it is lost. Records of other types are skipped.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

_LENGTH = struct.Struct(">I")
FILE_NAME = "agent.journal"
CLIENT_FILE = "client.json"
ALIVE_FILE = "agent.alive"
STOPPED_FILE = "agent.stopped"


def _read_fields(path: Path, *names: str) -> tuple[str, ...] | None:
    """The string fields ``names`` of the JSON object in ``path``; None if it is missing, torn or lacks one."""
    try:
        fields = json.loads(path.read_text())
        return tuple(str(fields[name]) for name in names)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_client_address(sandbox: Path) -> tuple[str, float] | None:
    """(address, time written) of the client that reattached last, or None."""
    fields = _read_fields(sandbox / CLIENT_FILE, "address", "time")
    try:
        return (fields[0], float(fields[1])) if fields else None
    except ValueError:
        return None


def read_stopped(sandbox: Path) -> tuple[str, str] | None:
    """(final state, reason) the agent wrote as it exited, or None while it runs (or if it was killed)."""
    fields = _read_fields(sandbox / STOPPED_FILE, "state", "reason")
    return (fields[0], fields[1]) if fields else None


def read_alive(sandbox: Path) -> tuple[int, str] | None:
    """(pid, host) of the agent as it wrote them when it started, or None."""
    fields = _read_fields(sandbox / ALIVE_FILE, "pid", "host")
    try:
        return (int(fields[0]), fields[1]) if fields else None
    except ValueError:
        return None


def seconds_since_alive(sandbox: Path) -> float | None:
    """Seconds since the agent's last heartbeat touched ``agent.alive`` (None: it never did)."""
    try:
        return time.time() - (sandbox / ALIVE_FILE).stat().st_mtime
    except OSError:
        return None


def encode_record(message: bytes) -> bytes:
    """A record of an encoded TaskUpdates message."""
    return _LENGTH.pack(len(message)) + message


def append_record(fd: int, message: bytes) -> None:
    """Append one record (an encoded TaskUpdates message) with a single write (O_APPEND file descriptor)."""
    data = encode_record(message)
    written = os.write(fd, data)
    while written < len(data):  # a short write (signal, full disk): finish it
        written += os.write(fd, data[written:])


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every task update of the journal at ``path``, in order; [] if there is none."""
    return read_journal(path)[0]


def _records(path: Path) -> Iterator[list[Any]]:
    """Each readable record of the journal at ``path`` as ``[version, tag, ...]``, in order (none if it is missing);
    a record cut short ends the readable part."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    offset = 0
    while offset + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + _LENGTH.size + length
        if end > len(data):
            return  # the last record was cut short
        try:
            record = msgpack.unpackb(data[offset + _LENGTH.size:end], raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several unrelated types
            return
        if isinstance(record, list) and len(record) >= 3:
            yield record
        offset = end


def read_journal(path: Path) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """(every task update, every agent event ``[time, component, where, event, uid, detail]``) of the journal at
    ``path``, each in order; empty lists if there is none."""
    updates: list[dict[str, Any]] = []
    events: list[list[Any]] = []
    for record in _records(path):
        if len(record) == 3 and isinstance(record[2], list):
            if record[1] == "updates":
                updates.extend(update for update in record[2] if isinstance(update, dict) and "uid" in update)
            elif record[1] == "agent_events":
                events.extend(event for event in record[2] if _is_agent_event(event))
    return updates, events


def read_readiness(path: Path) -> dict[str, list[Any]]:
    """Node name → its last ``[node, ready_cores, cores, out]`` (NodesReady records) in the journal at ``path``."""
    nodes: dict[str, list[Any]] = {}
    for record in _records(path):
        if record[1] == "nodes_ready" and len(record) == 4 and isinstance(record[3], list):
            nodes.update((node[0], node) for node in record[3] if isinstance(node, list) and len(node) == 4)
    return nodes


def _is_agent_event(event: Any) -> bool:
    """``[time, component, where, event, uid, detail]`` (as the AgentEvents message checks it)."""
    return (isinstance(event, list) and len(event) == 6 and isinstance(event[0], (int, float))
            and not isinstance(event[0], bool) and all(isinstance(text, str) for text in event[1:]))
