"""Cached results of app calls, in the workflow directory: a call that ran before is not run again.

A call's key is the SHA-256 of what decides its result: the app's code (its cloudpickle), the arguments after
their futures resolved (an input file counts by its name and the SHA-256 of its content, not its path) and the
task options. ``.scalems-like-cache/KEY/`` holds ``entry.json`` (written last, atomically: an entry is whole or
absent; the value inline, or in ``value.pickle`` when it was kept in its task sandbox) and ``files/`` (copies of
the call's declared output files). ``SCALEMS_LIKE_NO_CACHE=1``
(``scalems-like run --no-cache``) or ``cache=False`` on an app turn it off; ``scalems-like cache ls|clear``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle

from scalems_like.paths import write_private_file

log = logging.getLogger("scalems_like.client")

DIRECTORY = ".scalems-like-cache"
NO_CACHE_VARIABLE = "SCALEMS_LIKE_NO_CACHE"
VALUE_FILE = "value.pickle"
"""A result too large to travel back (kept in its task sandbox) is cached as this file beside ``entry.json``."""


def enabled() -> bool:
    return os.environ.get(NO_CACHE_VARIABLE, "") in ("", "0")


def root() -> Path:
    return Path.cwd() / DIRECTORY


def key_of(parts: Any) -> str | None:
    """The key of a call from its deciding parts; None if they cannot be pickled (the call is not cached)."""
    try:
        return hashlib.sha256(cloudpickle.dumps(parts)).hexdigest()
    except Exception as error:  # an argument cloudpickle cannot handle
        log.debug("not cached: %s", error)
        return None


_hits = [0]
_hits_lock = threading.Lock()


def hits() -> int:
    """How many lookups of this process found their entry (``scalems-like run`` says how many calls of its script
    the cache served: the difference before and after)."""
    return _hits[0]


def lookup(key: str) -> dict[str, Any] | None:
    """The entry of ``key``: its ``value`` (unpickled) and ``files`` directory; None when there is none."""
    directory = root() / key
    try:
        entry = json.loads((directory / "entry.json").read_text())
        if "value" in entry:
            entry["value"] = cloudpickle.loads(base64.b64decode(entry["value"]))
        else:  # a value that was kept in its task sandbox: the entry has its own copy of the file
            with open(directory / VALUE_FILE, "rb") as handle:
                entry["value"] = cloudpickle.load(handle)
    except (OSError, ValueError, KeyError, EOFError):
        return None
    entry["files"] = directory / "files"
    with _hits_lock:
        _hits[0] += 1
    return entry


def store(key: str, app: str, value_pickle: bytes | Path, sandbox: Path | None, outputs: tuple[str, ...]) -> None:
    """Keep a DONE call's result and output files (copied from its task sandbox). ``value_pickle``: the result's
    pickle, or the file holding it (a result kept in the task sandbox: copied to the entry's ``value.pickle``)."""
    directory = root() / key
    files = directory / "files"
    try:
        files.mkdir(parents=True, exist_ok=True)
        for name in outputs:
            if sandbox is None:
                return
            shutil.copy2(sandbox / name, files / name)
        entry = {"app": app, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        if isinstance(value_pickle, Path):
            shutil.copy2(value_pickle, directory / VALUE_FILE)  # (0600, as in the sandbox)
        else:
            entry["value"] = base64.b64encode(value_pickle).decode()
        write_private_file(directory / "entry.json", json.dumps(entry))
    except OSError as error:
        log.warning("result of %s not cached in %s: %s", app, directory, error)


def entries() -> list[dict[str, Any]]:
    found = []
    for entry_file in sorted(root().glob("*/entry.json")):
        try:
            data = json.loads(entry_file.read_text())
        except (OSError, ValueError):
            continue
        size = sum(path.stat().st_size for path in entry_file.parent.rglob("*") if path.is_file())
        found.append({"key": entry_file.parent.name, "app": data.get("app", "?"), "created": data.get("created", "?"),
                      "bytes": size})
    return found


def clear() -> int:
    count = len(entries())
    shutil.rmtree(root(), ignore_errors=True)
    return count
