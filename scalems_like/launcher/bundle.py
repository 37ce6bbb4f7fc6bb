"""The project bundle: the files of a project directory that a submitted session takes along.

``.scalemsignore`` in the project directory holds one pattern per line with the whole syntax of ``.gitignore``
(pathspec's implementation of it): ``#`` starts a comment; a pattern without a ``/`` matches a name at any depth
(``*.log``); one with a ``/`` in it is anchored to the project directory (``data/raw``, ``/notes.txt``); ``**``
matches any number of directories (``**/tmp``, ``results/**/*.bin``); a trailing ``/`` matches directories only;
``!pattern`` takes a path back (not inside a directory left out: as in git, it is never entered).
A symbolic link is taken as a link (to a directory too): its target must be where the job can see it.
:data:`ALWAYS_IGNORED` is never taken along, whatever the file says.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tarfile
from pathlib import Path

import pathspec

from scalems_like.errors import ConfigError

IGNORE_FILE = ".scalemsignore"
ALWAYS_IGNORED = (".git/", "__pycache__/", "*.pyc", ".venv/", ".scalems-like-submit/")


def ignore_spec(lines: list[str], source: str = IGNORE_FILE) -> pathspec.GitIgnoreSpec:
    """What ``lines`` of a ``.scalemsignore`` leave out, on top of :data:`ALWAYS_IGNORED` (which no ``!`` takes
    back): ``spec.match_file(path)`` for a path relative to the project, with a trailing ``/`` for a directory.
    A line that is not a pattern raises ConfigError naming ``source``, the line and its number."""
    try:
        return pathspec.GitIgnoreSpec.from_lines([*lines, *ALWAYS_IGNORED])
    except (ValueError, re.error):
        for number, line in enumerate(lines, 1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, re.error) as error:
                raise ConfigError(f"{source} line {number}: {line!r} is not a .gitignore pattern ({error}); "
                                  "fix or remove it (nothing was bundled)") from None
        raise


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
    lines = ignore_file.read_text(errors="replace").splitlines() if ignore_file.is_file() else []
    spec = ignore_spec(lines, str(ignore_file))
    files: list[str] = []
    size = 0
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        subdirectories[:] = sorted(name for name in subdirectories
                                   if not spec.match_file(f"{prefix}{name}/"))
        linked = [name for name in subdirectories if (Path(directory) / name).is_symlink()]
        subdirectories[:] = [name for name in subdirectories if name not in linked]  # os.walk would not enter them
        for name in [*names, *linked]:
            relative = prefix + name
            if spec.match_file(relative):
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
