"""Carry out one staging directive between two paths: copy, link, move or tarball. Pure file-system work."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from scalems_like.errors import StagingError


def checksum(path: Path) -> str:
    with open(path, "rb") as handle:
        return checksum_of(handle)


def checksum_of(handle: BinaryIO) -> str:
    """The SHA-256 (hex) of what is left to read in an open binary file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _same(source: Path, target: Path) -> bool:
    if not (source.is_file() and target.is_file()) or source.stat().st_size != target.stat().st_size:
        return False
    return checksum(source) == checksum(target)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        return
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(descriptor)
    try:
        shutil.copy2(source, temporary)
        os.replace(temporary, target)  # readers never see half a file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _tarball(source: Path, target: Path) -> None:
    """Pack ``source`` (a directory) into one archive beside the target, then unpack it as ``target``."""
    if not source.is_dir():
        raise StagingError(f"tarball needs a directory, and {source} is not one")
    descriptor, archive = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tar")
    os.close(descriptor)
    try:
        with tarfile.open(archive, "w") as packing:
            packing.add(source, arcname=".")
        target.mkdir(exist_ok=True)
        with tarfile.open(archive) as unpacking:
            unpacking.extractall(target, filter="tar")  # keeps modes and symlinks, refuses paths escaping target
    finally:
        os.unlink(archive)


def perform(source: Path, target: Path, action: str, *, create_parents: bool = True,
            skip_if_same: bool = False) -> str:
    """Stage ``source`` to ``target``; returns what was done ("copied", "skipped", ...)."""
    if not source.exists() and not source.is_symlink():
        raise StagingError(f"source {source} does not exist")
    if create_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise StagingError(f"target directory {target.parent} does not exist (create_parents is off)")
    if target.is_dir() and not source.is_dir() and action != "tarball":
        target = target / source.name  # a file staged into a directory keeps its name
    if skip_if_same and _same(source, target):
        return "skipped (same checksum)"
    try:
        if action == "copy":
            _copy(source, target)
        elif action == "link":
            if target.exists() or target.is_symlink():
                _remove(target)
            target.symlink_to(source.resolve())
        elif action == "move":
            if target.exists() and not target.is_dir():
                target.unlink()
            shutil.move(source, target)
        elif action == "tarball":
            _tarball(source, target)
        else:
            raise StagingError(f"unknown action {action!r}")
    except OSError as error:
        raise StagingError(f"{action} {source} to {target}: {error.strerror or error}") from None
    return {"copy": "copied", "link": "linked", "move": "moved", "tarball": "unpacked"}[action]
