"""``client://`` in the staging directives of tasks that run on a remote resource (one reached over ssh).

``client://`` is the laptop; every other scope is on the cluster, where the agent carries directives out as it
does on a shared file system. So the client's side of each directive travels over the session's ssh connection:

- an input from ``client://PATH`` is sent, when the batch of tasks is submitted, to the session's inbox on the
  cluster (``SESSION_SANDBOX/client/PATH``; every file of the batch in one transfer, each file once, skipped by
  checksum when it is there already), and the task's directive reads it there (``file://``);
- an output to ``client://PATH`` is written by the agent to the session's outbox (``SESSION_SANDBOX/client-out/
  PATH``, the laptop's directory tree as it will be), and moved from there by the client when the task ends,
  with those of the tasks that ended with it in one transfer, before the tasks' ends are applied: a task is
  DONE once its outputs are on the laptop (if fetching fails, it is FAILED and says why). Two tasks writing the
  same client path: the one that ends last wins, as on a shared file system.
"""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path

from scalems_like.client.gateway_link import GatewayLink
from scalems_like.staging.directives import Directive, Location


class RemoteStaging:
    """The client's side of one batch of tasks' directives (see the module)."""

    def __init__(self, link: GatewayLink, client_root: Path) -> None:
        self.link = link
        self.client_root = client_root
        self.uploads: dict[tuple[str, str], Directive] = {}
        self.downloads: dict[int, list[Directive]] = {}
        """Task index in the batch → what to fetch when it ends."""

    def outbound(self, index: int, directive: Directive) -> Directive:
        """Directive ``index``'s task as the agent on the cluster carries it out."""
        session = self.link.remote_session
        if directive.source.scope == "client":
            remote = posixpath.join(session, "client", directive.source.path)
            action = "move" if directive.action == "move" else "copy"
            self.uploads[(directive.source.path, action)] = Directive(
                directive.source, Location("file", remote), action, skip_if_same=True,
                text=f"{directive.source} > file://{remote}")
            return dataclasses.replace(directive, source=Location("file", remote))
        if directive.target.scope == "client":
            remote = posixpath.join(session, "client-out", directive.target.path)
            self.downloads.setdefault(index, []).append(Directive(
                Location("file", remote), directive.target, "move", text=f"file://{remote} > {directive.target}"))
            return dataclasses.replace(directive, target=Location("file", remote))
        return directive

    def send(self) -> None:
        """The batch's inputs to the cluster, in one transfer (StagingError, ScalemsError or SshError if not)."""
        if self.uploads:
            self.link.stage(list(self.uploads.values()), self.client_root)


def fetch(link: GatewayLink, directives: list[Directive], client_root: Path) -> None:
    """Tasks' outputs from the outbox to the client (those the agent wrote: ``when`` chose): one command looks
    which are there, one rsync run per directory moves them."""
    assert link.master is not None
    paths = [directive.source.path for directive in directives]
    listing = link.master.run(["sh", "-c", 'for f; do [ -e "$f" ] && printf "%s\\n" "$f"; done; true', "sh",
                               *paths]).check()
    there = set(listing.stdout.decode(errors="replace").splitlines())
    present = [directive for directive in directives if directive.source.path in there]
    if present:
        link.stage(present, client_root)
