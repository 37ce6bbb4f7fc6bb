"""Submit a whole session as one batch job: bundle → launcher sandbox → bootstrap → ``scalems-like run``.

The launcher sandbox is ``<resource sandbox>/<session uid>/launcher``: the pilot bootstrap's files, plus
``project.tar.gz`` and the project unpacked from it (``project/``), ``parameters.json`` and ``launch.sh``, which
the bootstrap execs once the environment is ready (instead of an agent). ``launch.sh`` runs
``scalems-like run --session UID --in-allocation --params ../parameters.json`` in ``project/`` (``run`` records
the set in the journal and gives the script an absolute path to it): the session's pilot is started inside the same
allocation by fork, and its agent spreads workers over the allocation's nodes with the resource's launch method.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from scalems_like import paths
from scalems_like.adapters import JobEvent, PilotJob, adapter_for
from scalems_like.client import environment
from scalems_like.client.pilot_job import write_bootstrap
from scalems_like.client.session import new_session_uid
from scalems_like.errors import ConfigError
from scalems_like.launcher.bundle import Bundle
from scalems_like.launcher.parameters import write_set
from scalems_like.launcher.record import LaunchRecord
from scalems_like.paths import make_private_directory, write_private_file
from scalems_like.protocol.curve import INSECURE_VARIABLE, insecure_requested
from scalems_like.resources import ResourceConfig, load_resource

LAUNCHER = "launcher"
"""Name of the launcher sandbox inside the session sandbox."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shape:
    """The allocation a submitted session asks for."""

    nodes: int = 1
    cores: int | None = None
    """Cores per node; None: whole nodes (the batch system's default for the resource)."""
    runtime: float = 3600.0
    queue: str | None = None
    account: str | None = None
    environment: str | None = None
    """A named environment profile (``scalems-like env``) for the session's Python."""

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, int) or self.nodes < 1:
            raise ConfigError(f"--nodes {self.nodes!r}: expected a whole number of nodes, at least 1")
        if self.cores is not None and self.cores < 1:
            raise ConfigError(f"--cores {self.cores!r}: expected at least 1 core per node")
        if not self.runtime >= 120:
            raise ConfigError(f"--runtime {self.runtime!r}: expected at least 120 seconds (the session's pilot "
                              f"gets the walltime less a margin for the bootstrap and the shutdown)")

    @property
    def pilot_runtime(self) -> float:
        """The session's pilot ends this much before the walltime: time for the client to close the session."""
        return self.runtime - min(300.0, max(60.0, self.runtime / 10))


def launch_script(uid: str, record_script: str, arguments: list[str], resource: str, shape: Shape) -> str:
    """``launch.sh``: the session's client, run in the project copy, with this client's data and config dirs."""
    pilot = ["--nodes", str(shape.nodes), "--runtime", str(shape.pilot_runtime)]
    if shape.cores:
        pilot += ["--cores", str(shape.cores)]
    exports = {
        "SCALEMS_LIKE_DATA_DIR": str(paths.user_data_dir()),
        "SCALEMS_LIKE_CONFIG_DIR": str(paths.user_config_dir()),
    }
    if insecure_requested():
        exports[INSECURE_VARIABLE] = "1"
    command = ["exec", '"$SCALEMS_PYTHON"', "-m", "scalems_like", "run", "--session", uid, "--in-allocation",
               "--resource", shlex.quote(resource), *pilot, "--params", "../parameters.json",
               *(["--env", shlex.quote(shape.environment)] if shape.environment else []),
               shlex.quote(record_script), *map(shlex.quote, arguments)]
    lines = ["# written by scalems-like submit: the session's client, inside the allocation",
             'cd "$(dirname "$0")/project"',
             *(f"{key}={shlex.quote(value)}; export {key}" for key, value in exports.items()),
             'echo "session ' + uid + ' on $(hostname) in $(pwd)"',
             " ".join(command)]
    return "\n".join(lines) + "\n"


