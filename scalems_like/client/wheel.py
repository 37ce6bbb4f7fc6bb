"""Build a wheel of this client's own scalems_like, to install into pilot environments.

scalems_like is pure Python, so the wheel is written directly (a zip with ``.dist-info``): no build backend and
no network are needed, and it works whether the client runs from a source tree or an installed package. The
version carries a hash of the files (``0.1.0+g1a2b3c4d5e6f``), so an environment built for one client is never
mistaken for another's.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import tempfile
import zipfile
from pathlib import Path

import scalems_like
from scalems_like import paths

NAME = "scalems_like"
FALLBACK_REQUIREMENTS = ("pyzmq>=25", "msgpack>=1.0", "cloudpickle>=3.0", "psij-python>=0.9.11,<0.10",
                         "PyYAML>=6.0", "platformdirs>=3.0", "rich>=13.0")
"""Used when the client runs from a source tree that was never installed (no metadata to read)."""


def _package_files() -> dict[str, Path]:
    """Archive name → file, for every file the wheel holds."""
    package = Path(scalems_like.__file__).resolve().parent
    files = {f"{NAME}/{path.relative_to(package)}": path for path in sorted(package.rglob("*.py"))
             if "__pycache__" not in path.parts and "_shipped" not in path.parts}
    for shipped in ("bootstrap", "resource_configs"):
        directory = paths.shipped_dir(shipped)
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[f"{NAME}/_shipped/{shipped}/{path.relative_to(directory)}"] = path
    return files


def _requirements() -> list[str]:
    try:
        requires = importlib.metadata.requires(NAME) or []
    except importlib.metadata.PackageNotFoundError:
        return list(FALLBACK_REQUIREMENTS)
    return [item for item in requires if "extra ==" not in item]


def source_digest() -> str:
    digest = hashlib.sha256()
    for name, path in _package_files().items():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path) -> Path:
    """Write the wheel into ``directory`` (once per source digest) and return its path."""
    version = f"{scalems_like.__version__}+g{source_digest()}"
    target = directory / f"{NAME}-{version}-py3-none-any.whl"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{NAME}-{version}.dist-info"
    metadata = "".join([
        "Metadata-Version: 2.1\n", f"Name: {NAME}\n", f"Version: {version}\n", "Requires-Python: >=3.10\n",
        *(f"Requires-Dist: {requirement}\n" for requirement in _requirements()),
    ])
    extra = {
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: scalems_like\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nscalems-like = scalems_like.cli.main:main\n",
    }
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".wheel-")
    os.close(descriptor)
    try:
        records = []
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, path in _package_files().items():
                data = path.read_bytes()
                archive.writestr(name, data)
                records.append(_record_line(name, data))
            for name, text in extra.items():
                archive.writestr(name, text)
                records.append(_record_line(name, text.encode()))
            archive.writestr(f"{info}/RECORD", "\n".join([*records, f"{info}/RECORD,,"]) + "\n")
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target
