"""Files between the client (``client://``) and a remote cluster, over the session's ssh connection.

:class:`Transport` moves :class:`Item` s (a local path, a remote path) up or down through the ControlMaster:

- ``rsync`` (the default): files and directories that keep their names between two directories go in one rsync
  run (``--files-from``), however many they are; ``skip_if_same`` is rsync's ``--checksum`` (each side checksums
  its own files, the remote side remotely; equal size and checksum: skipped), otherwise ``--ignore-times`` (every
  file is sent). rsync writes each file under a temporary name and renames it: a file is there whole or not at
  all; an interrupted run keeps every file it finished.
- ``sftp`` (``transfer: sftp``, or where the cluster has no rsync): one batch (``sftp -b``) through the same
  master; ``skip_if_same`` compares SHA-256 checksums, the remote ones computed remotely (``sha256sum``); each
  file is put under a temporary name and renamed.

``move`` removes each source file only once it has arrived (rsync's ``--remove-source-files``). A ``link``
between two hosts is a copy. :meth:`Transport.stage` carries out staging directives between ``client://`` and
the cluster's scopes (given as remote paths).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from scalems_like.remote.connection import ControlMaster
from scalems_like.remote.diagnosis import Failure, explain
from scalems_like.staging.actions import StagingError, checksum
from scalems_like.staging.directives import Directive

COPIED = "copied"
SKIPPED = "skipped (same checksum)"
MOVED = "moved"
RSYNC_FLAGS = ["-rlpt", "--from0", "--out-format=%n"]
"""Recursive, symlinks as symlinks, permissions and modification times kept (not owners: another host's)."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One file or directory to transfer: ``local`` on the client, ``remote`` (absolute) on the cluster."""

    local: Path
    remote: str
    create_parents: bool = True


def partial_name(remote: str) -> str:
    """Where sftp puts a file before renaming it into place."""
    return posixpath.join(posixpath.dirname(remote), f".{posixpath.basename(remote)}.partial")


def sftp_quote(path: str | Path) -> str:
    """A path as one argument of an sftp batch line."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Transport:
    """Transfers through ``master`` with ``method`` ("rsync" or "sftp"). The constructor does no I/O; the first
    rsync transfer asks the cluster whether it has rsync (once) and uses sftp if not."""

    def __init__(self, master: ControlMaster, method: str = "rsync") -> None:
        self.master = master
        self.requested = method
        self._method: str | None = method if method == "sftp" else None

    @property
    def method(self) -> str:
        """The method in use: rsync, or sftp when asked for or when the cluster has no rsync."""
        if self._method is None:
            found = self.master.run(["sh", "-c", "command -v rsync"])
            self._method = "rsync" if found.exit_code == 0 else "sftp"
        return self._method

    def host(self) -> str:
        """The destination as rsync and sftp write it (an ``ssh://`` URL loses its scheme and port: the master
        already knows where it goes)."""
        destination = self.master.destination
        if destination.startswith("ssh://"):
            destination = destination[len("ssh://"):].rsplit(":", 1)[0] if destination.count(":") > 1 \
                else destination[len("ssh://"):]
        return destination

    def upload(self, items: Sequence[Item], *, skip_if_same: bool = False, move: bool = False) -> list[str]:
        """Send ``items`` to the cluster; returns what was done with each ("copied", "skipped ...", "moved")."""
        if self.method == "rsync":  # rsync makes the target's parents itself (--rsync-path): no round trip more
            return self._rsync(items, upload=True, skip_if_same=skip_if_same, move=move)
        self._make_remote_parents(items)
        return self._sftp(items, upload=True, skip_if_same=skip_if_same, move=move)

    def download(self, items: Sequence[Item], *, skip_if_same: bool = False, move: bool = False) -> list[str]:
        """Fetch ``items`` from the cluster; returns what was done with each."""
        for item in items:
            if item.create_parents:
                item.local.parent.mkdir(parents=True, exist_ok=True)
        if self.method == "rsync":
            return self._rsync(items, upload=False, skip_if_same=skip_if_same, move=move)
        return self._sftp(items, upload=False, skip_if_same=skip_if_same, move=move)

    def _make_remote_parents(self, items: Sequence[Item]) -> None:
        parents = sorted({posixpath.dirname(item.remote) for item in items if item.create_parents})
        if parents:
            made = self.master.run(["mkdir", "-p", "--", *parents])
            if made.exit_code != 0:
                raise self.master.failure(made.stderr, "making the remote directories")

    def _groups(self, items: Sequence[Item]) -> list[tuple[Path, str, list[int]]]:
        """Items by (local directory, remote directory) where they keep their name: one rsync run per group."""
        groups: dict[tuple[Path, str], list[int]] = {}
        for index, item in enumerate(items):
            same_name = item.local.name == posixpath.basename(item.remote)
            key = (item.local.parent, posixpath.dirname(item.remote)) if same_name else (item.local, item.remote)
            groups.setdefault(key, []).append(index)
        return [(local, remote, indices) for (local, remote), indices in groups.items()]

    def _rsync(self, items: Sequence[Item], *, upload: bool, skip_if_same: bool, move: bool) -> list[str]:
        outcomes = [""] * len(items)
        for local, remote, indices in self._groups(items):
            single = local == items[indices[0]].local
            source, target = (str(local), f"{self.host()}:{remote}") if upload else (f"{self.host()}:{remote}",
                                                                                     str(local))
            flags = [*RSYNC_FLAGS, "--checksum" if skip_if_same else "--ignore-times"]
            if move:
                flags.append("--remove-source-files")
            if upload and any(items[index].create_parents for index in indices):
                parent = posixpath.dirname(remote) if single else remote
                flags.append(f"--rsync-path=mkdir -p -- {shlex.quote(parent)}; rsync")
            names = b""
            if single and (items[indices[0]].local.is_dir() if upload else self._remote_directory(remote)):
                source, target = source.rstrip("/") + "/", target.rstrip("/") + "/"  # its contents, not itself
            elif not single:
                flags.append("--files-from=-")
                names = b"".join(os.fsencode(items[index].local.name) + b"\0" for index in indices)
                source, target = source.rstrip("/") + "/", target.rstrip("/") + "/"
            argv = ["rsync", *flags, "-e", shlex.join(self.master.ssh_command()), "--", source, target]
            completed = subprocess.run(argv, input=names, capture_output=True)
            if completed.returncode != 0:
                raise self._failed(completed.stderr, upload, len(indices))
            sent = {os.fsdecode(line).split("/")[0] for line in completed.stdout.splitlines()}
            for index in indices:
                done = bool(sent) if single else items[index].local.name in sent
                outcomes[index] = (MOVED if move else COPIED) if done else SKIPPED
        if move:
            self._remove_empty_sources(items, upload)
        return outcomes

    def _remote_directory(self, path: str) -> bool:
        return self.master.run(["test", "-d", path]).exit_code == 0

    def _failed(self, stderr: bytes, upload: bool, count: int) -> Exception:
        doing = f"{'uploading' if upload else 'downloading'} {count} item{'s' * (count != 1)} with rsync"
        return self.master.failure(stderr, doing)

    def _remove_empty_sources(self, items: Sequence[Item], upload: bool) -> None:
        """What ``--remove-source-files`` leaves of moved directories: their empty directories."""
        if not upload:
            self.master.run(["sh", "-c", 'for d; do [ -d "$d" ] && find "$d" -depth -type d -empty -delete; done; '
                             "true", "sh", *(item.remote for item in items)])
            return
        for item in items:
            if item.local.is_dir():
                for directory, _subdirectories, _files in sorted(os.walk(item.local), reverse=True):
                    if not os.listdir(directory):
                        os.rmdir(directory)

    def _remote_directories(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` are directories on the cluster (one command for all)."""
        wanted = list(paths)
        if not wanted:
            return set()
        found = self.master.run(["sh", "-c", 'for f; do [ -d "$f" ] && printf "%s\\0" "$f"; done; true', "sh",
                                 *wanted])
        return {os.fsdecode(path) for path in found.stdout.split(b"\0") if path}

    def _remote_checksums(self, paths: Iterable[str]) -> dict[str, str]:
        """SHA-256 of the remote files that exist among ``paths``, computed on the cluster."""
        wanted = list(paths)
        if not wanted:
            return {}
        result = self.master.run(["sh", "-c", 'for f; do [ -f "$f" ] && sha256sum -- "$f"; done; true', "sh",
                                  *wanted])
        sums: dict[str, str] = {}
        for line in result.stdout.decode(errors="replace").splitlines():
            digest, _, path = line.partition("  ")
            sums[path] = digest
        return sums

    def _sftp(self, items: Sequence[Item], *, upload: bool, skip_if_same: bool, move: bool) -> list[str]:
        outcomes = [MOVED if move else COPIED] * len(items)
        if upload:  # a file staged into an existing directory keeps its name (as rsync, and a local copy, do)
            into = self._remote_directories(item.remote for item in items if not item.local.is_dir())
            items = [dataclasses.replace(item, remote=posixpath.join(item.remote, item.local.name))
                     if item.remote in into else item for item in items]
        if skip_if_same:
            remote_sums = self._remote_checksums(item.remote for item in items if not item.local.is_dir())
            for index, item in enumerate(items):
                if item.local.is_file() and remote_sums.get(item.remote) == checksum(item.local):
                    outcomes[index] = SKIPPED
        lines: list[str] = []
        renames: list[tuple[Path, Path]] = []  # downloads: local temporary name → final name, once all arrived
        directories = {str(item.local) for item in items if item.local.is_dir()} if upload else \
            self._remote_directories(item.remote for item in items)
        if upload and directories:
            self.master.run(["mkdir", "-p", "--", *(item.remote for item in items if str(item.local) in directories)])
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome != SKIPPED:
                directory = (str(item.local) if upload else item.remote) in directories
                lines += self._sftp_lines(item, upload, directory, renames)
        if lines:
            argv = ["sftp", "-b", "-", *self.master.client_options(), "--", self.host()]
            completed = subprocess.run(argv, input="\n".join(lines).encode() + b"\n", capture_output=True)
            if completed.returncode != 0:
                for partial, _ in renames:
                    partial.unlink(missing_ok=True)
                raise self._sftp_failure(items, upload, completed.stderr)
        for partial, final in renames:
            os.replace(partial, final)
        self._sftp_symlinks([item for item in items if (str(item.local) if upload else item.remote) in directories],
                            upload)
        if move:
            sent = [item for item, outcome in zip(items, outcomes, strict=True) if outcome != SKIPPED]
            self._remove_sources(sent, upload)
        return outcomes

    def _sftp_symlinks(self, directories: Sequence[Item], upload: bool) -> None:
        """The symlinks inside directories, which sftp leaves out ("not a regular file"), made on the other side."""
        links: list[tuple[str, str]] = []  # (the link's target, its remote path)
        if upload:
            for item in directories:
                for root, subdirectories, files in os.walk(item.local):
                    for name in [*subdirectories, *files]:
                        local = Path(root, name)
                        if local.is_symlink():
                            remote = posixpath.join(item.remote, local.relative_to(item.local).as_posix())
                            links.append((os.readlink(local), remote))
            arguments = [part for link in links for part in link]
            if arguments:
                self.master.run(["sh", "-c", 'while [ $# -gt 0 ]; do ln -sfn -- "$1" "$2" || exit; shift 2; done',
                                 "sh", *arguments]).check()
            return
        for item in directories:
            found = self.master.run(["find", item.remote, "-type", "l", "-printf", "%P\\0%l\\0"]).check()
            parts = [os.fsdecode(part) for part in found.stdout.split(b"\0")[:-1]]
            for relative, target in zip(parts[::2], parts[1::2], strict=True):
                local = item.local / relative
                local.unlink(missing_ok=True)
                local.symlink_to(target)

    def _sftp_failure(self, items: Sequence[Item], upload: bool, stderr: bytes) -> Exception:
        """Why an sftp batch failed. sftp says only "Failure" when the remote disk is full: if a target's file
        system has less room than the largest file, it is that (asked before the batch's partial files, which
        are removed, free their space)."""
        what = f"{'uploading' if upload else 'downloading'} {len(items)} item(s) with sftp"
        if not upload or not self.master.check():
            return self.master.failure(stderr, what)
        files = [item for item in items if item.local.is_file()]
        directories = sorted({posixpath.dirname(item.remote) for item in files})
        room = self.master.run(["sh", "-c", 'df -Pk -- "$@" | awk \'NR > 1 {print $4, $6}\'', "sh", *directories])
        self.master.run(["rm", "-f", "--", *(partial_name(item.remote) for item in files)])
        largest = max((item.local.stat().st_size for item in files), default=0)
        for line in room.stdout.decode(errors="replace").splitlines():
            free, _, mount = line.partition(" ")
            if free.isdigit() and int(free) * 1024 < largest:
                said = stderr.rstrip() + f"\n{mount} has {free} KiB free".encode()
                return explain(self.master.peer, said, what, Failure.DISK_FULL)
        return self.master.failure(stderr, what)

    @staticmethod
    def _sftp_lines(item: Item, upload: bool, directory: bool, renames: list[tuple[Path, Path]]) -> list[str]:
        if upload and directory:  # made above: put -R copies into an existing directory
            return [f"put -R -p {sftp_quote(f'{item.local}/.')} {sftp_quote(item.remote)}"]
        if directory:
            return [f"get -R -p {sftp_quote(item.remote + '/.')} {sftp_quote(item.local)}"]
        if upload:
            partial = partial_name(item.remote)
            return [f"put -p {sftp_quote(item.local)} {sftp_quote(partial)}",
                    f"rename {sftp_quote(partial)} {sftp_quote(item.remote)}"]
        partial_local = item.local.parent / f".{item.local.name}.partial"
        renames.append((partial_local, item.local))
        return [f"get -p {sftp_quote(item.remote)} {sftp_quote(partial_local)}"]

    def _remove_sources(self, items: Sequence[Item], upload: bool) -> None:
        """A move over sftp: the sources go once the whole batch has arrived."""
        if upload:
            for item in items:
                shutil.rmtree(item.local) if item.local.is_dir() else item.local.unlink()
        elif items:
            self.master.run(["rm", "-rf", "--", *(item.remote for item in items)]).check()

    def stage(self, directives: Sequence[Directive], client_root: Path, remote_roots: Mapping[str, str]) -> list[str]:
        """Carry out directives between ``client://`` (under ``client_root``) and the cluster's scopes
        (``remote_roots``: scope → remote directory; ``file://`` paths are the cluster's); returns what was
        done with each. Directives with the same options travel together (one rsync run per directory pair)."""
        outcomes = [""] * len(directives)
        batches: dict[tuple[bool, bool, bool], list[tuple[int, Item]]] = {}
        for index, directive in enumerate(directives):
            upload, item = self._item(directive, client_root, remote_roots)
            key = (upload, directive.skip_if_same, directive.action == "move")
            batches.setdefault(key, []).append((index, item))
        for (upload, skip_if_same, move), entries in batches.items():
            items = [item for _, item in entries]
            done = (self.upload if upload else self.download)(items, skip_if_same=skip_if_same, move=move)
            for (index, _), outcome in zip(entries, done, strict=True):
                outcomes[index] = outcome
        return outcomes

    @staticmethod
    def _item(directive: Directive, client_root: Path, remote_roots: Mapping[str, str]) -> tuple[bool, Item]:
        def remote(location_scope: str, path: str) -> str:
            if location_scope == "file":
                return path
            if location_scope not in remote_roots:
                raise StagingError(f"{directive.text!r}: the {location_scope} scope has no directory on the cluster")
            return posixpath.normpath(posixpath.join(remote_roots[location_scope], path))

        source, target = directive.source, directive.target
        if (source.scope == "client") == (target.scope == "client"):
            raise StagingError(f"{directive.text!r}: a transfer goes between client:// and the cluster; this one "
                               "stays on one side (the staging runner there carries it out)")
        upload = source.scope == "client"
        local = client_root / (source.path if upload else target.path)
        other = target if upload else source
        return upload, Item(local, remote(other.scope, other.path), directive.create_parents)