def _unpack(archive: Path, target: Path) -> None:
    target.mkdir()
    with tarfile.open(archive) as unpacking:
        unpacking.extractall(target, filter="tar")  # refuses members that would land outside target


def render_launcher(*, uid: str, config: ResourceConfig, bundle: Bundle, script: str, arguments: list[str],
                    parameters: dict[str, Any], shape: Shape) -> tuple[PilotJob, Path]:
    """Write the launcher sandbox; returns the batch job and the sandbox."""
    session_sandbox = make_private_directory(paths.expand(config.sandbox) / uid)
    sandbox = make_private_directory(session_sandbox / LAUNCHER)
    _unpack(bundle.write(sandbox / "project.tar.gz"), sandbox / "project")
    write_set(parameters, sandbox / "parameters.json")
    spec = environment.parse(shape.environment, config)
    bootstrap = write_bootstrap(sandbox, session_uid=uid, uid=LAUNCHER, spec=spec, resource=config)
    write_private_file(sandbox / "launch.sh", launch_script(uid, script, arguments, config.name, shape))
    # (a local job runs in its own session: the user's Ctrl-C on the submitting terminal does not reach it; see
    # adapters.psij_adapter.in_own_session)
    job = PilotJob(
        name=f"scalems-{uid}", executable="/bin/sh", arguments=(str(bootstrap), str(sandbox)), directory=sandbox,
        stdout=sandbox / "job.out", stderr=sandbox / "job.err", environment={}, nodes=shape.nodes,
        cores_per_node=shape.cores or config.cores_per_node, gpus_per_node=config.gpus_per_node,
        runtime=shape.runtime, queue=shape.queue or config.queue, account=shape.account or config.account,
        project=config.project, custom_attributes=config.custom_attributes, role="the session's batch job",
    )
    return job, sandbox


def submit_session(*, resource: str, bundle: Bundle, script: str, arguments: list[str],
                   parameters: dict[str, Any], shape: Shape, sweep: str | None = None) -> LaunchRecord:
    """Stage the bundle and submit the session's batch job; returns its launch record (already written).

    ``script`` is relative to the bundle's root. Raises ConfigError / SubmitError; on any failure the
    session sandbox is removed (nothing was recorded).
    """
    if script not in bundle.files:
        raise ConfigError(f"script {script!r}: not in the project bundle of {bundle.root} "
                          f"(outside the project directory, or excluded by its .scalemsignore)")
    config = load_resource(resource)
    uid = new_session_uid()
    try:
        job, sandbox = render_launcher(uid=uid, config=config, bundle=bundle, script=script, arguments=arguments,
                                       parameters=parameters, shape=shape)
        native_id = adapter_for(config, sandbox.parent).submit(job, _ignore)
    except BaseException:  # nothing recorded: leave nothing behind either
        shutil.rmtree(paths.expand(config.sandbox) / uid, ignore_errors=True)
        raise
    record = LaunchRecord(
        uid=uid, resource=resource, native_id=native_id, submitted=time.time(), script=script,
        arguments=list(arguments), parameters=parameters, sweep=sweep, project=str(bundle.root),
        sandbox=str(sandbox), nodes=shape.nodes, runtime=shape.runtime, queue=shape.queue, account=shape.account,
    )
    record.write()
    return record


def _ignore(_event: JobEvent) -> None:
    """The submitting command does not follow the job: ``ls``/``status`` ask the batch system when asked."""


def relative_script(project: Path, script: str) -> str:
    """The script's path inside the project (errors name both)."""
    path = Path(script)
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not resolved.is_file():
        raise ConfigError(f"script {script!r}: no such file")
    try:
        return resolved.relative_to(project.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"script {script!r}: not inside the project directory {str(project)!r} "
                          f"(give --project, or run submit from the project)") from None


def sweep_id() -> str:
    return f"sweep.{time.strftime('%Y%m%d.%H%M%S')}.{os.getpid()}"
