"""The project bundle: the files of a project directory that a submitted session takes along.

``.scalemsignore`` in the project directory holds one pattern per line (``#`` starts a comment), in the
spirit of ``.gitignore``: a pattern matches a path relative to the project, or any single name in it
(``*.log``, ``data/raw``, ``build/``); a trailing ``/`` matches directories only; ``!pattern`` takes a file back.
A symbolic link is taken as a link (to a directory too): its target must be where the job can see it.
:data:`ALWAYS_IGNORED` is never taken along.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tarfile
from pathlib import Path

from scalems_like.errors import ConfigError

IGNORE_FILE = ".scalemsignore"
ALWAYS_IGNORED = (".git/", "__pycache__/", "*.pyc", ".venv/", ".scalems-like-submit/")


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str
    directories_only: bool
    negated: bool

    def matches(self, relative: str, is_directory: bool) -> bool:
        if self.directories_only and not is_directory:
            return False
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(relative, self.pattern)
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], self.pattern)


def parse_rules(lines: list[str]) -> list[Rule]:
    rules = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        text = text.removeprefix("!")
        directories_only = text.endswith("/")
        rules.append(Rule(text.strip("/"), directories_only, negated))
    return rules


def ignored(rules: list[Rule], relative: str, is_directory: bool) -> bool:
    verdict = False
    for rule in rules:  # the last matching rule decides, as in .gitignore
        if rule.matches(relative, is_directory):
            verdict = not rule.negated
    return verdict


@dataclasses.dataclass(frozen=True)
class Bundle:
    root: Path
    files: tuple[str, ...]
    """Paths relative to ``root``, sorted."""
    size: int
    """Bytes of the files (before compression): the estimate shown before the upload."""

    def write(self, archive: Path) -> Path:
        """A gzipped tarball of the files; a symlink is kept as a link."""
        with tarfile.open(archive, "w:gz", compresslevel=3) as packing:
            for relative in self.files:
                packing.add(self.root / relative, arcname=relative, recursive=False)
        return archive


def collect(root: Path) -> Bundle:
    """The files of ``root`` that ``.scalemsignore`` and :data:`ALWAYS_IGNORED` leave in."""
    if not root.is_dir():
        raise ConfigError(f"project directory {str(root)!r}: not a directory")
    ignore_file = root / IGNORE_FILE
    lines = list(ALWAYS_IGNORED)
    if ignore_file.is_file():
        lines += ignore_file.read_text(errors="replace").splitlines()
    rules = parse_rules(lines)
    files: list[str] = []
    size = 0
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        subdirectories[:] = sorted(name for name in subdirectories
                                   if not ignored(rules, prefix + name, True))
        linked = [name for name in subdirectories if (Path(directory) / name).is_symlink()]
        subdirectories[:] = [name for name in subdirectories if name not in linked]  # os.walk would not enter them
        for name in [*names, *linked]:
            relative = prefix + name
            if ignored(rules, relative, False):
                continue
            files.append(relative)
            size += (root / relative).lstat().st_size
    return Bundle(root, tuple(sorted(files)), size)


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
