"""psij's job model onto scalems_like tasks: pure functions, no I/O.

=====================================  =================================================================
psij                                   scalems_like task
=====================================  =================================================================
executable, arguments                  executable, arguments (run by ``launch.sh``, the task's wrapper)
directory (None: the client's cwd)     working_directory (absolute; relative ones from the client's cwd)
environment, inherit_environment       environment, inherit_environment (False: the job's variables only)
stdin/stdout/stderr_path (None:        redirected by ``launch.sh`` in the job's directory, as psij's
/dev/null), pre_launch, post_launch    launchers do; pre/post launch scripts are ``source``d by bash
launcher single | multiple             one process | COUNT copies on one node (cores = COUNT * cores)
launcher mpirun | srun | aprun | jsrun ranks = process count, started by the pilot's MPI launcher
ResourceSpecV1 process count,          ranks (MPI) or copies (multiple); cores and GPUs per process;
cpu/gpu_cores_per_process              node_count and processes_per_node are left to the pilot's scheduler
JobAttributes.duration                 timeout (the task's process group is killed: FAILED)
custom ``scalems_like.retries`` /      retries, idempotent, tags; other executors' attributes are ignored
``.idempotent`` / ``.tags``
=====================================  =================================================================

A job's native id is ``SESSION_UID/TASK_UID``: a task uid is unique only within its session, and the session
uid lets another executor, in this process or another, attach to the job (see ``ScalemsLikeJobExecutor.attach``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from psij import InvalidJobException, JobSpec, ResourceSpecV1

from scalems_like.descriptions import TaskDescription
from scalems_like.errors import ConfigError

MODES = {"single": "single", "multiple": "multiple", "mpirun": "mpi", "srun": "mpi", "aprun": "mpi",
         "jsrun": "mpi"}
"""psij launcher name → how ``launch.sh`` runs the job (``mpi``: once, behind the pilot's MPI launcher)."""

CUSTOM_PREFIX = "scalems_like."
CUSTOM_FIELDS = ("retries", "idempotent", "tags")
"""TaskDescription fields a job may set as custom attributes ``scalems_like.FIELD``."""

NULL = "/dev/null"


def native_id(session_uid: str, task_uid: str) -> str:
    return f"{session_uid}/{task_uid}"


def parse_native_id(native: str) -> tuple[str, str]:
    """``(session uid, task uid)`` of a native id; raises InvalidJobException if it is not one of ours."""
    session_uid, _, task_uid = str(native).partition("/")
    if not session_uid or not task_uid or "/" in task_uid:
        raise InvalidJobException(f"native id {native!r}: expected SESSION_UID/TASK_UID (what job.native_id "
                                  "was after a submit to a scalems-like executor)")
    return session_uid, task_uid


def launch_mode(spec: JobSpec) -> str:
    """``single``, ``multiple`` or ``mpi``; raises InvalidJobException for a launcher this executor lacks."""
    name = spec.launcher or "single"
    if name not in MODES:
        raise InvalidJobException(f"launcher {name!r} is not supported by the scalems-like executor "
                                  f"(supported: {', '.join(MODES)})")
    return MODES[name]


def process_shape(spec: JobSpec) -> tuple[int, int, int]:
    """``(processes, cores per process, GPUs per process)`` of the job's ResourceSpecV1."""
    resources = spec.resources
    if resources is None:
        return 1, 1, 0
    if not isinstance(resources, ResourceSpecV1):
        raise InvalidJobException(f"resource specification version {resources.version} is not supported "
                                  "(only ResourceSpecV1)")
    return (resources.computed_process_count, resources.cpu_cores_per_process or 1,
            resources.gpu_cores_per_process or 0)


def check(spec: JobSpec) -> None:
    """What can be refused before anything is started (InvalidJobException)."""
    if not spec.executable:
        raise InvalidJobException("the job specification has no executable")
    launch_mode(spec)
    process_shape(spec)
    custom_fields(spec)


def custom_fields(spec: JobSpec) -> dict[str, Any]:
    """The job's ``scalems_like.*`` custom attributes as TaskDescription fields."""
    attributes = (spec.attributes.custom_attributes if spec.attributes is not None else None) or {}
    fields: dict[str, Any] = {}
    for key, value in attributes.items():
        if not key.startswith(CUSTOM_PREFIX):
            continue  # another executor's (e.g. slurm.constraint): ignored, as psij's executors do
        field = key[len(CUSTOM_PREFIX):]
        if field not in CUSTOM_FIELDS:
            raise InvalidJobException(f"custom attribute {key!r}: unknown (known: "
                                      f"{', '.join(CUSTOM_PREFIX + name for name in CUSTOM_FIELDS)})")
        fields[field] = value
    return fields


def _path(value: object) -> str:
    return NULL if value is None else str(value)


def _timeout(spec: JobSpec) -> float | None:
    duration = spec.attributes.duration if spec.attributes is not None else None
    if not isinstance(duration, timedelta) or duration.total_seconds() <= 0:
        return None
    return duration.total_seconds()


def task_description(spec: JobSpec, launch_script: str, client_directory: str) -> TaskDescription:
    """The task that runs ``spec`` through ``launch_script`` (a path the workers can read) exactly as psij's
    ``local`` executor runs it in ``client_directory``; raises InvalidJobException naming what cannot map."""
    check(spec)
    mode = launch_mode(spec)
    processes, cores, gpus = process_shape(spec)
    copies = processes if mode == "multiple" else 1
    directory = os.path.join(client_directory, str(spec.directory)) if spec.directory else client_directory
    wrapper = ["/bin/bash", launch_script, mode, str(processes), _path(spec.pre_launch), _path(spec.post_launch),
               _path(spec.stdin_path), _path(spec.stdout_path), _path(spec.stderr_path), str(spec.executable)]
    try:
        return TaskDescription(
            executable=str(spec.executable), arguments=[str(argument) for argument in spec.arguments or []],
            name=spec.name, environment=dict(spec.environment or {}),
            inherit_environment=bool(spec.inherit_environment), working_directory=os.path.normpath(directory),
            ranks=processes if mode == "mpi" else 1, cores=cores * copies, gpus=gpus * copies,
            timeout=_timeout(spec), wrapper=wrapper, **custom_fields(spec))
    except ConfigError as error:
        raise InvalidJobException(str(error)) from error
