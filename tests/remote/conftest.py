"""A private sshd for the remote tests (tests/cluster/sshd.sh on its own port and base directory, never the one
the ssh launch tests use), in its own mount namespace: its scratch directory is a tmpfs that this process cannot
see, so every byte a test uploads there travels over ssh and is read back over ssh."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalems_like import paths
from scalems_like.remote.connection import ControlMaster

SSHD = Path(__file__).resolve().parent.parent / "cluster" / "sshd.sh"
BASE = Path(os.environ.get("SCALEMS_TEST_REMOTE_BASE", "/var/tmp/scalems-like-sshd-remote"))
"""(``SCALEMS_TEST_REMOTE_BASE`` and ``SCALEMS_TEST_REMOTE_PORT``: a second sshd of one's own, e.g. beside another
run of these tests on the same machine; its bare port is the next one)"""
SCRATCH = Path(f"{BASE}-scratch")
PORT = int(os.environ.get("SCALEMS_TEST_REMOTE_PORT", "2232"))
BARE_PORT = PORT + 1
"""Sessions that come in on this port have no rsync on their PATH."""
RESOURCE = "remote-test"
SMALL = SCRATCH / "small"
"""A 1 MiB tmpfs inside the scratch: a remote disk that fills up."""


def sshd_environment() -> dict[str, str]:
    return {**os.environ, "SSHD_CI_BASE": str(BASE), "SSHD_CI_PORT": str(PORT), "SSHD_CI_SCRATCH": str(SCRATCH),
            "SSHD_CI_SCRATCH_SIZE": "1g", "SSHD_CI_BARE_PORT": str(BARE_PORT)}


@pytest.fixture(scope="session")
def sshd() -> Iterator[int]:
    """The sshd's pid; started here (and stopped at the end) unless it runs. Skips where it cannot run."""
    if os.geteuid() != 0:
        pytest.skip("the remote tests need root: their sshd runs in its own mount namespace (unshare --mount)")
    running = subprocess.run(["sh", str(SSHD), "status"], env=sshd_environment()).returncode == 0
    started = subprocess.run(["sh", str(SSHD), "start"], env=sshd_environment(), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
    if started.returncode == 3:
        pytest.skip(f"no test sshd here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    pid = int((BASE / "sshd.pid").read_text())
    small = f"mkdir -p {SMALL} && (mountpoint -q {SMALL} || mount -t tmpfs -o size=1m tmpfs {SMALL})"
    mounted = subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", small], capture_output=True, text=True)
    assert mounted.returncode == 0, mounted.stderr
    yield pid
    if not running:
        subprocess.run(["sh", str(SSHD), "stop"], env=sshd_environment(), check=True)


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: int) -> Path:
    """A known_hosts file that holds the test sshd's host key (on both its ports)."""
    key = (BASE / "host_key.pub").read_text().split()[:2]
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"[127.0.0.1]:{port} {' '.join(key)}\n" for port in (PORT, BARE_PORT)))
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
