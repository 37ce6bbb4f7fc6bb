"""Where a psij executor runs its jobs: a session it starts (a resource and a pilot shape) or a live session.

URL forms (``JobExecutor.get_instance("scalems-like", url=...)``; the scheme may be left out)::

    scalems-like://local?cores=4&runtime=600    a new session and pilot on "local", started on the first submit
    scalems-like://slurm?nodes=2&queue=debug    the same on the resource "slurm" (any resource config name)
    scalems-like://session/SESSION_UID          a live session (detached, or whose client is gone), reattached
    (none)                                      a new session with a default pilot on "local"

Query keys are :class:`~scalems_like.PilotDescription` fields: ``cores``, ``gpus``, ``nodes``, ``runtime``,
``queue``, ``account``, ``project``, ``environment`` (a profile name). A :class:`ScalemsLikeExecutorConfig` with
``pilot`` or ``session`` set takes precedence over the URL.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path
from typing import Any

from psij import JobExecutorConfig

from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError

SCHEME = "scalems-like"
SESSION_HOST = "session"
"""The URL host that names a live session instead of a resource (so no resource may be called "session")."""

_INTEGER_KEYS = ("cores", "gpus", "nodes")
_NUMBER_KEYS = ("runtime",)
_TEXT_KEYS = ("queue", "account", "project", "environment")


class ScalemsLikeExecutorConfig(JobExecutorConfig):
    """psij's executor configuration, plus where to run: ``pilot`` (a session started on the first submit) or
    ``session`` (the uid of a live session). Either one overrides the executor's URL."""

    def __init__(self, pilot: PilotDescription | None = None, session: str | None = None,
                 launcher_log_file: Path | None = None, work_directory: Path | None = None) -> None:
        super().__init__(launcher_log_file=launcher_log_file, work_directory=work_directory)
        if pilot is not None and session is not None:
            raise ConfigError(f"ScalemsLikeExecutorConfig: give pilot= or session=, not both (session={session!r})")
        self.pilot = pilot
        self.session = session


@dataclasses.dataclass(frozen=True)
class Target:
    """Exactly one of: ``pilot`` (start a session with this pilot) or ``session_uid`` (use that live session)."""

    pilot: PilotDescription | None = None
    session_uid: str | None = None


def parse_url(url: str | None) -> Target:
    """The target a URL names (see the module docstring); raises ConfigError naming what is wrong."""
    if not url:
        return Target(pilot=PilotDescription(resource="local"))
    if "://" not in url:
        url = f"{SCHEME}://{url}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != SCHEME:
        raise ConfigError(f"executor url {url!r}: expected the scheme {SCHEME}://")
    host = parts.netloc
    if not host:
        raise ConfigError(f"executor url {url!r}: expected {SCHEME}://RESOURCE?... or {SCHEME}://session/UID")
    if host == SESSION_HOST:
        uid = parts.path.strip("/")
        if not uid or "/" in uid or parts.query:
            raise ConfigError(f"executor url {url!r}: expected {SCHEME}://session/SESSION_UID")
        return Target(session_uid=uid)
    if parts.path.strip("/"):
        raise ConfigError(f"executor url {url!r}: a resource URL has no path ({parts.path!r})")
    return Target(pilot=PilotDescription(resource=host, **_pilot_fields(url, parts.query)))


def _pilot_fields(url: str, query: str) -> dict[str, Any]:
    """PilotDescription's fields from the URL's query (their values checked by PilotDescription itself)."""
    fields: dict[str, Any] = {}
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"executor url {url!r}: the query {query!r} is not KEY=VALUE&...") from None
    known = (*_INTEGER_KEYS, *_NUMBER_KEYS, *_TEXT_KEYS)
    for key, value in pairs:
        if key not in known:
            raise ConfigError(f"executor url {url!r}: unknown key {key!r} (known: {', '.join(known)})")
        try:
            fields[key] = int(value) if key in _INTEGER_KEYS else float(value) if key in _NUMBER_KEYS else value
        except ValueError:
            raise ConfigError(f"executor url {url!r}: {key}={value!r} is not a number") from None
    return fields


def target_of(url: str | None, config: JobExecutorConfig | None) -> Target:
    """The config's pilot or session if it names one, else the URL's."""
    if isinstance(config, ScalemsLikeExecutorConfig) and config.session is not None:
        return Target(session_uid=config.session)
    if isinstance(config, ScalemsLikeExecutorConfig) and config.pilot is not None:
        return Target(pilot=config.pilot)
    return parse_url(url)
