"""Staging directives: what moves where, between the client and the sandboxes of a resource.

A directive is a string ``"SOURCE > TARGET"`` (a copy) or a mapping::

    {"source": "client:///inputs/topol.tpr", "target": "task:///topol.tpr",
     "action": "copy" | "link" | "move" | "tarball",
     "create_parents": True,          # make the target's directory
     "skip_if_same": False,           # skip when the target exists with the same checksum (sha256)
     "when": "success" | "failure" | "always"}    # output directives only

Locations are ``SCOPE:///PATH`` with PATH relative to the scope's root (``client`` is the client's working
directory; ``resource``, ``session``, ``pilot`` and ``task`` are the sandboxes), or ``file:///ABSOLUTE/PATH`` on
the resource. A location without a scope is an absolute path (``file://``) if it starts with ``/``; otherwise it is
on the client (``client://``) for an input's source and an output's target, and in the sandbox of what the
directive belongs to (``task://`` for a task, ``pilot://`` for a pilot) for the other side.
``tarball`` packs a directory on the source side and unpacks it at the target (permissions and symlinks kept).

Directives are validated when a description is made: an unknown scope, a path escaping its scope with ``..``,
or a bad action raises :class:`~scalems_like.errors.ConfigError` naming the directive.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scalems_like.errors import ConfigError

SCOPES = ("client", "resource", "session", "pilot", "task", "file")
ACTIONS = ("copy", "link", "move", "tarball")
WHEN = ("success", "failure", "always")
KEYS = ("source", "target", "action", "create_parents", "skip_if_same", "when")


@dataclasses.dataclass(frozen=True)
class Location:
    scope: str
    path: str
    """Relative to the scope's root (absolute for ``file``), normalised, never escaping the root."""

    def __str__(self) -> str:
        return f"{self.scope}:///{self.path.lstrip('/')}" if self.scope != "file" else f"file://{self.path}"


@dataclasses.dataclass(frozen=True)
class Directive:
    source: Location
    target: Location
    action: str = "copy"
    create_parents: bool = True
    skip_if_same: bool = False
    when: str = "success"
    text: str = ""
    """The directive as the user wrote it (for error messages)."""

    def to_wire(self) -> dict[str, Any]:
        return {"source": [self.source.scope, self.source.path], "target": [self.target.scope, self.target.path],
                "action": self.action, "create_parents": self.create_parents, "skip_if_same": self.skip_if_same,
                "when": self.when, "text": self.text}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Directive:
        return cls(Location(*data["source"]), Location(*data["target"]), data["action"], data["create_parents"],
                   data["skip_if_same"], data["when"], data["text"])


def parse_location(text: str, default_scope: str, where: str, sandbox: str = "task") -> Location:
    """``text`` as a location; a relative path without a scope is in ``default_scope``, an absolute one is a
    ``file://`` path. ``sandbox``: the sandbox scope of what the directive belongs to (a pilot has no task)."""
    scope, separator, rest = text.partition("://")
    if not separator:
        scope, rest = ("file", text) if text.startswith("/") else (default_scope, text)
        if text.startswith("~"):
            raise ConfigError(f"{where}: {text!r}: '~' is not expanded; write the absolute path (/home/...), "
                              f"or {default_scope}:///{text} for a name that starts with '~'")
    if scope not in SCOPES:
        raise ConfigError(f"{where}: unknown scope {scope!r} in {text!r}; scopes: {', '.join(SCOPES)}")
    if scope == "task" and sandbox != "task":
        raise ConfigError(f"{where}: {text!r}: a {sandbox} has no task scope; scopes: "
                          f"{', '.join(name for name in SCOPES if name != 'task')}")
    if scope == "file":
        if not rest.startswith("/"):
            raise ConfigError(f"{where}: {text!r}: file:// takes an absolute path (file:///data/x)")
        return Location("file", "/" + posixpath.normpath(rest).lstrip("/"))
    relative = posixpath.normpath(rest.lstrip("/")) if rest.strip("/") else "."
    if relative == ".." or relative.startswith("../"):
        raise ConfigError(f"{where}: {text!r} escapes the {scope} scope with '..'")
    return Location(scope, relative)


