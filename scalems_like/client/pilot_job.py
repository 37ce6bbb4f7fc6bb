"""Render a pilot job: the pilot sandbox with the files the bootstrap and agent read, and the batch job.

Files written into ``<session sandbox>/<pilot uid>/`` (the resource sandbox is on a file system the client
sees, for the resources this version supports):

    bootstrap.sh       the bootstrap script, copied from the package
    bootstrap.env      shell assignments the bootstrap sources (SCALEMS_* variables)
    pre_bootstrap.sh   the resource's and the pilot's pre-bootstrap lines, each checked
    requirements.txt   for venv environments
    agent.json         the agent's configuration (see scalems_like.agent.config)
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import scalems_like
from scalems_like import paths
from scalems_like.adapters import PilotJob
from scalems_like.agent.config import AgentConfig, write_private_file
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError
from scalems_like.resources import ResourceConfig

ENVIRONMENT_KEYS = frozenset({"python", "requirements", "mode"})
ENVIRONMENT_MODES = ("reuse", "recreate")


def make_private_directory(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def resolve_environment(spec: str | Mapping[str, Any] | None, resource: ResourceConfig) -> dict[str, Any]:
    """Normalise an environment spec: a profile name, a mapping, or None (the resource's default)."""
    if spec is None:
        spec = resource.environment or {}
    if isinstance(spec, str):
        profile = paths.user_config_dir() / "environments" / f"{spec}.yaml"
        if not profile.is_file():
            raise ConfigError(f"PilotDescription.environment = {spec!r}: no profile file {profile}")
        import yaml

        spec = yaml.safe_load(profile.read_text()) or {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{profile}: expected a mapping")
    unknown = set(spec) - ENVIRONMENT_KEYS
    if unknown:
        raise ConfigError(f"environment spec: unknown key(s) {sorted(unknown)}; known: {sorted(ENVIRONMENT_KEYS)}")
    requirements = spec.get("requirements") or []
    if isinstance(requirements, str) or not all(isinstance(item, str) for item in requirements):
        raise ConfigError(f"environment spec: requirements = {requirements!r}: expected a list of strings")
    mode = spec.get("mode", "reuse")
    if mode not in ENVIRONMENT_MODES:
        raise ConfigError(f"environment spec: mode = {mode!r}: expected one of {', '.join(ENVIRONMENT_MODES)}")
    python = spec.get("python") or resource.python
    if not isinstance(python, str):
        raise ConfigError(f"environment spec: python = {python!r}: expected an interpreter path or 'client'")
    return {"python": python, "requirements": list(requirements), "mode": mode}


def install_source() -> str:
    """What pip installs to get this client's scalems_like: its source tree, or the same released version."""
    project = Path(scalems_like.__file__).resolve().parent.parent
    if (project / "pyproject.toml").is_file():
        return str(project)
    return f"scalems_like=={scalems_like.__version__}"


def environment_settings(environment: dict[str, Any], resource_sandbox: Path) -> dict[str, str]:
    """The SCALEMS_* variables that tell the bootstrap which Python to use or build."""
    python = sys.executable if environment["python"] == "client" else environment["python"]
    package_root = str(Path(scalems_like.__file__).resolve().parent.parent)
    if not environment["requirements"]:
        return {"SCALEMS_PYTHON": python, "SCALEMS_ENV_DIR": "", "SCALEMS_ENV_PYTHON": python,
                "SCALEMS_ENV_MODE": environment["mode"], "SCALEMS_INSTALL_SOURCE": "",
                "PYTHONPATH": package_root if environment["python"] == "client" else ""}
    source = install_source()
    identity = json.dumps([python, sorted(environment["requirements"]), source, scalems_like.__version__])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return {"SCALEMS_PYTHON": python, "SCALEMS_ENV_DIR": str(resource_sandbox / "envs" / digest),
            "SCALEMS_ENV_PYTHON": python, "SCALEMS_ENV_MODE": environment["mode"],
            "SCALEMS_INSTALL_SOURCE": source, "PYTHONPATH": ""}


def hook_script(lines: list[str]) -> str:
    """Pre-bootstrap lines as a sourced script in which each line returns its failure."""
    body = ["# pre-bootstrap lines (resource config first, then the pilot description)"]
    for number, line in enumerate(lines, 1):
        body.append(line)
        body.append(f'_status=$?; [ "$_status" -eq 0 ] || {{ echo "pre-bootstrap line {number} failed with '
                    f'exit code $_status: "{shlex.quote(line)}; return "$_status"; }}')
    return "\n".join(body) + "\n"


def render_pilot(*, session_uid: str, pilot_uid: str, description: PilotDescription, resource: ResourceConfig,
                 client_address: str, session_sandbox: Path) -> tuple[PilotJob, Path]:
    """Write the pilot sandbox and return the batch job that runs its bootstrap (and the sandbox)."""
    environment = resolve_environment(description.environment, resource)
    resource_sandbox = session_sandbox.parent
    sandbox = make_private_directory(session_sandbox / pilot_uid)
    script = shutil.copy(paths.shipped_dir("bootstrap") / "bootstrap.sh", sandbox / "bootstrap.sh")
    settings = {"SCALEMS_PILOT_UID": pilot_uid, "SCALEMS_SESSION_UID": session_uid,
                **environment_settings(environment, resource_sandbox)}
    write_private_file(sandbox / "bootstrap.env", "".join(
        f"{key}={shlex.quote(value)}\nexport {key}\n" for key, value in settings.items()))
    hooks = [*resource.pre_bootstrap, *description.pre_bootstrap]
    if hooks:
        write_private_file(sandbox / "pre_bootstrap.sh", hook_script(hooks))
    if environment["requirements"]:
        write_private_file(sandbox / "requirements.txt", "\n".join(environment["requirements"]) + "\n")
    cores = description.cores or resource.cores_per_node
    AgentConfig(
        pilot_uid=pilot_uid, session_uid=session_uid, client_address=client_address, pilot_sandbox=str(sandbox),
        runtime=float(description.runtime), nodes=description.nodes, cores=cores,
        gpus=description.gpus or resource.gpus_per_node, launch_method=resource.launch_method,
        mpi_launcher=resource.mpi_launcher, agent_address=resource.agent_address,
        workers_per_node=resource.workers_per_node, heartbeat_interval=resource.heartbeat_interval,
        heartbeat_timeout=resource.heartbeat_timeout,
    ).write(sandbox)
    job = PilotJob(
        name=f"scalems-{pilot_uid}", executable="/bin/sh", arguments=(str(script), str(sandbox)),
        directory=sandbox, stdout=sandbox / "job.out", stderr=sandbox / "job.err", environment={},
        nodes=description.nodes, cores_per_node=cores, gpus_per_node=description.gpus or resource.gpus_per_node,
        runtime=description.runtime, queue=description.queue or resource.queue,
        account=description.account or resource.account, project=description.project or resource.project,
        custom_attributes=resource.custom_attributes,
    )
    return job, sandbox
