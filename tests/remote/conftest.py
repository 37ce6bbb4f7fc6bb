"""A private sshd for the remote tests (tests/cluster/sshd.sh on its own port and base directory, never the one
the ssh launch tests use), in the SLURM test cluster's mount namespace: there the cluster's scratch directory is a
tmpfs that this process cannot see, so every byte a test uploads there travels over ssh and is read back over ssh,
and a job submitted over ssh (``sbatch``) runs where that scratch is. Where the cluster has no mount namespace (not
running, or ``tests/cluster/slurm-cluster.sh namespace`` says why), the sshd makes one of its own with the same
private scratch, and the tests that need SLURM behind ssh skip, saying why.

Fixtures: ``sshd`` (its pid), ``slurm_behind_sshd`` (the cluster shares the sshd's namespace, or a skip),
``known_hosts``, ``resource`` (``remote-test``: the sshd, no scheduler), ``remote_slurm_resource``
(``remote-slurm-test``: SLURM behind the sshd), ``master`` (an open ControlMaster), ``remote_directory``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalems_like import paths
from scalems_like.remote.connection import ControlMaster

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"
SSHD = CLUSTER / "sshd.sh"
SLURM_CLUSTER = CLUSTER / "slurm-cluster.sh"
BASE = Path("/var/tmp/scalems-like-sshd-remote")
SCRATCH = Path("/var/tmp/scalems-like-cluster-scratch")
"""The cluster's scratch: a private tmpfs in the SLURM test cluster's (and the sshd's) mount namespace (the
default ``SLURM_CI_SCRATCH`` of slurm-cluster.sh); an empty directory, or nothing, from here."""
PORT = 2232
BARE_PORT = 2233
"""Sessions that come in on this port have no rsync on their PATH."""
NO_PYTHON_PORT = 2234
"""Sessions that come in on this port have no python on their PATH."""
RESOURCE = "remote-test"
SLURM_RESOURCE = "remote-slurm-test"
SMALL = SCRATCH / "small"
"""A 1 MiB tmpfs inside the scratch: a remote disk that fills up."""


def cluster_namespace() -> tuple[Path | None, str]:
    """The SLURM test cluster's mount namespace file with :data:`SCRATCH` private in it, or None and why not."""
    said = subprocess.run(["sh", str(SLURM_CLUSTER), "namespace"], capture_output=True, text=True)
    if said.returncode != 0:
        return None, said.stderr.strip() or f"`sh {SLURM_CLUSTER} namespace` exited {said.returncode}"
    values = dict(line.split("=", 1) for line in said.stdout.splitlines() if "=" in line)
    scratch = values.get("SLURM_CI_SCRATCH", "").strip("'")
    if scratch != str(SCRATCH):
        return None, f"the SLURM test cluster's scratch is {scratch!r}, not {str(SCRATCH)!r} (SLURM_CI_SCRATCH)"
    return Path(values["SLURM_CI_NAMESPACE"].strip("'")), ""


def sshd_environment(namespace: Path | None = None) -> dict[str, str]:
    environment = {**os.environ, "SSHD_CI_BASE": str(BASE), "SSHD_CI_PORT": str(PORT), "SSHD_CI_SCRATCH": str(SCRATCH),
                   "SSHD_CI_SCRATCH_SIZE": "1g", "SSHD_CI_BARE_PORT": str(BARE_PORT),
                   "SSHD_CI_NO_PYTHON_PORT": str(NO_PYTHON_PORT)}
    if namespace is not None:
        environment["SSHD_CI_NAMESPACE"] = str(namespace)
    return environment


