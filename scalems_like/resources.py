"""Resource configs: one YAML file per resource, loaded into a frozen :class:`ResourceConfig`.

Shipped configs live in ``resource_configs/``; a file of the same name in the user's
``<config dir>/resources/`` is laid over the shipped one key by key (user keys win), and a user file with a
new name adds a resource. A file with a top-level ``resources:`` mapping defines several resources (its
entries' names); keys starting with ``.`` hold YAML anchors, so shared settings are written once.
Every key and its default is declared once, in :class:`ResourceConfig`; an unknown key, or a value of the
wrong type, raises :class:`ConfigError` naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from scalems_like import paths
from scalems_like.errors import ConfigError

SCHEDULERS = ("local", "slurm", "pbs", "pbs_classic")
LAUNCH_METHODS = ("fork", "srun", "mpiexec", "ssh")
TRANSFERS = ("rsync", "sftp")
SSH_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*=\S.*")
OWNED_SSH_OPTIONS = ("controlmaster", "controlpath", "controlpersist")
"""ssh options scalems_like sets itself for the connection it holds (``ssh_options`` may not)."""
MPI_LAUNCHERS = ("none", "srun", "mpiexec", "mpirun", "ibrun")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceConfig:
    """Everything scalems_like needs to know about one resource. Defaults suit the local machine."""

    name: str
    description: str = ""
    scheduler: str = "local"
    """psij executor that submits the pilot job: local, slurm, pbs (PBS Pro), pbs_classic (Torque)."""
    launch_method: str = "fork"
    """How the agent starts workers on the allocation's nodes: fork, srun, mpiexec, ssh."""
    mpi_launcher: str = "none"
    """How tasks with ranks > 1 are launched: srun, mpiexec, mpirun, ibrun, or none (such tasks fail)."""
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
    """Address agents connect to: an IP of the client's host, or "hostname" (bind every interface and give
    agents this host's name)."""
    agent_address: str = "127.0.0.1"
    """Address workers connect to: an IP, or "hostname" (the agent binds every interface of its node and gives
    workers the node's name: needed when workers run on other nodes)."""
    status_polling_interval: float = 1.0
    """Seconds between batch-system status polls."""
    agent_connect_timeout: float = 300.0
    """A pilot whose batch job runs but whose agent does not connect within this many seconds is FAILED."""
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    """A peer silent for this long is taken for dead."""
    client_grace_period: float = 600.0
    """Seconds an agent goes on without a client (killed, disconnected): its tasks run on and their results
    wait for ``reattach``; after this the agent stops."""
    workers_per_node: int | None = None
    """Worker processes per node; None: one per core."""
    ssh_command: str = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
    """How the ``ssh`` launch method reaches the other nodes (options such as -p or -i go here)."""
    login: str | None = None
    """The cluster's login node as an ssh destination (``user@host``, ``ssh://user@host:port``) or a host alias
    of ``~/.ssh/config``: the client is elsewhere (a laptop) and reaches the cluster over one OpenSSH connection
    (see docs/remote.md). None: the client runs on the cluster (or this machine) and shares its file system."""
    ssh_options: tuple[str, ...] = ()
    """OpenSSH options for that connection, each ``Key=Value`` as ``ssh -o`` takes it (``Port=2222``,
    ``IdentityFile=~/.ssh/nersc``, ``ProxyJump=gateway``); ``~/.ssh/config`` applies too."""
    transfer: str = "rsync"
    """How files travel over that connection: rsync (sftp where the cluster has no rsync), or sftp."""
    results_in_sandbox_above: int | None = 1024 * 1024
    """Bytes: a function's return value whose pickle is larger stays in its task sandbox as a file
    (``return_value.pickle``), loaded when the client asks for it, instead of travelling back and into both
    journals; null: every value travels (up to the 256 MiB message limit)."""
    worker_deaths_limit: int = 5
    worker_deaths_window: float = 60.0
    """A node where ``worker_deaths_limit`` workers died within ``worker_deaths_window`` seconds while running no
    task is taken out of the pilot's schedule (a worker that dies under a task is that task's doing: it is
    replaced, and the task ends with why or is retried)."""
    node_join_timeout: float = 60.0
    """Seconds after the agent started a node's workers within which one of them must say hello: a node that
    never joins is taken out of the pilot's schedule, reported with the tail of its launcher's output, and the
    pilot runs on with its other nodes."""

    def __post_init__(self) -> None:
        where = f"resource config {self.name!r}"
        for key, allowed in (("scheduler", SCHEDULERS), ("launch_method", LAUNCH_METHODS),
                             ("mpi_launcher", MPI_LAUNCHERS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{where}: {key} = {getattr(self, key)!r}: expected one of {', '.join(allowed)}")
        for key in ("status_polling_interval", "agent_connect_timeout", "heartbeat_interval", "heartbeat_timeout",
                    "client_grace_period", "worker_deaths_limit", "worker_deaths_window", "node_join_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}: {key} = {getattr(self, key)!r}: expected a number > 0")
        self._check_remote_keys(where)
        if self.results_in_sandbox_above is not None and self.results_in_sandbox_above < 0:
            raise ConfigError(f"{where}: results_in_sandbox_above = {self.results_in_sandbox_above!r}: expected a "
                              "number of bytes >= 0 (0: every return value stays in its sandbox), or null (none)")


    def _check_remote_keys(self, where: str) -> None:
        if self.transfer not in TRANSFERS:
            raise ConfigError(f"{where}: transfer = {self.transfer!r}: expected one of {', '.join(TRANSFERS)}")
        if self.login is not None and (not self.login.strip() or self.login.startswith("-")
                                       or any(character.isspace() for character in self.login)):
            raise ConfigError(f"{where}: login = {self.login!r}: expected an ssh destination (user@host, "
                              "ssh://user@host:port) or a host alias of ~/.ssh/config, without spaces or a "
                              "leading '-'")
        for option in self.ssh_options:
            if not SSH_OPTION.fullmatch(option):
                raise ConfigError(f"{where}: ssh_options item {option!r}: expected Key=Value as ssh -o takes it "
                                  "(e.g. 'Port=2222', 'IdentityFile=~/.ssh/id_site')")
            if option.partition("=")[0].lower() in OWNED_SSH_OPTIONS:
                raise ConfigError(f"{where}: ssh_options item {option!r}: scalems_like sets ControlMaster, "
                                  "ControlPath and ControlPersist itself (one connection per session)")


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


def _read_yaml(path: Path) -> dict[str, dict[str, Any]]:
    """The resources a file defines: {name: settings}."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    # keys starting with "." hold YAML anchors for sharing settings; they are not config keys
    data = {key: value for key, value in data.items() if not str(key).startswith(".")}
    if "resources" not in data:
        return {path.stem: data}
    entries = data.pop("resources")
    if data or not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise ConfigError(f"{path}: a file with 'resources:' holds only a mapping of resource names to settings "
                          f"(and .anchors); found {sorted(data) or type(entries).__name__}")
    return {str(name): settings for name, settings in entries.items()}


def _build(name: str, layers: list[tuple[Path, dict[str, Any]]]) -> ResourceConfig:
    values: dict[str, Any] = {"name": name}
    for path, data in layers:
        for key, value in data.items():
            if key not in _FIELDS or key == "name":
                known = ", ".join(sorted(set(_FIELDS) - {"name"}))
                raise ConfigError(f"{path}: resource {name!r}: unknown key {key!r} (known keys: {known})")
            values[key] = _check_type(f"{path}: resource {name!r}", key, value)
    try:
        return ResourceConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"{layers[-1][0]}: {error}") from None


def _layers(wanted: str | None = None) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Resource name → its (file, settings) layers, shipped first, then the user's.

    A file that cannot be read is skipped (``scalems-like resources`` reports it), unless it is named after
    the ``wanted`` resource.
    """
    layers: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for directory in (paths.shipped_dir("resource_configs"), paths.user_config_dir() / "resources"):
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            try:
                entries = _read_yaml(path)
            except ConfigError:
                if path.stem == wanted:
                    raise
                continue
            for name, settings in entries.items():
                layers.setdefault(name, []).append((path, settings))
    return layers


def config_files() -> dict[str, list[Path]]:
    """Resource name → the files that define it (shipped first, then the user's)."""
    return {name: [path for path, _ in layers] for name, layers in _layers().items()}


def load_resource(name: str) -> ResourceConfig:
    """Load the resource called ``name``; raises ConfigError if unknown or invalid."""
    layers = _layers(name)
    if name not in layers:
        raise ConfigError(f"unknown resource {name!r}; known resources: {', '.join(sorted(layers)) or 'none'}")
    return _build(name, layers[name])


def load_all() -> dict[str, ResourceConfig | ConfigError]:
    """Every resource by name: its config, or the error that stops it from loading.

    A file that cannot be read at all is reported under the name of the file.
    """
    result: dict[str, ResourceConfig | ConfigError] = {}
    names: set[str] = set()
    for directory in (paths.shipped_dir("resource_configs"), paths.user_config_dir() / "resources"):
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            try:
                names.update(_read_yaml(path))
            except ConfigError as error:
                result[path.stem] = error
    for name in sorted(names):
        try:
            result[name] = load_resource(name)
        except ConfigError as error:
            result[name] = error
    return dict(sorted(result.items()))


def inside_allocation(config: ResourceConfig) -> ResourceConfig:
    """``config`` for a client that runs inside one of the resource's allocations (a submitted session).

    Its pilots are forked there (scheduler ``local``) instead of queued as new batch jobs; the agent inherits the
    allocation's environment (node list, module loads: the launcher's bootstrap already ran the pre-bootstrap
    lines) and starts workers on every node with the resource's launch method; it reaches the client on this node.
    """
    return dataclasses.replace(config, scheduler="local", client_address="127.0.0.1", pre_bootstrap=(),
                               status_polling_interval=min(config.status_polling_interval, 0.5))
