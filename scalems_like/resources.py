"""Resource configs: one YAML file per resource, loaded into a frozen :class:`ResourceConfig`.

Shipped configs live in ``resource_configs/``; a file of the same name in the user's
``<config dir>/resources/`` is laid over the shipped one key by key (user keys win), and a user file with a
new name adds a resource. Every key and its default is declared once, in :class:`ResourceConfig`; an unknown
key, or a value of the wrong type, raises :class:`ConfigError` naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from scalems_like import paths
from scalems_like.errors import ConfigError

SCHEDULERS = ("local", "slurm", "pbs", "pbs_classic")
LAUNCH_METHODS = ("fork", "srun", "mpiexec")
MPI_LAUNCHERS = ("none", "srun", "mpiexec", "mpirun")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceConfig:
    """Everything scalems_like needs to know about one resource. Defaults suit the local machine."""

    name: str
    description: str = ""
    scheduler: str = "local"
    """psij executor that submits the pilot job: local, slurm, pbs (PBS Pro), pbs_classic (Torque)."""
    launch_method: str = "fork"
    """How the agent starts workers on the allocation's nodes: fork, srun, mpiexec."""
    mpi_launcher: str = "none"
    """How tasks with ranks > 1 are launched: srun, mpiexec, mpirun, or none (such tasks fail)."""
    sandbox: str = "{data_dir}/sandbox"
    """Resource sandbox root; sessions, pilots, tasks and the env cache live below it. ``~``, ``$VARIABLES`` and
    ``{data_dir}`` (the user data dir, see :mod:`scalems_like.paths`) are expanded."""
    python: str = "client"
    """Interpreter for the agent when the environment spec names none; "client" = the client's own."""
    environment: Mapping[str, Any] | None = None
    """Default environment spec for pilots that give none."""
    pre_bootstrap: tuple[str, ...] = ()
    """Shell lines run by every pilot job before the environment step (module loads, exports)."""
    cores_per_node: int | None = None
    """Cores of one node; None: detected by the agent."""
    gpus_per_node: int = 0
    queue: str | None = None
    account: str | None = None
    project: str | None = None
    custom_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Site directives passed to the psij executor (e.g. ``slurm.constraint: cpu``)."""
    client_address: str = "127.0.0.1"
    """Address of the client's interface that the agent connects to; "hostname" = this host's name."""
    agent_address: str = "127.0.0.1"
    """Address the agent binds for its workers; "hostname" = the first node's name."""
    status_polling_interval: float = 1.0
    """Seconds between batch-system status polls."""
    agent_connect_timeout: float = 300.0
    """A pilot whose batch job runs but whose agent does not connect within this many seconds is FAILED."""
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    """A peer silent for this long is taken for dead."""
    workers_per_node: int | None = None
    """Worker processes per node; None: one per core."""

    def __post_init__(self) -> None:
        where = f"resource config {self.name!r}"
        for key, allowed in (("scheduler", SCHEDULERS), ("launch_method", LAUNCH_METHODS),
                             ("mpi_launcher", MPI_LAUNCHERS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{where}: {key} = {getattr(self, key)!r}: expected one of {', '.join(allowed)}")
        for key in ("status_polling_interval", "agent_connect_timeout", "heartbeat_interval", "heartbeat_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}: {key} = {getattr(self, key)!r}: expected a number > 0")


_FIELDS = {field.name: field for field in dataclasses.fields(ResourceConfig)}
_HINTS = typing.get_type_hints(ResourceConfig)


def _check_type(source: str, key: str, value: Any) -> Any:
    """Check ``value`` against the declared type of ``key``; returns it normalised (lists → tuples)."""
    hint = _HINTS[key]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return None
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is str and isinstance(value, str):
            return value
        if origin is tuple and isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        if origin in (Mapping, typing.Mapping) and isinstance(value, dict):
            return dict(value)
    expected = " or ".join("null" if option is type(None) else getattr(option, "__name__", str(option))
                           for option in options)
    raise ConfigError(f"{source}: key {key!r} = {value!r}: expected {expected}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    # keys starting with "." hold YAML anchors for sharing settings; they are not config keys
    return {key: value for key, value in data.items() if not str(key).startswith(".")}


def _build(name: str, layers: list[tuple[Path, dict[str, Any]]]) -> ResourceConfig:
    values: dict[str, Any] = {"name": name}
    for path, data in layers:
        for key, value in data.items():
            if key not in _FIELDS:
                known = ", ".join(sorted(_FIELDS))
                raise ConfigError(f"{path}: unknown key {key!r} (known keys: {known})")
            if key == "name" and value != name:
                raise ConfigError(f"{path}: key 'name' = {value!r}: expected {name!r} (the file's name)")
            values[key] = _check_type(str(path), key, value)
    try:
        return ResourceConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"{layers[-1][0]}: {error}") from None


def config_files() -> dict[str, list[Path]]:
    """Resource name → the files that define it (shipped first, then the user's)."""
    files: dict[str, list[Path]] = {}
    for directory in (paths.shipped_dir("resource_configs"), paths.user_config_dir() / "resources"):
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                files.setdefault(path.stem, []).append(path)
    return files


def load_resource(name: str) -> ResourceConfig:
    """Load the resource called ``name``; raises ConfigError if unknown or invalid."""
    files = config_files()
    if name not in files:
        raise ConfigError(f"unknown resource {name!r}; known resources: {', '.join(sorted(files)) or 'none'}")
    return _build(name, [(path, _read_yaml(path)) for path in files[name]])


def load_all() -> dict[str, ResourceConfig | ConfigError]:
    """Every resource by name: its config, or the error that stops it from loading."""
    result: dict[str, ResourceConfig | ConfigError] = {}
    for name in sorted(config_files()):
        try:
            result[name] = load_resource(name)
        except ConfigError as error:
            result[name] = error
    return result