def in_namespace_of(pid: int, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` (sh) in process ``pid``'s mount namespace."""
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", command], capture_output=True, text=True)


def start_sshd(namespace: Path | None, *, again: bool = True) -> int:
    """The sshd's pid: started (into ``namespace``, or one of its own) unless it runs with the private scratch."""
    started = subprocess.run(["sh", str(SSHD), "start"], env=sshd_environment(namespace), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
    if started.returncode == 3:
        pytest.skip(f"no test sshd here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    pid = int((BASE / "sshd.pid").read_text())
    current = "no-python-home" in (BASE / "sshd_config").read_text()  # the no-python port, as it is now
    if not current or in_namespace_of(pid, f"mountpoint -q {SCRATCH}").returncode != 0:
        assert again, f"the test sshd ({pid}) runs without a private {SCRATCH}"
        subprocess.run(["sh", str(SSHD), "stop"], env=sshd_environment(), check=True)  # one of an older setup
        return start_sshd(namespace, again=False)
    return pid


@pytest.fixture(scope="session")
def sshd() -> Iterator[int]:
    """The sshd's pid; started here (and stopped at the end) unless it runs. Skips where it cannot run."""
    if os.geteuid() != 0:
        pytest.skip("the remote tests need root: their sshd runs in a mount namespace (unshare, nsenter --mount)")
    running = subprocess.run(["sh", str(SSHD), "status"], env=sshd_environment()).returncode == 0
    pid = start_sshd(cluster_namespace()[0])
    small = f"mkdir -p {SMALL} && (mountpoint -q {SMALL} || mount -t tmpfs -o size=1m tmpfs {SMALL})"
    mounted = in_namespace_of(pid, small)
    assert mounted.returncode == 0, mounted.stderr
    yield pid
    if not running:
        subprocess.run(["sh", str(SSHD), "stop"], env=sshd_environment(), check=True)


@pytest.fixture
def slurm_behind_sshd(sshd: int, slurm: None) -> Path:
    """The SLURM test cluster's mount namespace file, which the sshd shares (skips, saying why, where it does not:
    no cluster, or a cluster without a namespace)."""
    namespace, why = cluster_namespace()
    if namespace is None:
        pytest.skip(f"the SLURM test cluster has no mount namespace for the sshd to join: {why}")
    shared = os.stat(f"/proc/{sshd}/ns/mnt").st_ino == namespace.stat().st_ino
    assert shared, f"the test sshd ({sshd}) is not in the SLURM cluster's mount namespace {namespace}"
    return namespace


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: int) -> Path:
    """A known_hosts file that holds the test sshd's host key (on each of its ports)."""
    key = (BASE / "host_key.pub").read_text().split()[:2]
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"[127.0.0.1]:{port} {' '.join(key)}\n" for port in (PORT, BARE_PORT, NO_PYTHON_PORT)))
    return path


def options(known_hosts: Path, port: int = PORT, identity: Path = BASE / "client_key") -> list[str]:
    return [f"Port={port}", f"IdentityFile={identity}", "IdentitiesOnly=yes", f"UserKnownHostsFile={known_hosts}",
            "GlobalKnownHostsFile=/dev/null"]


@pytest.fixture
def resource(known_hosts: Path) -> str:
    """A resource config ``remote-test`` that reaches the test sshd."""
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"\n  - {option}" for option in options(known_hosts))
    (directory / f"{RESOURCE}.yaml").write_text(f"login: root@127.0.0.1\nssh_options:{listed}\n")
    return RESOURCE


@pytest.fixture
def remote_slurm_resource(known_hosts: Path, slurm_behind_sshd: Path) -> str:
    """A resource config ``remote-slurm-test`` (written into this test's config directory): the SLURM test cluster
    behind the test sshd, for end-to-end sessions over ssh. Skips where SLURM cannot run behind the sshd.

    - ``scheduler: slurm``, ``launch_method: srun``, ``mpi_launcher: srun``, ``status_polling_interval: 1``;
    - ``login: root@127.0.0.1`` with ``ssh_options`` that reach the sshd (port 2232, its client key,
      ``known_hosts`` holding its host key: strict host key checking stays on);
    - ``sandbox``: ``SCRATCH/sandbox``, inside the cluster's private scratch: the client cannot read the
      sandboxes, every byte goes over ssh (``master.run``, ``Transport``);
    - ``python``: this test's interpreter (the cluster's side sees every path of this host but the scratch, as
      a site's shared software tree); ``client_address`` and ``agent_address`` ``127.0.0.1`` (one host).

    On the cluster's side ``sbatch``/``squeue`` find the cluster through ``/etc/slurm/slurm.conf`` (the cluster
    script links it there when that path is free).
    """
    listed = "".join(f"\n  - {option}" for option in options(known_hosts))
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{SLURM_RESOURCE}.yaml").write_text(
        "description: the SLURM test cluster behind the test sshd (tests/remote/conftest.py)\n"
        "scheduler: slurm\nlaunch_method: srun\nmpi_launcher: srun\nstatus_polling_interval: 1\n"
        f"login: root@127.0.0.1\nssh_options:{listed}\ntransfer: rsync\nsandbox: {SCRATCH}/sandbox\n"
        f"python: {sys.executable}\nclient_address: 127.0.0.1\nagent_address: 127.0.0.1\n")
    return SLURM_RESOURCE


@pytest.fixture
def master(tmp_path: Path, known_hosts: Path) -> Iterator[ControlMaster]:
    """An open connection to the test sshd (closed at the end)."""
    opened = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "session" / "ssh", options(known_hosts))
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def remote_directory(master: ControlMaster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh directory in the sshd's private scratch (removed at the end, over ssh)."""
    path = f"{SCRATCH}/{request.node.name[:60]}.{os.getpid()}"
    master.run(["rm", "-rf", path]).check()
    master.run(["mkdir", "-p", path]).check()
    yield path
    if master.check():
        master.run(["rm", "-rf", path])


def direct_ssh(known_hosts: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    """``command`` over a connection of its own (not the master under test): to look at the remote side."""
    argv = ["ssh", *[part for option in options(known_hosts) for part in ("-o", option)], "-o", "BatchMode=yes",
            "root@127.0.0.1", command]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True)
