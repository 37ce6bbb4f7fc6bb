"""Render a pilot job: the pilot sandbox with the files the bootstrap and agent read, and the batch job.

Files written into ``<session sandbox>/<pilot uid>/`` (the resource sandbox is on a file system the client
sees, for the resources this version supports):

    bootstrap.sh       the bootstrap script, copied from the package
    bootstrap.env      shell assignments the bootstrap sources (SCALEMS_* variables)
    pre_bootstrap.sh   the resource's and the pilot's pre-bootstrap lines, each checked
    requirements.txt   the environment spec's requirements (maybe empty)
    agent.json         the agent's configuration (see scalems_like.agent.config)
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from scalems_like import paths
from scalems_like.adapters import PilotJob
from scalems_like.agent.config import AgentConfig
from scalems_like.client import environment
from scalems_like.client.wheel import build_wheel
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError
from scalems_like.paths import make_private_directory, write_private_file
from scalems_like.protocol.curve import AgentKeys
from scalems_like.resources import ResourceConfig

log = logging.getLogger("scalems_like.client")


def hook_script(lines: list[str]) -> str:
    """Pre-bootstrap lines as a sourced script in which each line returns its failure."""
    body = ["# pre-bootstrap lines (resource config first, then the pilot description)"]
    for number, line in enumerate(lines, 1):
        body.append(f"_scalems_hook={shlex.quote(f'{number}: {line}')}  # (named by the bootstrap if it exits)")
        body.append(line)
        body.append(f'_status=$?; [ "$_status" -eq 0 ] || {{ echo "pre-bootstrap line {number} failed with '
                    f'exit code $_status: "{shlex.quote(line)}; return "$_status"; }}')
    return "\n".join(body) + "\n"


ENV_FILE_HEADER = (
    "# the pilot's settings, sourced by bootstrap.sh; each value is quoted for sh and means what it says:\n"
    "# shellcheck disable=SC2016,SC2089,SC2090  # (quotes, $ and backquotes in a value are data, not code)\n"
)


def write_bootstrap(sandbox: Path, *, session_uid: str, uid: str, spec: environment.EnvironmentSpec,
                    resource: ResourceConfig, hooks: Sequence[str] = (), remote: Path | None = None,
                    role: str = "pilot") -> Path:
    """Write the files the bootstrap reads into ``sandbox`` (``<session sandbox>/<uid>``); returns the script.

    ``hooks``: pre-bootstrap lines run after the resource's and the environment's. ``remote``: where ``sandbox``
    goes on a remote cluster (a staging copy is written here; the settings name the cluster's paths; the wheel
    is in the staging copy's ``<resource sandbox>/wheels``). ``role``: "pilot", or "gateway" (a remote session's
    gateway: the bootstrap ends by running it).
    """
    resource_sandbox = sandbox.parent.parent
    target = (remote or sandbox).parent.parent
    wheel = build_wheel(resource_sandbox / "wheels") if environment.needs_wheel(spec) else None
    digest = wheel.name.split("+g")[1].split("-")[0] if wheel else ""
    script = Path(shutil.copy(paths.shipped_dir("bootstrap") / "bootstrap.sh", sandbox / "bootstrap.sh"))
    settings = {"SCALEMS_PILOT_UID": uid, "SCALEMS_SESSION_UID": session_uid, "SCALEMS_ROLE": role,
                **environment.bootstrap_settings(spec, target, target / "wheels" / wheel.name if wheel else None,
                                                 digest)}
    write_private_file(sandbox / "bootstrap.env", ENV_FILE_HEADER + "".join(
        f"{key}={shlex.quote(value)}\nexport {key}\n" for key, value in settings.items()))
    lines = [*resource.pre_bootstrap, *(f"module load {module}" for module in spec.modules), *hooks]
    if lines:
        write_private_file(sandbox / "pre_bootstrap.sh", hook_script(lines))
    write_private_file(sandbox / "requirements.txt", "".join(f"{line}\n" for line in spec.requirements))
    return (remote / script.name) if remote else script


def check_fits(description: PilotDescription, resource: ResourceConfig) -> None:
    """A pilot that cannot be what it asks on this resource is refused (ConfigError naming field and value);
    more cores than this machine has on a machine-local resource is allowed (oversubscription), with a warning."""
    if resource.scheduler != "local" or resource.launch_method != "fork":
        return
    if description.nodes != 1:
        raise ConfigError(f"PilotDescription.nodes = {description.nodes}: resource {resource.name!r} runs pilots on "
                          "this machine only (scheduler local, launch_method fork): nodes must be 1")
    machine = os.cpu_count() or 1
    if description.cores and description.cores > machine:
        log.warning("PilotDescription.cores = %d on resource %r: this machine has %d; the pilot starts a worker "
                    "per core and they will share the machine's %d", description.cores, resource.name, machine,
                    machine)


def render_pilot(*, session_uid: str, pilot_uid: str, description: PilotDescription, resource: ResourceConfig,
                 client_address: str, session_sandbox: Path, keys: AgentKeys | None,
                 remote_session_sandbox: Path | None = None) -> tuple[PilotJob, Path]:
    """Write the pilot sandbox and return the batch job that runs its bootstrap (and the sandbox).

    ``keys``: the agent's CurveZMQ keys, written to ``keys/agent.json`` (None: an insecure pilot).
    ``remote_session_sandbox``: the session sandbox on a remote cluster; ``session_sandbox`` is then a local
    staging copy, sent there in one transfer, and the job and the agent's configuration name the cluster's paths.
    """
    spec = environment.parse(description.environment, resource)
    sandbox = make_private_directory(session_sandbox / pilot_uid)
    remote = remote_session_sandbox / pilot_uid if remote_session_sandbox is not None else None
    script = write_bootstrap(sandbox, session_uid=session_uid, uid=pilot_uid, spec=spec, resource=resource,
                             hooks=description.pre_bootstrap, remote=remote)
    where = remote or sandbox
    cores = description.cores or resource.cores_per_node
    AgentConfig(
        pilot_uid=pilot_uid, session_uid=session_uid, client_address=client_address, pilot_sandbox=str(where),
        runtime=float(description.runtime), nodes=description.nodes, cores=cores,
        gpus=description.gpus or resource.gpus_per_node, launch_method=resource.launch_method,
        mpi_launcher=resource.mpi_launcher, agent_address=resource.agent_address,
        workers_per_node=resource.workers_per_node, heartbeat_interval=resource.heartbeat_interval,
        heartbeat_timeout=resource.heartbeat_timeout, client_grace=resource.client_grace_period,
        ssh_command=resource.ssh_command, worker_deaths_limit=resource.worker_deaths_limit,
        worker_deaths_window=resource.worker_deaths_window, node_join_timeout=resource.node_join_timeout,
        insecure=keys is None,
        results_in_sandbox_above=resource.results_in_sandbox_above,
    ).write(sandbox)
    if keys is not None:
        keys.write(sandbox)
    job = PilotJob(
        name=f"scalems-{pilot_uid}", executable="/bin/sh", arguments=(str(script), str(where)),
        directory=where, stdout=where / "job.out", stderr=where / "job.err", environment={},
        nodes=description.nodes, cores_per_node=cores, gpus_per_node=description.gpus or resource.gpus_per_node,
        runtime=description.runtime, queue=description.queue or resource.queue,
        account=description.account or resource.account, project=description.project or resource.project,
        custom_attributes=resource.custom_attributes,
    )
    return job, sandbox
