"""Environment specs: which Python a pilot's agent and tasks run in, and how the bootstrap gets it.

A spec is ``None`` (the resource's default), a profile name (``<config dir>/environments/NAME.yaml``), or a
mapping with these keys:

    python        "client" (the client's interpreter; default) or an interpreter path/name on the nodes; on a
                  remote resource (``login``), "client" is the cluster's ``python3`` in a venv
    requirements  a list of requirement strings, or the path of a requirements file (read on the client)
    conda         an existing conda env (name or prefix), or an environment.yml file to create one from
    modules       modules to ``module load`` before the environment step
    env           environment variables to export (a mapping of strings)
    mode          reuse (default: build if missing, else use) | update (install what the spec adds) |
                  recreate (delete and rebuild) | use (an existing interpreter/env, never modified)

The bootstrap builds venvs (``uv`` when on the node, else ``python -m venv`` + pip) and conda envs in the resource
sandbox, under ``envs/<hash of the spec and of this client's scalems_like>``, and installs the client's own
scalems_like from a wheel staged into the resource sandbox (see :mod:`scalems_like.client.wheel`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import scalems_like
from scalems_like import paths
from scalems_like.errors import ConfigError
from scalems_like.protocol import PROTOCOL_VERSION
from scalems_like.resources import ResourceConfig

KEYS = ("python", "requirements", "conda", "modules", "env", "mode")
MODES = ("reuse", "update", "recreate", "use")
REMOTE_PYTHON = "python3"
"""What "client" means on a remote resource (one with ``login``): the cluster's python3, in a venv the bootstrap
builds with this client's scalems_like (the client's own interpreter is on the laptop)."""


@dataclasses.dataclass(frozen=True)
class EnvironmentSpec:
    python: str = "client"
    requirements: tuple[str, ...] = ()
    conda: str | None = None
    modules: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mode: str = "reuse"

    @property
    def kind(self) -> str:
        """interpreter (used as is), venv (built), conda (existing env) or conda-file (built from a file)."""
        if self.conda is not None:
            return "conda-file" if self.conda.endswith((".yml", ".yaml")) else "conda"
        if self.mode == "use" or (self.python == "client" and not self.requirements):
            return "interpreter"
        return "venv"

    def interpreter(self) -> str:
        return sys.executable if self.python == "client" else self.python


def profile_path(name: str) -> Path:
    return paths.user_config_dir() / "environments" / f"{name}.yaml"


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise ConfigError(f"{where}: {key} = {value!r}: expected a list of strings")
    return tuple(value)


def parse(spec: str | Mapping[str, Any] | None, resource: ResourceConfig) -> EnvironmentSpec:
    """Validate a spec; errors name where it came from, the key and the value."""
    where = "environment spec"
    if spec is None:
        spec = resource.environment or {}
        where = f"resource {resource.name!r} environment"
    if isinstance(spec, str):
        path = profile_path(spec)
        if not path.is_file():
            raise ConfigError(f"environment = {spec!r}: no profile {path} (see `scalems-like env list`)")
        spec, where = yaml.safe_load(path.read_text()) or {}, str(path)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(KEYS)}; got {spec!r}")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(KEYS)}")
    python = spec.get("python", resource.python)
    if python == "client" and resource.login:  # the client's interpreter is not on the cluster: its python3 is
        python = REMOTE_PYTHON
    if not isinstance(python, str) or not python:
        raise ConfigError(f"{where}: python = {python!r}: expected 'client' or an interpreter path or name")
    requirements = spec.get("requirements", [])
    if isinstance(requirements, str):
        try:
            requirements = [line.strip() for line in Path(requirements).expanduser().read_text().splitlines()
                            if line.strip() and not line.lstrip().startswith("#")]
        except OSError as error:
            raise ConfigError(f"{where}: requirements = {spec['requirements']!r}: {error.strerror}") from None
    conda = spec.get("conda")
    if conda is not None and (not isinstance(conda, str) or not conda):
        raise ConfigError(f"{where}: conda = {conda!r}: expected an env name, a prefix or an environment.yml")
    env = spec.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ConfigError(f"{where}: env = {env!r}: expected a mapping of strings to strings")
    default_mode = "use" if conda is not None and not conda.endswith((".yml", ".yaml")) else "reuse"
    mode = spec.get("mode", default_mode)
    if mode not in MODES:
        raise ConfigError(f"{where}: mode = {mode!r}: expected one of {', '.join(MODES)}")
    result = EnvironmentSpec(python, _strings(where, "requirements", list(requirements)), conda,
                             _strings(where, "modules", spec.get("modules", [])), dict(env), mode)
    if mode == "use" and result.requirements:
        raise ConfigError(f"{where}: mode = 'use' never modifies an environment, so it cannot install "
                          f"requirements {list(result.requirements)!r}; use mode 'reuse' or 'update'")
    if result.kind == "conda" and mode in ("reuse", "recreate"):
        raise ConfigError(f"{where}: mode = {mode!r} with the existing conda env {conda!r}: use mode 'use' "
                          "(never modified) or 'update' (installs scalems_like and the requirements into it)")
    if result.kind == "conda-file":
        conda_file = Path(conda).expanduser()  # type: ignore[arg-type]
        if not conda_file.is_file():
            raise ConfigError(f"{where}: conda = {conda!r}: no such environment file")
    return result


def env_directory(spec: EnvironmentSpec, resource_sandbox: Path, wheel_digest: str) -> Path:
    """Where the bootstrap builds (or finds) a venv/conda env for ``spec``."""
    if spec.kind in ("interpreter", "conda"):
        return Path()
    conda_text = Path(spec.conda).expanduser().read_text() if spec.kind == "conda-file" else ""  # type: ignore[arg-type]
    identity: list[object] = [spec.kind, spec.interpreter(), conda_text]
    if spec.mode != "update":  # update keeps one env per interpreter and installs what a spec adds
        identity += [sorted(spec.requirements), wheel_digest]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    return resource_sandbox / "envs" / f"{spec.kind}-{digest}"


def bootstrap_settings(spec: EnvironmentSpec, resource_sandbox: Path, wheel: Path | None,
                       wheel_digest: str) -> dict[str, str]:
    """The SCALEMS_* variables (and the spec's own) that the bootstrap reads."""
    package_root = str(Path(scalems_like.__file__).resolve().parent.parent)
    settings = {
        "SCALEMS_ENV_KIND": spec.kind,
        "SCALEMS_ENV_MODE": spec.mode,
        "SCALEMS_PYTHON": spec.interpreter(),
        "SCALEMS_ENV_DIR": str(env_directory(spec, resource_sandbox, wheel_digest)) if spec.kind in (
            "venv", "conda-file") else "",
        "SCALEMS_CONDA": (str(Path(spec.conda).expanduser()) if spec.kind == "conda-file" and spec.conda
                          else spec.conda or ""),
        "SCALEMS_INSTALL_SOURCE": str(wheel) if wheel else "",
        "SCALEMS_PROTOCOL": str(PROTOCOL_VERSION),
        "PYTHONPATH": package_root if spec.python == "client" and spec.kind == "interpreter" else "",
    }
    settings.update(spec.env)
    return settings


def needs_wheel(spec: EnvironmentSpec) -> bool:
    return spec.kind in ("venv", "conda-file") or (spec.kind == "conda" and spec.mode == "update")
