"""Where scalems_like finds its shipped files and keeps the user's files, and how it writes them.

``SCALEMS_LIKE_CONFIG_DIR`` and ``SCALEMS_LIKE_DATA_DIR`` override the platform's user config and data
directories (tests use them to stay out of the real home directory). Files the engine writes are written
atomically with narrow permissions (:func:`write_private_file`), in directories only their owner enters
(:func:`make_private_directory`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """A directory shipped with the package (``bootstrap`` or ``resource_configs``).

    In a wheel they live in ``scalems_like/_shipped/``; in a source checkout beside the package.
    """
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shipped directory {name!r} not found next to {_PACKAGE_DIR}")


def user_config_dir() -> Path:
    override = os.environ.get("SCALEMS_LIKE_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("scalems_like"))


def user_data_dir() -> Path:
    override = os.environ.get("SCALEMS_LIKE_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("scalems_like"))


def expand(path: str) -> Path:
    """Expand ``{data_dir}``, ``~`` and ``$VARIABLES`` (the client's view of the resource's file system)."""
    path = path.replace("{data_dir}", str(user_data_dir()))
    return Path(os.path.expandvars(os.path.expanduser(path)))


def write_private_file(target: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Write ``text`` (or bytes) to ``target`` atomically, with permissions ``mode``."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def make_private_directory(path: Path) -> Path:
    """``path`` (and its parents) created if missing; ``path`` itself readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