def parse(directive: str | Mapping[str, Any], *, output: bool, where: str, sandbox: str = "task") -> Directive:
    """One directive of an input (``output=False``) or output staging list of a ``sandbox`` ("task" or "pilot")."""
    label = f"{where} {directive!r}"
    if isinstance(directive, str):
        source_text, separator, target_text = directive.partition(">")
        if not separator or not source_text.strip() or not target_text.strip():
            raise ConfigError(f"{label}: expected 'SOURCE > TARGET' or a mapping with source and target")
        spec: Mapping[str, Any] = {"source": source_text.strip(), "target": target_text.strip()}
    elif isinstance(directive, Mapping):
        spec = directive
        unknown = sorted(set(spec) - set(KEYS))
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {unknown}; keys: {', '.join(KEYS)}")
        if not isinstance(spec.get("source"), str) or not isinstance(spec.get("target"), str):
            raise ConfigError(f"{label}: source and target must be strings")
    else:
        raise ConfigError(f"{label}: expected 'SOURCE > TARGET' or a mapping")
    action = spec.get("action", "copy")
    if action not in ACTIONS:
        raise ConfigError(f"{label}: action = {action!r}: expected one of {', '.join(ACTIONS)}")
    when = spec.get("when", "success")
    if when not in WHEN:
        raise ConfigError(f"{label}: when = {when!r}: expected one of {', '.join(WHEN)}")
    if not output and "when" in spec:
        raise ConfigError(f"{label}: 'when' applies to output directives only")
    for flag in ("create_parents", "skip_if_same"):
        if not isinstance(spec.get(flag, False), bool):
            raise ConfigError(f"{label}: {flag} = {spec[flag]!r}: expected true or false")
    source = parse_location(spec["source"], sandbox if output else "client", label, sandbox)
    target = parse_location(spec["target"], "client" if output else sandbox, label, sandbox)
    # data staged to the resource sandbox outlives sessions: reuse it when its checksum matches
    skip_if_same = spec.get("skip_if_same", target.scope == "resource")
    return Directive(source, target, action, spec.get("create_parents", True), skip_if_same, when,
                     directive if isinstance(directive, str) else repr(dict(directive)))


def parse_all(directives: Sequence[str | Mapping[str, Any]], *, output: bool, where: str,
              sandbox: str = "task") -> tuple[Directive, ...]:
    if isinstance(directives, (str, Mapping)) or not isinstance(directives, Sequence):
        raise ConfigError(f"{where} = {directives!r}: expected a list of directives")
    return tuple(parse(item, output=output, where=where, sandbox=sandbox) for item in directives)


def resolve(location: Location, roots: Mapping[str, Path]) -> Path:
    """The path of ``location`` given the roots of the scopes (``file`` needs none)."""
    if location.scope == "file":
        return Path(location.path)
    if location.scope not in roots:
        raise ConfigError(f"the {location.scope} scope has no directory here (location {location})")
    return roots[location.scope] / location.path


def for_shared_filesystem(directive: Directive, client_root: Path) -> Directive:
    """Client locations as absolute ``file://`` paths: client and resource share a file system (the transport
    of the local resource and of clusters reached from a login node). A remote transport would upload here."""
    def outbound(location: Location) -> Location:
        if location.scope != "client":
            return location
        return Location("file", posixpath.normpath(str(client_root / location.path)))
    return dataclasses.replace(directive, source=outbound(directive.source), target=outbound(directive.target))


def check_client_side(directive: Directive, client_root: Path, where: str) -> None:
    """What the client can check before anything runs: its own sources exist; its own targets, and absolute
    ``file://`` targets (the client sees the resource's file system through the shared-file-system transport),
    are writable."""
    if directive.source.scope == "client":
        source = client_root / directive.source.path
        if not source.exists():
            raise ConfigError(f"{where} {directive.text!r}: source {source} does not exist")
    if directive.target.scope in ("client", "file"):
        target = client_root / directive.target.path  # an absolute file:// path stays absolute
        existing = next(parent for parent in (target, *target.parents) if parent.exists())
        if existing != target and not existing.is_dir():
            raise ConfigError(f"{where} {directive.text!r}: target {target} is not writable: {existing} is a file")
        if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
            raise ConfigError(f"{where} {directive.text!r}: target {target} is not writable ({existing})")
